package resource

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error codes of RFC 6750 §3.1 and RFC 9470 §3.
const (
	errInvalidToken      = "invalid_token"
	errInsufficientAuth  = "insufficient_user_authentication"
	errInsufficientScope = "insufficient_scope"
)

// Require serves next only for requests whose bearer token verifies and meets
// req; next finds the claims with [ClaimsFrom]. Otherwise it answers with the
// challenge of RFC 6750 §3 / RFC 9470 §3 in WWW-Authenticate:
//
//   - no bearer token: 401 with a bare Bearer challenge (RFC 6750 §3.1: no
//     error code for a request without credentials);
//   - a token that fails [Verifier.Verify]: 401 error="invalid_token". It
//     names no acr_values, max_age or scope, so an unauthenticated caller
//     learns nothing of the requirement (RFC 9470 §7);
//   - acr not among req.ACR, or auth_time older than req.MaxAge: 401
//     error="insufficient_user_authentication" with acr_values and max_age
//     when set, and scope when scopes are missing too (RFC 9470 §3);
//   - a scope of req.Scope missing: 403 error="insufficient_scope" naming
//     every scope req.Scope lists (RFC 6750 §3.1);
//   - the issuer unreachable: 503, without a challenge, because the token
//     may be fine and the client should not throw it away.
func (v *Verifier) Require(req Requirement, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		token, ok := bearerToken(r)
		if !ok {
			writeChallenge(w, http.StatusUnauthorized, challenge{})
			return
		}
		c, err := v.Verify(ctx, token)
		if errors.Is(err, ErrInvalidToken) {
			v.log.DebugContext(ctx, "access token rejected", "error", err)
			writeChallenge(w, http.StatusUnauthorized, challenge{
				err:  errInvalidToken,
				desc: "The access token is invalid or has expired",
			})
			return
		}
		if err != nil {
			v.log.WarnContext(ctx, "access token not checked", "issuer", v.issuer, "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		missing := req.missingScopes(c)
		if !req.authenticated(c, v.now()) {
			v.log.DebugContext(ctx, "step-up required", "client_id", c.ClientID, "acr", c.ACR, "outcome", errInsufficientAuth)
			desc := "The access token's authentication is too old"
			if len(req.ACR) > 0 && !slices.Contains(req.ACR, c.ACR) {
				desc = "The access token's authentication context class is not accepted here"
			}
			ch := stepUpChallenge(req, desc)
			if len(missing) == 0 {
				ch.scope = nil
			}
			writeChallenge(w, http.StatusUnauthorized, ch)
			return
		}
		if len(missing) > 0 {
			v.log.DebugContext(ctx, "scope missing", "client_id", c.ClientID, "scope", strings.Join(missing, " "), "outcome", errInsufficientScope)
			writeChallenge(w, http.StatusForbidden, challenge{
				err:   errInsufficientScope,
				desc:  "The access token lacks a required scope",
				scope: req.Scope,
			})
			return
		}
		next.ServeHTTP(w, r.WithContext(withClaims(ctx, c)))
	})
}

// Challenge answers 401 error="insufficient_user_authentication" with desc,
// and acr_values, max_age and scope from req where set (RFC 9470 §3). It is
// for handlers that decide per request, after [Verifier.Require] let the
// request in, that this operation needs more, say a large transfer. desc is
// for developers; characters RFC 6750 §3 does not allow in it are dropped.
func Challenge(w http.ResponseWriter, req Requirement, desc string) {
	writeChallenge(w, http.StatusUnauthorized, stepUpChallenge(req, desc))
}

func stepUpChallenge(req Requirement, desc string) challenge {
	return challenge{err: errInsufficientAuth, desc: desc, acr: req.ACR, maxAge: req.MaxAge, scope: req.Scope}
}

// bearerToken returns the credentials of an Authorization: Bearer header
// (RFC 6750 §2.1; the scheme is case-insensitive, RFC 7235 §2.1). Tokens in
// the query or body (§2.2, §2.3) are not accepted.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

type challenge struct {
	err, desc string
	acr       []string
	maxAge    time.Duration
	scope     []string
}

// String renders c as a Bearer challenge (RFC 6750 §3, RFC 7235 §4.1).
func (c challenge) String() string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(value)
		sep = ", "
	}
	if c.err != "" {
		param("error", quote(c.err))
	}
	if d := descText(c.desc); d != "" {
		param("error_description", quote(d))
	}
	if len(c.acr) > 0 {
		param("acr_values", quote(strings.Join(c.acr, " ")))
	}
	if c.maxAge > 0 {
		// RFC 9470 §3: whole seconds; rounding down never allows more.
		param("max_age", strconv.FormatInt(int64(c.maxAge/time.Second), 10))
	}
	if len(c.scope) > 0 {
		param("scope", quote(strings.Join(c.scope, " ")))
	}
	return b.String()
}

func writeChallenge(w http.ResponseWriter, status int, c challenge) {
	w.Header().Set("WWW-Authenticate", c.String())
	w.WriteHeader(status)
}

// descText keeps the characters RFC 6750 §3 allows in error_description:
// %x20-21 / %x23-5B / %x5D-7E, that is printable ASCII but " and \.
func descText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// quote makes s an RFC 7230 §3.2.6 quoted-string, escaping " and \ and
// dropping control and non-ASCII characters.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
