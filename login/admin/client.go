package admin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// ClientSpec is a client as an operator writes it: the admin console's form,
// a `keystep apply` file, `keystep export` output, and the before and after
// of an admin audit event. It never holds a secret.
//
// Per-scope minimum acr values are global (the config file's scope_min_acr)
// and token lifetimes are fixed by the server; storage.Client has no field
// for either, so neither is here.
type ClientSpec struct {
	ID                     string          `json:"id"`
	Name                   string          `json:"name,omitempty"`
	RedirectURIs           []string        `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string        `json:"post_logout_redirect_uris,omitempty"`
	Public                 bool            `json:"public,omitempty"`
	Native                 bool            `json:"native,omitempty"`
	AuthMethod             string          `json:"auth_method,omitempty"`
	GrantTypes             []string        `json:"grant_types,omitempty"`
	IDTokenAlg             string          `json:"id_token_alg,omitempty"`
	AccessTokenFormat      string          `json:"access_token_format,omitempty"`
	JWKS                   json.RawMessage `json:"jwks,omitempty"`
	MinACR                 string          `json:"min_acr,omitempty"`
	Strict                 bool            `json:"strict,omitempty"`
	FirstParty             bool            `json:"first_party,omitempty"`
	RequirePKCE            bool            `json:"require_pkce,omitempty"`
	RateLimit              int             `json:"rate_limit,omitempty"` // token endpoints, requests/s; 0: the server's default
	// RefreshReuseInterval is a Go duration: how long a rotated refresh
	// token may be presented again by the client for the same successor
	// (storage.Client.RefreshReuseInterval). Empty is the default (10s),
	// "0s" none.
	RefreshReuseInterval string `json:"refresh_reuse_interval,omitempty"`
	// RequirePAR admits only pushed authorization requests (RFC 9126 §6).
	RequirePAR bool `json:"require_pushed_authorization_requests,omitempty"`
	// DPoPBoundAccessTokens requires DPoP proofs and binds the client's
	// tokens to its key (RFC 9449 §5.2).
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`
	// Profile is "" or storage.ProfileFAPI2; "none" is read as "".
	Profile string `json:"profile,omitempty"`
	// BackchannelLogoutURI receives logout tokens (OIDC Back-Channel
	// Logout 1.0 §2.2); BackchannelLogoutSessionRequired asks for sid.
	BackchannelLogoutURI             string `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool   `json:"backchannel_logout_session_required,omitempty"`
	// AuthorizationDetailsTypes are the authorization_details types (RFC
	// 9396) the client may request; each must be registered in the
	// server's policy (the config file's authorization_details_types).
	AuthorizationDetailsTypes []string `json:"authorization_details_types,omitempty"`
	// AdminAPI grants the client the admin API with its client_credentials
	// tokens: "" none, "read" (scope keystep:admin:read) or "write" (also
	// keystep:admin). Only a confidential client with client_credentials.
	AdminAPI string `json:"admin_api,omitempty"`
}

// Limits on a client's authorization details types.
const (
	// MaxDetailsTypes is the most types one client may register.
	MaxDetailsTypes = 32
	// MaxDetailsTypeLen is the longest type name.
	MaxDetailsTypeLen = 64
)

// MaxBackchannelLogoutURI bounds a back-channel logout URI's length, as
// browsers and servers bound URLs.
const MaxBackchannelLogoutURI = 2000

// MaxRateLimit bounds a client's rate limit: far above what one server
// grants, low enough that two seconds' worth is a sane burst.
const MaxRateLimit = 1_000_000

// MaxRefreshReuseInterval bounds a client's refresh reuse interval: it is
// a window in which a stolen rotated token is not recognised as reuse, so
// it is kept to what retries need (Okta allows at most 60 s too).
const MaxRefreshReuseInterval = time.Minute

// Client option values.
var (
	GrantTypes         = []string{"authorization_code", "refresh_token", "client_credentials"}
	AuthMethods        = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
	IDTokenAlgs        = []string{"RS256", "ES256", "EdDSA"}
	AccessTokenFormats = []string{"jwt", "opaque"}
	// Profiles are the security profiles a client can be held to: none
	// ("") or FAPI 2.0.
	Profiles = []string{"", storage.ProfileFAPI2}
	// FAPI2IDTokenAlgs are the ID token algorithms the FAPI 2.0 Security
	// Profile allows that Keystep signs with (§5.4.1: PS256, ES256,
	// EdDSA; Keystep has no PS256 key, and RS256 is not allowed).
	FAPI2IDTokenAlgs = []string{"ES256", "EdDSA"}
)

// SpecOf is the spec of a stored client.
func SpecOf(c storage.Client) ClientSpec {
	s := ClientSpec{
		ID: c.ID, Name: c.Name, RedirectURIs: slices.Clone(c.RedirectURIs), PostLogoutRedirectURIs: slices.Clone(c.PostLogoutRedirectURIs),
		Public: c.Public, Native: c.Native, AuthMethod: c.AuthMethod, GrantTypes: slices.Clone(c.GrantTypes),
		IDTokenAlg: c.IDTokenAlg, AccessTokenFormat: c.AccessTokenFormat, MinACR: c.MinACR, Strict: c.Strict,
		FirstParty: c.FirstParty, RequirePKCE: c.RequirePKCE,
		RateLimit: c.RateLimit, RequirePAR: c.RequirePAR, DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
		Profile: c.Profile, BackchannelLogoutURI: c.BackchannelLogoutURI, BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired,
		AuthorizationDetailsTypes: slices.Clone(c.AuthorizationDetailsTypes), AdminAPI: c.AdminAPI,
	}
	switch d := c.RefreshReuseInterval; {
	case d < 0:
		s.RefreshReuseInterval = "0s"
	case d > 0:
		s.RefreshReuseInterval = d.String()
	}
	if c.JWKS != "" {
		s.JWKS = json.RawMessage(c.JWKS)
	}
	return s.Normalize()
}

// Normalize fills the defaults, so that two specs meaning the same client
// compare equal: grants authorization_code and refresh_token, RS256 ID
// tokens (OIDC Core §15.1), JWT access tokens, the auth method the client
// type implies, PKCE for public clients, and the JWKS in canonical JSON.
//
// The FAPI 2.0 profile is decided here too: it switches on PKCE, pushed
// requests and DPoP-bound tokens, whatever their own settings say, so the
// places that enforce those read one switch each; and its defaults are
// ES256 ID tokens and private_key_jwt (ValidateClient refuses the rest).
func (s ClientSpec) Normalize() ClientSpec {
	s.ID = strings.TrimSpace(s.ID)
	s.Profile = strings.TrimSpace(s.Profile)
	if s.Profile == "none" {
		s.Profile = ""
	}
	fapi2 := s.Profile == storage.ProfileFAPI2
	s.BackchannelLogoutURI = strings.TrimSpace(s.BackchannelLogoutURI)
	s.AdminAPI = strings.TrimSpace(s.AdminAPI)
	s.Name = strings.TrimSpace(s.Name)
	s.RedirectURIs = trimList(s.RedirectURIs)
	s.PostLogoutRedirectURIs = trimList(s.PostLogoutRedirectURIs)
	s.GrantTypes = trimList(s.GrantTypes)
	s.AuthorizationDetailsTypes = trimList(s.AuthorizationDetailsTypes)
	if len(s.GrantTypes) == 0 {
		s.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	if s.IDTokenAlg == "" {
		s.IDTokenAlg = "RS256"
		if fapi2 {
			s.IDTokenAlg = "ES256"
		}
	}
	if s.AccessTokenFormat == "" {
		s.AccessTokenFormat = "jwt"
	}
	if len(bytes.TrimSpace(s.JWKS)) == 0 || string(bytes.TrimSpace(s.JWKS)) == "null" {
		s.JWKS = nil
	} else if canon, err := canonicalJSON(s.JWKS); err == nil {
		s.JWKS = canon
	}
	if s.AuthMethod == "" {
		switch {
		case s.Public:
			s.AuthMethod = "none"
		case s.JWKS != nil || fapi2:
			s.AuthMethod = "private_key_jwt"
		default:
			s.AuthMethod = "client_secret_basic"
		}
	}
	// A public client must use PKCE whatever the flag says (RFC 9700 §2.1.1).
	s.RequirePKCE = s.RequirePKCE || s.Public || fapi2
	// FAPI 2.0 §5.3.2.1: pushed requests and sender-constrained tokens.
	s.RequirePAR = s.RequirePAR || fapi2
	s.DPoPBoundAccessTokens = s.DPoPBoundAccessTokens || fapi2
	s.RefreshReuseInterval = strings.TrimSpace(s.RefreshReuseInterval)
	if d, err := time.ParseDuration(s.RefreshReuseInterval); err == nil {
		s.RefreshReuseInterval = d.String()
		if d == storage.DefaultRefreshReuseInterval {
			s.RefreshReuseInterval = ""
		}
	}
	return s
}

// reuseInterval is the spec's refresh reuse interval as stored: 0 for the
// default, negative for none. Text that is not a duration is the default
// (ValidateClient reports it).
func (s ClientSpec) reuseInterval() time.Duration {
	d, err := time.ParseDuration(s.RefreshReuseInterval)
	switch {
	case err != nil:
		return 0
	case d == 0:
		return -1
	}
	return d
}

func trimList(in []string) []string {
	var out []string
	for _, v := range in {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func canonicalJSON(raw []byte) (json.RawMessage, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v) // sorted keys, no spaces
}

// UsesSecret reports whether the client authenticates with a shared secret.
func (s ClientSpec) UsesSecret() bool {
	return !s.Public && (s.AuthMethod == "client_secret_basic" || s.AuthMethod == "client_secret_post")
}

// Client is the spec as a storage client, without a secret or timestamps.
func (s ClientSpec) Client() storage.Client {
	s = s.Normalize()
	return storage.Client{
		ID: s.ID, Name: s.Name, RedirectURIs: s.RedirectURIs, PostLogoutRedirectURIs: s.PostLogoutRedirectURIs,
		Public: s.Public, Native: s.Native, AuthMethod: s.AuthMethod, GrantTypes: s.GrantTypes,
		IDTokenAlg: s.IDTokenAlg, AccessTokenFormat: s.AccessTokenFormat, JWKS: string(s.JWKS), MinACR: s.MinACR,
		Strict: s.Strict, FirstParty: s.FirstParty, RequirePKCE: s.RequirePKCE,
		RateLimit:            s.RateLimit,
		RefreshReuseInterval: s.reuseInterval(),
		RequirePAR:           s.RequirePAR, DPoPBoundAccessTokens: s.DPoPBoundAccessTokens, Profile: s.Profile,
		BackchannelLogoutURI: s.BackchannelLogoutURI, BackchannelLogoutSessionRequired: s.BackchannelLogoutSessionRequired,
		AuthorizationDetailsTypes: s.AuthorizationDetailsTypes, AdminAPI: s.AdminAPI,
	}
}

// Problem is one thing wrong with an input, named by its field (the JSON
// name, so the console can show it next to the field and a file's error can
// point at the key). Message is the English text the CLI and the admin API
// show; Key and Args are the same message for [Problem.In] to translate.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Key     string `json:"-"`
	Args    []any  `json:"-"`
}

// NewProblem is the problem with field whose message is key (an English
// text with fmt verbs, the catalogs' key) filled by args. An argument that
// is an [i18n.Text] is a message too, translated with it.
func NewProblem(field, key string, args ...any) Problem {
	return Problem{Field: field, Message: i18n.Msg(key, args...).String(), Key: key, Args: args}
}

// In is p in tr's language. A problem without a key (policy.Compile's
// diagnostics, which name field paths) is its Message as it is.
func (p Problem) In(tr *i18n.Printer) string {
	if p.Key == "" {
		return p.Message
	}
	return i18n.Msg(p.Key, p.Args...).In(tr)
}

// InvalidError carries every problem found in one input.
type InvalidError struct{ Problems []Problem }

func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Message
	}
	return strings.Join(lines, "\n")
}

// ValidateRedirectURI checks a redirect or post-logout redirect URI:
// absolute, no fragment, https except on loopback hosts (RFC 6749 §3.1.2,
// RFC 8252 §7.3), and for native apps also a private-use scheme in
// reverse-domain form (RFC 8252 §7.1). Its error is an [i18n.Text].
func ValidateRedirectURI(s string, native bool) error {
	if t, bad := checkRedirectURI(s, native, redirectURIMessages); bad {
		return t
	}
	return nil
}

// uriMessages are what a redirect URI check says, each with the URI as
// its argument: one set for redirect URIs, one for post-logout ones.
type uriMessages struct{ absolute, fragment, https string }

var (
	redirectURIMessages = uriMessages{
		absolute: i18n.N("redirect URI %q must be absolute"),
		fragment: i18n.N("redirect URI %q must not have a fragment"),
		https:    i18n.N("redirect URI %q must use https (http only for localhost)"),
	}
	postLogoutURIMessages = uriMessages{
		absolute: i18n.N("post-logout redirect URI %q must be absolute"),
		fragment: i18n.N("post-logout redirect URI %q must not have a fragment"),
		https:    i18n.N("post-logout redirect URI %q must use https (http only for localhost)"),
	}
)

// checkRedirectURI is ValidateRedirectURI, saying what it finds in m's
// words; bad reports that it found something.
func checkRedirectURI(s string, native bool, m uriMessages) (t i18n.Text, bad bool) {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" && u.Scheme != "" && !native {
		return i18n.Msg(m.absolute, s), true
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return i18n.Msg(m.fragment, s), true
	}
	h := u.Hostname()
	switch {
	case u.Scheme == "https" && h != "":
	case u.Scheme == "http" && loopback(h):
	case native && u.Scheme != "http" && u.Scheme != "https" && strings.Contains(u.Scheme, "."):
	default:
		return i18n.Msg(m.https, s), true
	}
	return i18n.Text{}, false
}

// loopback reports whether a URI's host is this machine, where plain http
// is allowed for development (RFC 8252 §7.3).
func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// ValidateBackchannelLogoutURI checks a back-channel logout URI: absolute
// https (http only for loopback hosts), no fragment (OIDC Back-Channel
// Logout 1.0 §2.2), no user name or password, at most
// MaxBackchannelLogoutURI characters. Where it may point (private
// addresses) is decided when a logout token is delivered, not here. Its
// error is an [i18n.Text].
func ValidateBackchannelLogoutURI(s string) error {
	if t, bad := checkBackchannelLogoutURI(s); bad {
		return t
	}
	return nil
}

// checkBackchannelLogoutURI is ValidateBackchannelLogoutURI; bad reports
// that it found something.
func checkBackchannelLogoutURI(s string) (t i18n.Text, bad bool) {
	if len(s) > MaxBackchannelLogoutURI {
		return i18n.Msg(i18n.N("back-channel logout URI: use at most %d characters"), MaxBackchannelLogoutURI), true
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return i18n.Msg(i18n.N("back-channel logout URI %q must be an absolute https URL"), s), true
	case u.Fragment != "" || strings.Contains(s, "#"):
		return i18n.Msg(i18n.N("back-channel logout URI %q must not have a fragment"), s), true
	case u.User != nil:
		return i18n.Msg(i18n.N("back-channel logout URI %q must not hold a user name or password"), s), true
	case u.Scheme == "https" && u.Hostname() != "":
	case u.Scheme == "http" && loopback(u.Hostname()):
	default:
		return i18n.Msg(i18n.N("back-channel logout URI %q must use https (http only for localhost)"), s), true
	}
	return i18n.Text{}, false
}

// ValidateClient reports every problem with s (normalised first) at once.
// Minimum acr values must name a level of p; builtIn is the account portal's
// client ID, which no other client may take.
func ValidateClient(s ClientSpec, p *stepup.Policy, builtIn string) []Problem {
	fapi2 := s.Profile == storage.ProfileFAPI2
	s = s.Normalize()
	var out []Problem
	addProblem := func(field, key string, args ...any) {
		out = append(out, NewProblem(field, key, args...))
	}
	switch {
	case s.ID == "":
		addProblem("id", "client ID is required")
	case len(s.ID) > 128 || strings.ContainsFunc(s.ID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == ':' }):
		addProblem("id", "client ID %q: use at most 128 characters, without spaces or ':'", s.ID)
	case builtIn != "" && s.ID == builtIn:
		addProblem("id", "client ID %q is the account portal's built-in client", s.ID)
	}
	if len(s.Name) > 100 || strings.ContainsFunc(s.Name, unicode.IsControl) {
		addProblem("name", "name: use at most 100 characters, without control characters")
	}
	for _, g := range s.GrantTypes {
		if !slices.Contains(GrantTypes, g) {
			addProblem("grant_types", "unknown grant type %q (want %s)", g, strings.Join(GrantTypes, ", "))
		}
	}
	if dup := duplicate(s.GrantTypes); dup != "" {
		addProblem("grant_types", "grant type %q is listed twice", dup)
	}
	code := slices.Contains(s.GrantTypes, "authorization_code")
	if slices.Contains(s.GrantTypes, "refresh_token") && !code {
		addProblem("grant_types", "refresh_token needs authorization_code")
	}
	if s.RefreshReuseInterval != "" {
		d, err := time.ParseDuration(s.RefreshReuseInterval)
		switch {
		case err != nil:
			addProblem("refresh_reuse_interval", "refresh reuse interval %q is not a duration such as 10s", s.RefreshReuseInterval)
		case d < 0 || d > MaxRefreshReuseInterval:
			addProblem("refresh_reuse_interval", "refresh reuse interval %s: use 0s (none) up to %s", d, MaxRefreshReuseInterval)
		}
	}
	if s.Public && slices.Contains(s.GrantTypes, "client_credentials") {
		addProblem("grant_types", "public clients cannot use client_credentials")
	}
	if code && len(s.RedirectURIs) == 0 {
		addProblem("redirect_uris", "at least one redirect URI is required for authorization_code")
	}
	for _, u := range s.RedirectURIs {
		if t, bad := checkRedirectURI(u, s.Native, redirectURIMessages); bad {
			out = append(out, NewProblem("redirect_uris", t.Key, t.Args...))
		}
	}
	if dup := duplicate(s.RedirectURIs); dup != "" {
		addProblem("redirect_uris", "redirect URI %q is listed twice", dup)
	}
	for _, u := range s.PostLogoutRedirectURIs {
		if t, bad := checkRedirectURI(u, s.Native, postLogoutURIMessages); bad {
			out = append(out, NewProblem("post_logout_redirect_uris", t.Key, t.Args...))
		}
	}
	switch {
	case !slices.Contains(AuthMethods, s.AuthMethod):
		addProblem("auth_method", "auth method %q: want %s", s.AuthMethod, strings.Join(AuthMethods, ", "))
	case s.Public && s.AuthMethod != "none":
		addProblem("auth_method", "public clients have no credentials: auth method must be none, not %s", s.AuthMethod)
	case !s.Public && s.AuthMethod == "none":
		addProblem("auth_method", "auth method none is for public clients; a confidential client needs client_secret_basic, client_secret_post or private_key_jwt")
	case s.AuthMethod == "private_key_jwt" && s.JWKS == nil:
		addProblem("jwks", "private_key_jwt needs the client's public keys (a JWK Set)")
	case s.AuthMethod != "private_key_jwt" && s.JWKS != nil:
		addProblem("jwks", "public keys are only used with private_key_jwt")
	}
	if s.JWKS != nil {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(s.JWKS, &set); err != nil || len(set.Keys) == 0 {
			addProblem("jwks", "JWKS: want a JSON Web Key Set with at least one key")
		} else {
			for i, k := range set.Keys {
				if !k.Valid() || !k.IsPublic() {
					addProblem("jwks", "JWKS: key %d is not a valid public key", i)
				} else if t, weak := checkKey(k, fapi2); weak {
					addProblem("jwks", "JWKS: key %d: %s", i, t)
				}
			}
		}
	}
	if !slices.Contains(IDTokenAlgs, s.IDTokenAlg) {
		addProblem("id_token_alg", "ID token algorithm %q: want %s", s.IDTokenAlg, strings.Join(IDTokenAlgs, ", "))
	}
	if !slices.Contains(AccessTokenFormats, s.AccessTokenFormat) {
		addProblem("access_token_format", "access token format %q: want jwt or opaque", s.AccessTokenFormat)
	}
	switch {
	case s.RateLimit < 0 || s.RateLimit > MaxRateLimit:
		addProblem("rate_limit", "rate limit %d: want requests a second from 1 to %d, or 0 for the server's default", s.RateLimit, MaxRateLimit)
	case s.RateLimit > 0 && s.Public:
		addProblem("rate_limit", "a public client is not authenticated, so its requests count against each address's limit: leave its rate limit at 0")
	}
	switch {
	case !slices.Contains(Profiles, s.Profile):
		addProblem("profile", "profile %q: want fapi2 or none", s.Profile)
	case s.Profile == storage.ProfileFAPI2:
		// FAPI 2.0 Security Profile §5.3.2.1 (confidential clients,
		// private_key_jwt or mTLS, and Keystep has no mTLS) and §5.4.1
		// (signing algorithms). PAR, PKCE and DPoP are switched on by
		// Normalize.
		switch {
		case s.Public:
			addProblem("profile", "a FAPI 2.0 client must be confidential, not public")
		case s.AuthMethod != "private_key_jwt":
			addProblem("profile", "a FAPI 2.0 client must authenticate with private_key_jwt and its registered public keys, not %s", s.AuthMethod)
		}
		if !slices.Contains(FAPI2IDTokenAlgs, s.IDTokenAlg) && slices.Contains(IDTokenAlgs, s.IDTokenAlg) {
			// FAPI2IDTokenAlgs are two: the message names both, "or" in its words.
			addProblem("id_token_alg", "a FAPI 2.0 client's ID tokens must be signed with %s or %s, not %s", FAPI2IDTokenAlgs[0], FAPI2IDTokenAlgs[1], s.IDTokenAlg)
		}
	}
	if s.BackchannelLogoutURI != "" {
		if t, bad := checkBackchannelLogoutURI(s.BackchannelLogoutURI); bad {
			out = append(out, NewProblem("backchannel_logout_uri", t.Key, t.Args...))
		}
	} else if s.BackchannelLogoutSessionRequired {
		addProblem("backchannel_logout_session_required", "asking for the session ID (sid) in logout tokens needs a back-channel logout URI")
	}
	if s.MinACR != "" && p != nil {
		if _, _, ok := p.Lookup(s.MinACR); !ok {
			addProblem("min_acr", "minimum acr %q is not a configured level (%s)", s.MinACR, strings.Join(p.Values(), ", "))
		}
	}
	if len(s.AuthorizationDetailsTypes) > MaxDetailsTypes {
		addProblem("authorization_details_types", "authorization details types: at most %d", MaxDetailsTypes)
	}
	for _, t := range s.AuthorizationDetailsTypes {
		if len(t) > MaxDetailsTypeLen || strings.ContainsFunc(t, func(r rune) bool { return !detailsTypeChar(r) }) {
			addProblem("authorization_details_types", "authorization details type %q: use at most %d characters of a-z, 0-9 and _ . : -", t, MaxDetailsTypeLen)
		}
	}
	if dup := duplicate(s.AuthorizationDetailsTypes); dup != "" {
		addProblem("authorization_details_types", "authorization details type %q is listed twice", dup)
	}
	// The admin API is called with a client's own client_credentials
	// tokens: a public client has no credentials to get one with.
	switch {
	case s.AdminAPI == "":
	case s.AdminAPI != storage.AdminAPIRead && s.AdminAPI != storage.AdminAPIWrite:
		addProblem("admin_api", "admin API access %q: want read, write or none", s.AdminAPI)
	case s.Public:
		addProblem("admin_api", "a public client cannot be granted the admin API: it has no credentials")
	case !slices.Contains(s.GrantTypes, "client_credentials"):
		addProblem("admin_api", "the admin API is called with client_credentials tokens: add the client_credentials grant")
	}
	return out
}

func detailsTypeChar(r rune) bool {
	return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || strings.ContainsRune("_.:-", r)
}

// RegisteredDetailsTypes reports the client's authorization details types
// that r, the server's policy, does not register. It is the one check of a
// client's types against the policy: [Service] runs it when it knows the
// policy, and so does the CLI when it reads the config file. A nil r is a
// policy not known here and checks nothing; an empty registry refuses
// every type.
func RegisteredDetailsTypes(s ClientSpec, r *details.Registry) []Problem {
	if r == nil {
		return nil
	}
	var out []Problem
	known := r.Types()
	for _, t := range s.Normalize().AuthorizationDetailsTypes {
		if slices.Contains(known, t) {
			continue
		}
		if len(known) == 0 {
			out = append(out, NewProblem("authorization_details_types", "authorization details type %q is not in the server's policy (authorization_details_types; none are registered)", t))
		} else {
			out = append(out, NewProblem("authorization_details_types", "authorization details type %q is not in the server's policy (authorization_details_types; registered: %s)", t, strings.Join(known, ", ")))
		}
	}
	return out
}

func duplicate(list []string) string {
	seen := map[string]bool{}
	for _, v := range list {
		if seen[v] {
			return v
		}
		seen[v] = true
	}
	return ""
}

// DiffClients lists what changes from a to b, one line per field:
// `min_acr: (none) → phr`. Both are normalised first; nil means no change.
func DiffClients(a, b ClientSpec) []string {
	a, b = a.Normalize(), b.Normalize()
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		if name == "jwks" {
			if !bytes.Equal(a.JWKS, b.JWKS) {
				out = append(out, "jwks: public keys changed")
			}
			continue
		}
		if reflect.DeepEqual(x, y) || isEmpty(x) && isEmpty(y) {
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s → %s", name, show(x), show(y)))
	}
	return out
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case string:
		return v == ""
	case []string:
		return len(v) == 0
	case bool:
		return !v
	case int:
		return v == 0
	}
	return false
}

func show(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return "(none)"
		}
		return v
	case []string:
		if len(v) == 0 {
			return "(none)"
		}
		return "[" + strings.Join(v, " ") + "]"
	case int:
		if v == 0 {
			return "(default)"
		}
	}
	return fmt.Sprint(v)
}

// snapshot is the JSON kept as "before" and "after" in admin audit events.
func snapshot(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// CheckKey refuses a client's signing key that is too weak: RSA below
// 2048 bits (NIST SP 800-131A), and for a fapi2 client anything but RSA of
// 2048 bits or more (PS256), EC on P-256 (ES256) or Ed25519 (EdDSA) (FAPI
// 2.0 Security Profile §5.4.1). The token endpoint checks it again on use,
// for keys stored before this rule.
func CheckKey(k jose.JSONWebKey, fapi2 bool) error {
	if t, weak := checkKey(k, fapi2); weak {
		return t
	}
	return nil
}

// checkKey is CheckKey; weak reports that it found k too weak.
func checkKey(k jose.JSONWebKey, fapi2 bool) (t i18n.Text, weak bool) {
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return i18n.Msg(i18n.N("an RSA key must have at least 2048 bits, this one has %d"), pub.N.BitLen()), true
		}
	case *ecdsa.PublicKey:
		if fapi2 && pub.Curve != elliptic.P256() {
			return i18n.Msg(i18n.N("a FAPI 2.0 client's EC key must be on P-256, not %s"), pub.Curve.Params().Name), true
		}
	case ed25519.PublicKey:
	default:
		if fapi2 {
			return i18n.Msg(i18n.N("a FAPI 2.0 client signs with RSA (PS256), EC P-256 (ES256) or Ed25519 (EdDSA), not %s"), fmt.Sprintf("%T", k.Key)), true
		}
	}
	return i18n.Text{}, false
}
