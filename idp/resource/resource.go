// Package resource is for resource servers (APIs) that accept Keystep access
// tokens, and for the clients that call them.
//
// A resource server opens a [Verifier] for the issuer, then wraps each handler
// with [Verifier.Require] and the [Requirement] it needs: acceptable acr
// values, a maximum authentication age, scopes. A request that does not meet
// it gets the OAuth 2.0 Step Up Authentication Challenge (RFC 9470 §3):
//
//	401 WWW-Authenticate: Bearer error="insufficient_user_authentication",
//	    error_description="…", acr_values="urn:keystep:acr:mfa phr", max_age=300
//
// and the client, after [ParseChallenge], sends the user back to the
// authorization endpoint with [ChallengeInfo.AuthorizeParams] (RFC 9470 §4).
//
// For transactions (RFC 9396 Rich Authorization Requests) the API states
// what it is about to do as an authorization details object — in
// [Requirement.Details], with [Verifier.RequireDetails] when the request
// body says it, or with [CheckDetails] from the handler — and the token's
// approved authorization_details must cover it; otherwise 403
// error="insufficient_authorization_details" names the details to ask for
// ([DetailsChallenge]).
//
// Tokens are checked locally when they are JWTs (RFC 9068), with keys from the
// issuer's JWKS, or at the issuer's introspection endpoint (RFC 7662, with the
// RFC 9470 §6.2 members) when [WithIntrospection] is set. DPoP-bound tokens
// (RFC 9449) are accepted with a proof of their key, under the DPoP scheme;
// see [WithDPoPRequired] and [WithPublicURL]. This package imports no other
// Keystep package but idp/dpop (standard library and go-jose only), so an
// API does not link the provider.
package resource

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// Requirement is what a protected resource needs from the access token.
type Requirement struct {
	// ACR lists the acceptable acr values, in order of preference; the
	// token's acr must equal one of them exactly. Empty accepts any acr,
	// or none. A challenge names them all (RFC 9470 §3 acr_values).
	ACR []string
	// MaxAge, when positive, requires the token's auth_time to be at most
	// MaxAge before now (RFC 9470 §3 max_age); a token without auth_time
	// then fails. A challenge states it in whole seconds, rounded down.
	MaxAge time.Duration
	// Scope lists scopes the token must all carry (RFC 6750 §3.1
	// insufficient_scope).
	Scope []string
	// Details, when set, is what the operation does, as an authorization
	// details object (RFC 9396) the token's details must cover
	// ([Claims.Covers]): 403 error="insufficient_authorization_details"
	// otherwise ([DetailsChallenge]). For an operation known only from the
	// request, use [Verifier.RequireDetails] or [CheckDetails].
	Details map[string]any
}

// Claims is what a verified access token says about the authentication
// event and the grant behind it.
type Claims struct {
	Subject   string
	ClientID  string
	ACR       string
	SessionID string // sid
	AMR       []string
	Scope     []string
	AuthTime  time.Time // zero when the token has no auth_time
	Expiry    time.Time
	// JKT is the thumbprint of the DPoP key the token is bound to (cnf.jkt,
	// RFC 9449 §6); "" for a bearer token.
	JKT string
	// AuthorizationDetails are the authorization_details the person
	// approved (RFC 9396 §9.1, §9.2), the JSON array as the token or the
	// introspection response holds it; nil when it has none. See
	// [Claims.Covers].
	AuthorizationDetails json.RawMessage
}

// authenticated reports whether c meets the acr and max_age parts of r at
// now. A token whose auth_time is ahead of now (clock skew) is fresh.
func (r Requirement) authenticated(c Claims, now time.Time) bool {
	if len(r.ACR) > 0 && !slices.Contains(r.ACR, c.ACR) {
		return false
	}
	if r.MaxAge > 0 && (c.AuthTime.IsZero() || now.Sub(c.AuthTime) > r.MaxAge) {
		return false
	}
	return true
}

// missingScopes returns the scopes of r that c lacks, in r's order.
func (r Requirement) missingScopes(c Claims) []string {
	var out []string
	for _, s := range r.Scope {
		if !slices.Contains(c.Scope, s) {
			out = append(out, s)
		}
	}
	return out
}

type claimsKey struct{}

// ClaimsFrom returns the claims [Verifier.Require] (or
// [Verifier.RequireDetails]) put in ctx.
func ClaimsFrom(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}

func withClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}
