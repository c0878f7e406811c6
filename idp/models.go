package idp

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/adminapi"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// Token lifetimes.
const (
	authRequestTTL  = 30 * time.Minute
	codeTTL         = 60 * time.Second // DESIGN §4: codes live 60 s
	accessTokenTTL  = 15 * time.Minute
	idTokenTTL      = time.Hour
	refreshTokenTTL = 30 * 24 * time.Hour
)

// lifetimes are the token lifetimes of one client's token request: the
// server's, shortened by the client's own policy (policy.Client AccessTTL
// and RefreshTTL), never lengthened.
type lifetimes struct{ access, refresh time.Duration }

// lifetimesOf are c's lifetimes.
func lifetimesOf(c policy.Client) lifetimes {
	l := lifetimes{access: accessTokenTTL, refresh: refreshTokenTTL}
	if c.AccessTTL > 0 {
		l.access = min(l.access, c.AccessTTL)
	}
	if c.RefreshTTL > 0 {
		l.refresh = min(l.refresh, c.RefreshTTL)
	}
	return l
}

// lifetimes are the request's token lifetimes (the server's unless
// opServer.issue set the client's).
func (st *reqState) lifetimes() lifetimes {
	if st.ttl == nil {
		return lifetimesOf(policy.Client{})
	}
	return *st.ttl
}

// Scopes Keystep understands; anything else is dropped by the library.
var supportedScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess}

// client adapts storage.Client to op.Client.
type client struct {
	storage.Client
	loginURL string // the login UI path; the auth request ID is appended
	// policyScopes are the scopes besides supportedScopes this client may
	// ask for at /authorize (withScopesOf).
	policyScopes []string
}

// withScopesOf is c allowing, besides supportedScopes, every scope pol
// names a minimum level for (scope_min_acr, the server's or c's own): an
// API scope such as payroll:write reaches the decision and the token
// exactly when the policy says what it needs. Any other scope is dropped,
// as before.
func (c *client) withScopesOf(pol *policy.Snapshot) *client {
	cc := *c
	cc.policyScopes = nil
	for _, m := range []map[string]string{pol.ScopeMinACR, pol.Client(c.ID).ScopeMinACR} {
		for sc := range m {
			cc.policyScopes = append(cc.policyScopes, sc)
		}
	}
	return &cc
}

func (c client) GetID() string                    { return c.ID }
func (c client) RedirectURIs() []string           { return c.Client.RedirectURIs }
func (c client) PostLogoutRedirectURIs() []string { return c.Client.PostLogoutRedirectURIs }
func (c client) ApplicationType() op.ApplicationType {
	if c.Native {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c client) AuthMethod() oidc.AuthMethod {
	if c.Public {
		return oidc.AuthMethodNone
	}
	if c.Client.AuthMethod == "" {
		return oidc.AuthMethodBasic
	}
	return oidc.AuthMethod(c.Client.AuthMethod)
}
func (c client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c client) GrantTypes() []oidc.GrantType {
	out := make([]oidc.GrantType, len(c.Client.GrantTypes))
	for i, g := range c.Client.GrantTypes {
		out[i] = oidc.GrantType(g)
	}
	return out
}
func (c client) LoginURL(id string) string { return c.loginURL + "?id=" + id }
func (c client) AccessTokenType() op.AccessTokenType {
	if c.AccessTokenFormat == "opaque" {
		return op.AccessTokenTypeBearer
	}
	return op.AccessTokenTypeJWT
}
func (c client) IDTokenLifetime() time.Duration { return idTokenTTL }

// DevMode allows http redirect URIs. Keystep validates redirect URIs itself
// when clients are created (https, or http only for loopback), and the
// library compares them exactly, so its extra web-client rule is not needed.
func (c client) DevMode() bool { return true }
func (c client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed is asked by the library of each scope at /authorize that
// is not an OIDC one (op.ValidateAuthReqScopes drops those it refuses):
// the OIDC scopes and the scopes the policy names a minimum for
// (withScopesOf). The admin API's scopes are never allowed there, whatever
// the client is granted or the policy names: they belong to the client's
// own client_credentials tokens (clientScopes), and a token issued for a
// user never carries them.
func (c client) IsScopeAllowed(scope string) bool {
	if scope == adminapi.ScopeRead || scope == adminapi.ScopeWrite {
		return false
	}
	return slices.Contains(supportedScopes, scope) || slices.Contains(c.policyScopes, scope)
}
func (c client) IDTokenUserinfoClaimsAssertion() bool { return false }

// clientScopes are the scopes of a client_credentials token requested
// with scopes. Scopes about a user (OIDC's) are dropped, as the token has
// no user; an admin API scope the client is not granted
// (storage.Client.AdminAPI) is refused with invalid_scope rather than
// dropped (RFC 6749 §5.2: it exceeds what the client was granted), so a
// misconfigured automation fails at once and plainly instead of with a
// 403 on its first call.
func (c client) clientScopes(scopes []string) ([]string, error) {
	kept := slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool { return slices.Contains(supportedScopes, sc) })
	for _, sc := range kept {
		if adminapi.IsScope(sc) && !adminapi.Granted(c.AdminAPI, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("this client is not granted the scope %s", sc)
		}
	}
	return kept, nil
}

// ClockSkew is zero: the library subtracts it from auth_time, which must stay
// the true time of authentication (OIDC Core §2).
func (c client) ClockSkew() time.Duration { return 0 }

// parRequired reports whether /authorize admits only pushed requests from
// c (RFC 9126 §5): the client asked for it, its profile needs it (FAPI 2.0
// Security Profile §5.3.1.2), or the server requires it of every client.
//
// The server-wide switch leaves out Keystep's own portal client: its
// requests are made by Keystep itself in the same browser, to a redirect
// URI on the issuer, and the portal and console gate every page on the
// session's level (requireLevel); requiring it to push would lock the
// operator out of the console that turns the switch off again.
func (c client) parRequired(serverWide bool) bool {
	return c.RequirePAR || c.Profile == storage.ProfileFAPI2 || serverWide && c.ID != AccountClientID
}

// fapi2 reports whether c is held to the FAPI 2.0 Security Profile.
func (c client) fapi2() bool { return c.Profile == storage.ProfileFAPI2 }

func (c client) hasGrant(g oidc.GrantType) bool {
	return slices.Contains(c.Client.GrantTypes, string(g))
}

// redirectRegistered reports whether uri is one of registered: exactly,
// or for a native app a loopback URI that differs from a registered
// loopback URI only in its port (RFC 8252 §7.3, where the app picks a free
// port at run time). Scheme, host, path and query must match as
// registered: http://127.0.0.1/cb does not admit https://localhost:N/cb or
// http://[::1]:N/cb. A fragment is never allowed (RFC 6749 §3.1.2).
func (c client) redirectRegistered(registered []string, uri string) bool {
	if slices.Contains(registered, uri) {
		return true
	}
	if !c.Native {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || !isLoopbackURL(u) || u.Fragment != "" || u.RawFragment != "" || strings.Contains(uri, "#") {
		return false
	}
	for _, r := range registered {
		reg, err := url.Parse(r)
		if err != nil || !isLoopbackURL(reg) || reg.Fragment != "" {
			continue
		}
		if reg.Scheme == u.Scheme && reg.Hostname() == u.Hostname() && reg.User.String() == u.User.String() &&
			reg.EscapedPath() == u.EscapedPath() && reg.RawQuery == u.RawQuery && reg.ForceQuery == u.ForceQuery {
			return true
		}
	}
	return false
}

// isLoopbackURL reports whether u is an http(s) URL on a loopback host.
func isLoopbackURL(u *url.URL) bool {
	return (u.Scheme == "http" || u.Scheme == "https") && u.Opaque == "" && isLoopbackHost(u.Hostname())
}

// authRequest adapts storage.AuthRequest to op.AuthRequest.
type authRequest struct{ storage.AuthRequest }

func (a authRequest) GetID() string         { return a.ID }
func (a authRequest) GetACR() string        { return a.ACR }
func (a authRequest) GetAMR() []string      { return a.AMR }
func (a authRequest) GetAudience() []string { return []string{a.ClientID} }
func (a authRequest) GetAuthTime() time.Time {
	return a.AuthTime
}
func (a authRequest) GetClientID() string { return a.ClientID }
func (a authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: oidc.CodeChallengeMethod(a.CodeChallengeMethod)}
}
func (a authRequest) GetNonce() string                   { return a.Nonce }
func (a authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.ResponseType) }
func (a authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.ResponseMode) }
func (a authRequest) GetScopes() []string                { return a.Scopes }
func (a authRequest) GetState() string                   { return a.State }
func (a authRequest) GetSubject() string                 { return a.Subject }
func (a authRequest) Done() bool                         { return a.AuthRequest.Done }

