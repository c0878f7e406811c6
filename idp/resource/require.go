package resource

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/idp/dpop"
)

// Error codes of RFC 6750 §3.1 and RFC 9470 §3 (and, in details.go, of
// RFC 9396 resource servers).
const (
	errInvalidToken      = "invalid_token"
	errInsufficientAuth  = "insufficient_user_authentication"
	errInsufficientScope = "insufficient_scope"
)

// Require serves next only for requests whose access token verifies and
// meets req; next finds the claims with [ClaimsFrom]. Otherwise it answers
// with the challenge of RFC 6750 §3 / RFC 9470 §3 in WWW-Authenticate,
// under the DPoP scheme (RFC 9449 §7.1, with algs) when the request used
// DPoP or the API requires it ([WithDPoPRequired]), else Bearer:
//
//   - no token: 401 with a bare challenge (RFC 6750 §3.1: no error code
//     for a request without credentials);
//   - a token that fails [Verifier.Verify], a DPoP-bound token sent as
//     Bearer, a bearer token where DPoP is required, or a proof of another
//     key than the token's: 401 error="invalid_token". It names no
//     acr_values, max_age or scope, so an unauthenticated caller learns
//     nothing of the requirement (RFC 9470 §7);
//   - a DPoP proof that fails (htm, htu, iat, ath, replayed jti): 401
//     error="invalid_dpop_proof"; a missing or stale nonce with
//     [WithDPoPNonces]: 401 error="use_dpop_nonce" and a DPoP-Nonce header;
//   - acr not among req.ACR, or auth_time older than req.MaxAge: 401
//     error="insufficient_user_authentication" with acr_values and max_age
//     when set, and scope when scopes are missing too (RFC 9470 §3);
//   - a scope of req.Scope missing: 403 error="insufficient_scope" naming
//     every scope req.Scope lists (RFC 6750 §3.1);
//   - req.Details not covered by the token's authorization_details: 403
//     error="insufficient_authorization_details" with the wanted details
//     ([DetailsChallenge]);
//   - the issuer unreachable: 503, without a challenge, because the token
//     may be fine and the client should not throw it away.
func (v *Verifier) Require(req Requirement, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		cr, ok := requestCredentials(r)
		scheme := challenge{dpop: v.dpopRequired || cr.dpop}
		if !ok {
			v.writeChallenge(w, http.StatusUnauthorized, scheme)
			return
		}
		c, err := v.verify(ctx, cr.token)
		if err == nil {
			err = v.checkBinding(ctx, r, cr, c)
		}
		var de *errDPoP
		switch {
		case errors.Is(err, ErrInvalidToken):
			v.log.DebugContext(ctx, "access token rejected", "error", err)
			scheme.err, scheme.desc = errInvalidToken, "The access token is invalid or has expired"
			v.writeChallenge(w, http.StatusUnauthorized, scheme)
			return
		case errors.As(err, &de):
			v.log.DebugContext(ctx, "access token rejected", "error", err)
			scheme.dpop, scheme.err, scheme.desc = true, de.code, de.desc
			v.writeChallenge(w, http.StatusUnauthorized, scheme)
			return
		case err != nil:
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
			ch.dpop = scheme.dpop
			if len(missing) == 0 {
				ch.scope = nil
			}
			v.writeChallenge(w, http.StatusUnauthorized, ch)
			return
		}
		if len(missing) > 0 {
			v.log.DebugContext(ctx, "scope missing", "client_id", c.ClientID, "scope", strings.Join(missing, " "), "outcome", errInsufficientScope)
			scheme.err, scheme.desc, scheme.scope = errInsufficientScope, "The access token lacks a required scope", req.Scope
			v.writeChallenge(w, http.StatusForbidden, scheme)
			return
		}
		if req.Details != nil && !c.Covers(req.Details) {
			v.log.DebugContext(ctx, "authorization details do not cover the operation", "client_id", c.ClientID, "outcome", errInsufficientDetails)
			ch := detailsChallenge(req.Details, detailsDesc)
			ch.dpop = scheme.dpop
			v.writeChallenge(w, http.StatusForbidden, ch)
			return
		}
		next.ServeHTTP(w, r.WithContext(withClaims(ctx, c)))
	})
}

// writeChallenge writes c, and for use_dpop_nonce a fresh nonce (RFC 9449 §9).
func (v *Verifier) writeChallenge(w http.ResponseWriter, status int, c challenge) {
	if c.err == dpop.CodeUseNonce && v.nonces != nil {
		w.Header().Set(dpop.HeaderNonce, v.nonces.Issue(v.now()))
	}
	writeChallenge(w, status, c)
}

// Challenge answers 401 error="insufficient_user_authentication" with desc,
// and acr_values, max_age and scope from req where set (RFC 9470 §3). It is
// for handlers that decide per request, after [Verifier.Require] let the
// request in, that this operation needs more, say a large transfer. desc is
// for developers; characters RFC 6750 §3 does not allow in it are dropped.
// The challenge names the scheme the request's token came with: DPoP for a
// DPoP-bound token (RFC 9449 §7.1), Bearer otherwise.
func Challenge(w http.ResponseWriter, r *http.Request, req Requirement, desc string) {
	ch := stepUpChallenge(req, desc)
	if c, ok := ClaimsFrom(r.Context()); ok && c.JKT != "" {
		ch.dpop = true
	} else if cr, ok := requestCredentials(r); ok && cr.dpop {
		ch.dpop = true
	}
	writeChallenge(w, http.StatusUnauthorized, ch)
}

func stepUpChallenge(req Requirement, desc string) challenge {
	return challenge{err: errInsufficientAuth, desc: desc, acr: req.ACR, maxAge: req.MaxAge, scope: req.Scope}
}

type challenge struct {
	dpop      bool // the DPoP scheme with algs (RFC 9449 §7.1), else Bearer
	err, desc string
	acr       []string
	maxAge    time.Duration
	scope     []string
	details   string // base64url of the JSON array of wanted details
}

// String renders c as a Bearer or DPoP challenge (RFC 6750 §3, RFC 9449
// §7.1, RFC 7235 §4.1).
func (c challenge) String() string {
	var b strings.Builder
	if c.dpop {
		b.WriteString(dpop.Scheme)
	} else {
		b.WriteString("Bearer")
	}
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
	if c.details != "" {
		param("authorization_details", quote(c.details))
	}
	if c.dpop {
		param("algs", quote(strings.Join(dpop.AlgNames(), " ")))
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
