package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/adminapi"
	"github.com/keystep/keystep/idp/dpop"
)

// adminCaller verifies the access token of a call to the admin API: a
// live token of a client's own client_credentials grant (a token issued
// for a user is refused), sent as a bearer token, or with the DPoP scheme
// and a proof of its key for this request when it is DPoP-bound (RFC 9449
// §7.1; a bound token sent as a bearer token is refused, §7.2). The
// caller's grant is read from its registration now, not from the token.
// Only the Authorization header is read: never a cookie.
func (s *opServer) adminCaller(r *http.Request) (adminapi.Caller, error) {
	refuse := func(scheme, code, desc string) (adminapi.Caller, error) {
		return adminapi.Caller{}, &adminapi.AuthError{Scheme: scheme, Code: code, Description: desc}
	}
	auths := r.Header.Values("Authorization")
	if len(auths) == 0 {
		return refuse("Bearer", "", "an access token of the client's client_credentials grant is required")
	}
	scheme, tok, _ := strings.Cut(auths[0], " ")
	tok = strings.TrimSpace(tok)
	switch {
	case len(auths) > 1:
		return refuse("Bearer", "invalid_token", "send one Authorization header")
	case strings.EqualFold(scheme, "Bearer"):
		scheme = "Bearer"
	case strings.EqualFold(scheme, dpop.Scheme):
		scheme = dpop.Scheme
	default:
		return refuse("Bearer", "invalid_token", "send the access token with the Bearer or DPoP scheme")
	}
	if tok == "" {
		return refuse(scheme, "invalid_token", "the access token is missing")
	}
	// As on the OP's own routes: the issuer the token must name, and the
	// request state that carries a JWT's verified claims and the proof.
	ctx := context.WithValue(op.ContextWithIssuer(r.Context(), s.issuer), stateKey{}, &reqState{})
	st := stateFrom(ctx)
	if scheme == dpop.Scheme {
		st.dpopScheme = true
		// htu is the request's URL without query (RFC 9449 §4.3 point 9).
		p, err := s.dpop.proof(ctx, r.Header, r.Method, r.URL.Path, tok, false)
		switch {
		case errors.Is(err, dpop.ErrInvalidProof):
			return refuse(scheme, dpop.CodeInvalidProof, "the DPoP proof is invalid")
		case err != nil:
			return adminapi.Caller{}, err
		case p == nil:
			return refuse(scheme, dpop.CodeInvalidProof, "a DPoP-bound token needs a DPoP proof")
		}
		st.proof = p
	}
	id, _, ok := s.accessTokenID(ctx, tok)
	if !ok {
		return refuse(scheme, "invalid_token", "the access token is not valid")
	}
	at, err := s.ops.liveAccessToken(ctx, id)
	if err != nil {
		return refuse(scheme, "invalid_token", "the access token is not valid")
	}
	g := at.Grant
	switch {
	case !st.bindingHolds(g.JKT):
		// A bound token needs the DPoP scheme and a proof of its key; a
		// bearer token must not pretend to be bound.
		return refuse(dpop.Scheme, "invalid_token", "the access token is bound to a DPoP key this request does not prove")
	case g.Subject != "":
		return refuse(scheme, "invalid_token", "a token issued for a user cannot call the admin API; use the client's client_credentials grant")
	}
	c, err := s.store.ClientByID(ctx, g.ClientID)
	if err != nil {
		return refuse(scheme, "invalid_token", "the access token's client is gone")
	}
	return adminapi.Caller{ClientID: c.ID, Scopes: g.Scopes, Grant: c.AdminAPI}, nil
}