func (a authRequest) grant() storage.Grant {
	return storage.Grant{
		GrantID: a.ID, ClientID: a.ClientID, Subject: a.Subject,
		Scopes: a.Scopes, Audience: a.GetAudience(),
		ACR: a.ACR, AMR: a.AMR, AuthTime: a.AuthTime, SessionID: a.SessionID,
		AuthorizationDetails: a.AuthRequest.AuthorizationDetails,
	}
}

// refreshRequest adapts a presented refresh token to op.RefreshTokenRequest.
// It deliberately does not implement op.AuthRequest (see zitadel-oidc notes
// §2.2); acr reaches refreshed ID tokens through SetUserinfoFromRequest.
type refreshRequest struct {
	familyID string
	gen      int64 // the presented token's generation
	// successor is set for a retry within the client's reuse interval:
	// the generation the presented token was already rotated to.
	successor int64
	// legacyID is the storage ID (hash) of a token from before families,
	// which is upgraded into family familyID rather than rotated.
	legacyID  string
	grant     storage.Grant
	expiresAt time.Time // the family's; rotation does not extend it
	createdAt time.Time // the family's (the first token's): what a client's refresh lifetime counts from
}

func (r *refreshRequest) GetAMR() []string            { return r.grant.AMR }
func (r *refreshRequest) GetAudience() []string       { return r.grant.Audience }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.grant.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.grant.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.grant.Scopes }
func (r *refreshRequest) GetSubject() string          { return r.grant.Subject }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.grant.Scopes = s }

// clientCredentialsRequest is the token request of the client_credentials grant.
type clientCredentialsRequest struct {
	clientID string
	scopes   []string
}

func (c clientCredentialsRequest) GetSubject() string    { return c.clientID }
func (c clientCredentialsRequest) GetAudience() []string { return []string{c.clientID} }
func (c clientCredentialsRequest) GetScopes() []string   { return c.scopes }

// dpopRequired reports whether every token request of c must carry a DPoP
// proof: it asked for bound tokens (RFC 9449 §5.2), or is held to FAPI 2.0,
// whose only sender constraint here is DPoP (FAPI 2.0 Security Profile
// §5.3.2.2).
func (c client) dpopRequired() bool {
	return c.DPoPBoundAccessTokens || c.Profile == storage.ProfileFAPI2
}
