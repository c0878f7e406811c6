package idp

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// dpopKind is the one-time-token kind of spent DPoP proof jtis: the
// replay cache lives in storage, so it holds across instances (RFC 9449
// §11.1), and expired entries are swept with the other one-time tokens.
const dpopKind = "dpop"

// dpopGuard checks the DPoP proofs of requests to Keystep's endpoints.
type dpopGuard struct {
	issuer string
	store  storage.Store
	now    func() time.Time
	nonces *dpop.Nonces
	// tokenNonce requires a server nonce in proofs at the token endpoint
	// (RFC 9449 §8); Config.DPoPNonceNotRequired turns it off.
	tokenNonce bool
}

func newDPoPGuard(issuer string, store storage.Store, masterKey []byte, now func() time.Time, tokenNonce bool) (*dpopGuard, error) {
	key := sha256.Sum256(append([]byte("keystep dpop nonce v1\x00"), masterKey...))
	n, err := dpop.NewNonces(key[:], 0)
	if err != nil {
		return nil, err
	}
	return &dpopGuard{issuer: issuer, store: store, now: now, nonces: n, tokenNonce: tokenNonce}, nil
}

// errReplayedProof is a proof whose jti was spent before.
var errReplayedProof = errors.New("dpop: proof replayed")

// proof verifies the DPoP header of a request for path (method, the access
// token presented with it, if any) and spends its jti. It returns nil and
// no error when the request has no DPoP header. Refusals wrap
// dpop.ErrInvalidProof or dpop.ErrUseNonce; anything else is the server's.
func (g *dpopGuard) proof(ctx context.Context, h http.Header, method, path, accessToken string, nonce bool) (*dpop.Proof, error) {
	vals := h.Values(dpop.HeaderProof)
	switch {
	case len(vals) == 0:
		return nil, nil
	case len(vals) > 1: // RFC 9449 §4.3 point 1
		return nil, errors.Join(dpop.ErrInvalidProof, errors.New("more than one DPoP header"))
	}
	now := g.now()
	c := dpop.Check{Method: method, URL: g.issuer + path, AccessToken: accessToken, Now: now}
	if nonce {
		c.Nonces = g.nonces
	}
	p, err := dpop.Verify(vals[0], c)
	if err != nil {
		return nil, err
	}
	// A proof passes while its iat is within dpop.Window of the clock, so
	// no later than now + 2×Window (its iat may be ahead by Window):
	// remembered that long, a jti is never spent twice.
	err = g.store.CreateOneTimeToken(ctx, dpopKind, factor.HashToken(p.JKT+"\x00"+p.JTI), now.Add(2*dpop.Window))
	if errors.Is(err, storage.ErrAlreadyExists) {
		return nil, errors.Join(dpop.ErrInvalidProof, errReplayedProof)
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// oauthDPoPError is the token endpoint's answer to a proof refused by
// dpopGuard.proof: invalid_dpop_proof or use_dpop_nonce, with status 400
// (RFC 9449 §5, §8); the fresh nonce is in every token response
// (opMiddleware.wrapOP).
func oauthDPoPError(err error) error {
	if !errors.Is(err, dpop.ErrInvalidProof) && !errors.Is(err, dpop.ErrUseNonce) {
		return oidc.ErrServerError().WithParent(err)
	}
	if errors.Is(err, dpop.ErrUseNonce) {
		return (&oidc.Error{ErrorType: dpop.CodeUseNonce, Description: "the DPoP proof needs the server nonce in the DPoP-Nonce header"}).WithParent(err)
	}
	desc := "the DPoP proof is invalid"
	if errors.Is(err, errReplayedProof) {
		desc = "the DPoP proof was already used"
	}
	return errInvalidDPoP(desc).WithParent(err)
}

func errInvalidDPoP(desc string) *oidc.Error {
	return &oidc.Error{ErrorType: dpop.CodeInvalidProof, Description: desc}
}

// tokenProof checks the DPoP proof of a token request by c: a proof sent
// is always checked, and a client that must use DPoP must send one
// (RFC 9449 §5.2 dpop_bound_access_tokens; FAPI 2.0 §5.3.2.2).
func (s *opServer) tokenProof(ctx context.Context, h http.Header, c *client) (*dpop.Proof, error) {
	p, err := s.dpop.proof(ctx, h, http.MethodPost, tokenPath, "", s.dpop.tokenNonce)
	if err != nil {
		return nil, oauthDPoPError(err)
	}
	if p == nil && c.dpopRequired() {
		return nil, errInvalidDPoP("this client must send a DPoP proof")
	}
	return p, nil
}

// tokenPath is the token endpoint's path (the library's default).
const tokenPath = "/oauth/token"

// issue is the token response of the code, refresh and client-credentials
// grants. The library's op.CreateTokenResponse cannot say token_type DPoP,
// put cnf in an access token or type it at+jwt, so the tokens are stored
// through the same opStorage methods the library would call (with the
// same choice of whether a refresh token comes along), the JWT access
// token is signed here, and the ID token's at_hash is over the access
// token actually issued. A proof binds the tokens to its key (RFC 9449
// §6): Grant.JKT, cnf.jkt, token_type DPoP.
func (s *opServer) issue(ctx context.Context, req op.TokenRequest, c *client, proof *dpop.Proof, code, refreshToken string, grant oidc.GrantType) (*op.Response, error) {
	st := stateFrom(ctx)
	st.jkt = ""
	if proof != nil {
		st.jkt = proof.JKT
	}
	ttl, err := s.lifetimes(ctx, req)
	if err != nil {
		return nil, err
	}
	st.ttl = &ttl
	if rr, ok := req.(*refreshRequest); ok && !rr.createdAt.IsZero() && s.ops.now().After(rr.createdAt.Add(ttl.refresh)) {
		// The active policy shortened this client's refresh lifetime
		// since the family began: it ends by the new one.
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token expired")
	}
	var id, refresh string
	var exp time.Time
	if needsRefreshToken(req, c) {
		id, refresh, exp, err = s.ops.CreateAccessAndRefreshTokens(ctx, req, refreshToken)
	} else {
		id, exp, err = s.ops.CreateAccessToken(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	g := st.issued
	if g == nil {
		return nil, oidc.ErrServerError().WithDescription("no tokens were stored for the grant")
	}
	now := s.ops.now()
	var at string
	if c.AccessTokenType() == op.AccessTokenTypeJWT {
		at, err = s.signAccessToken(ctx, op.IssuerFromContext(ctx), *g, req, id, now, exp)
	} else {
		at, err = op.CreateBearerToken(id, req.GetSubject(), s.Provider().Crypto())
	}
	if err != nil {
		return nil, err
	}
	resp := &oidc.AccessTokenResponse{
		AccessToken: at, RefreshToken: refresh, TokenType: oidc.BearerToken,
		ExpiresIn: uint64(max(exp.Sub(now), 0) / time.Second), Scope: req.GetScopes(),
	}
	if g.JKT != "" {
		resp.TokenType = dpop.Scheme // RFC 9449 §5
	}
	if idr, ok := req.(op.IDTokenRequest); ok && grant != oidc.GrantTypeClientCredentials {
		// OIDC Core §3.1.3.6: at_hash of the access token in this response.
		if resp.IDToken, err = op.CreateIDToken(ctx, op.IssuerFromContext(ctx), idr, c.IDTokenLifetime(), at, code, s.ops, c); err != nil {
			return nil, err
		}
	}
	if ar, ok := req.(op.AuthRequest); ok {
		// As the library does once a code's tokens are made.
		if err := s.ops.DeleteAuthRequest(ctx, ar.GetID()); err != nil {
			return nil, err
		}
	}
	if err := s.recordIssued(ctx, grant); err != nil {
		return nil, err
	}
	if d := tokenDetails(ctx, *g); d != "" {
		// RFC 9396 §7: the details the access token was issued for.
		return op.NewResponse(tokenResponseWithDetails{resp, json.RawMessage(d)}), nil
	}
	return op.NewResponse(resp), nil
}

// lifetimes are the token lifetimes of req's client: under the policy
// version its sign-in was decided under for a code (the whole sign-in,
// token included, is one version's), under the active one for a refresh.
// Client credentials keep the server's.
func (s *opServer) lifetimes(ctx context.Context, req op.TokenRequest) (lifetimes, error) {
	switch r := req.(type) {
	case authRequest:
		pol, err := s.pols.At(ctx, r.PolicyVersion)
		if err != nil {
			return lifetimes{}, oidc.ErrServerError().WithParent(err)
		}
		return lifetimesOf(pol.Client(r.ClientID)), nil
	case *refreshRequest:
		return lifetimesOf(s.pols.Current().Client(r.GetClientID())), nil
	case clientCredentialsRequest:
		return lifetimesOf(s.pols.Current().Client(r.clientID)), nil
	case *clientCredentialsRequest:
		return lifetimesOf(s.pols.Current().Client(r.clientID)), nil
	}
	return lifetimesOf(policy.Client{}), nil
}

// tokenResponseWithDetails is a token response with authorization_details
// (RFC 9396 §7), a member oidc.AccessTokenResponse has no field for.
type tokenResponseWithDetails struct {
	*oidc.AccessTokenResponse
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
}

// needsRefreshToken decides as the library does (op.needsRefreshToken): a
// code redemption gets a refresh token with offline_access when the
// client may refresh; a refresh always gets its successor.
func needsRefreshToken(req op.TokenRequest, c *client) bool {
	switch r := req.(type) {
	case op.AuthRequest:
		return slices.Contains(r.GetScopes(), oidc.ScopeOfflineAccess) && r.GetResponseType() == oidc.ResponseTypeCode && c.hasGrant(oidc.GrantTypeRefreshToken)
	case op.RefreshTokenRequest:
		return true
	}
	return false
}

// accessTokenType is the JOSE typ of Keystep's JWT access tokens (RFC 9068
// §2.1); accessTokenAlg signs them (DESIGN §4).
const (
	accessTokenType = "at+jwt"
	accessTokenAlg  = "ES256"
)

// signAccessToken signs the RFC 9068 access token id of grant g for req,
// with the RFC 9470 §6.1 claims of a user's grant and cnf.jkt of a bound
// one (RFC 9449 §6.1).
func (s *opServer) signAccessToken(ctx context.Context, issuer string, g storage.Grant, req op.TokenRequest, id string, now, exp time.Time) (string, error) {
	aud := req.GetAudience()
	if len(aud) == 0 {
		aud = []string{g.ClientID}
	}
	claims := map[string]any{
		"iss": issuer, "sub": req.GetSubject(), "aud": aud,
		"exp": exp.Unix(), "iat": now.Unix(), "jti": id,
		"client_id": g.ClientID, "scope": strings.Join(g.Scopes, " "),
	}
	if g.Subject != "" {
		claims["acr"] = g.ACR
		claims["amr"] = g.AMR
		claims["auth_time"] = g.AuthTime.Unix()
		if g.SessionID != "" {
			claims["sid"] = g.SessionID
		}
	} else {
		// A client's own token has no row: it names the registration it
		// was issued to, so a client deleted and made anew under the same
		// ID (in the same second, even) does not revive it.
		c, err := s.store.ClientByID(ctx, g.ClientID)
		if err != nil {
			return "", err
		}
		claims[clientRegistrationClaim] = registrationOf(c)
	}
	if g.JKT != "" {
		claims["cnf"] = map[string]string{"jkt": g.JKT}
	}
	if d := tokenDetails(ctx, g); d != "" {
		claims["authorization_details"] = json.RawMessage(d) // RFC 9396 §9.1
	}
	return s.keys.sign(ctx, accessTokenAlg, accessTokenType, claims)
}
