package adminapi

import (
	"slices"

	"github.com/keystep/keystep/storage"
)

// The admin API's OAuth scopes. A client is issued them by its own
// client_credentials grant only when an admin granted it the API
// (storage.Client.AdminAPI); ScopeWrite implies ScopeRead.
const (
	ScopeRead  = "keystep:admin:read"
	ScopeWrite = "keystep:admin"
)

// IsScope reports whether scope is one of the admin API's.
func IsScope(scope string) bool { return scope == ScopeRead || scope == ScopeWrite }

// Granted reports whether a client granted grant (storage.Client.AdminAPI)
// may hold scope, one of the admin API's.
func Granted(grant, scope string) bool {
	switch scope {
	case ScopeRead:
		return grant == storage.AdminAPIRead || grant == storage.AdminAPIWrite
	case ScopeWrite:
		return grant == storage.AdminAPIWrite
	}
	return false
}

// can reports whether a token with scopes, of a client now granted grant,
// may make a call that needs need (ScopeRead or ScopeWrite): the token
// must carry need or ScopeWrite, and the client must be granted need now,
// so a grant taken away or narrowed holds for tokens already issued.
func can(scopes []string, grant, need string) bool {
	carried := slices.ContainsFunc(scopes, func(s string) bool { return s == need || s == ScopeWrite })
	return carried && Granted(grant, need)
}
