package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// parPath is the pushed authorization request endpoint (RFC 9126 §2),
// published as pushed_authorization_request_endpoint.
const parPath = "/oauth/par"

// parURNPrefix starts every request_uri the PAR endpoint hands out (RFC
// 9126 §2.2); the rest is a random token whose hash is the stored ID.
const parURNPrefix = "urn:ietf:params:oauth:request_uri:"

// parTTL is how long a pushed request waits for the browser: long enough
// for a redirect, short enough that a leaked request_uri is soon worthless
// (RFC 9126 §2.2 suggests 5 to 600 seconds).
const parTTL = 60 * time.Second

// clientAuthParams are the client authentication parameters of a PAR
// request; they are not authorization request parameters and are never
// stored.
var clientAuthParams = []string{"client_secret", "client_assertion", "client_assertion_type"}

// pushAuthorization is the PAR endpoint (RFC 9126). The client
// authenticates as at the token endpoint; the parameters — or a request
// object's, when one is sent — are validated exactly as at /authorize
// (validateAuthRequest) and stored for a single use within parTTL. A DPoP
// proof sent along binds the request's code to its key (bindPushed). Every
// refusal is an OAuth error in JSON and stores nothing.
func (s *opServer) pushAuthorization(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	// RFC 9449 §8.2: as at the token endpoint, every answer carries the
	// current nonce for a DPoP proof.
	w.Header().Set(dpop.HeaderNonce, s.dpop.nonces.Issue(s.now()))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if msg := checkParams(r); msg != "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	// The library reads the issuer from the context (client assertions'
	// audience); its router is not in front of this endpoint.
	ctx := op.ContextWithIssuer(r.Context(), s.issuer)
	uri, err := s.push(ctx, r)
	if err != nil {
		s.writePARError(ctx, w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int    `json:"expires_in"`
	}{uri, int(parTTL / time.Second)})
}

// push authenticates, validates and stores one pushed request and returns
// its request_uri.
func (s *opServer) push(ctx context.Context, r *http.Request) (string, error) {
	// The proof first: a client asked for a nonce (use_dpop_nonce) retries
	// with the same request object, whose jti is not spent yet.
	proof, err := s.dpop.proof(ctx, r.Header, http.MethodPost, parPath, "", s.dpop.tokenNonce)
	if err != nil {
		return "", oauthDPoPError(err)
	}
	cc, err := clientCredentials(r)
	if err != nil {
		return "", err
	}
	c, err := s.authenticateClient(ctx, r.Header, cc)
	if err != nil {
		return "", err
	}
	params := url.Values{}
	for k, v := range r.PostForm {
		params[k] = v
	}
	for _, k := range clientAuthParams {
		params.Del(k)
	}
	if params.Has("request_uri") {
		// RFC 9126 §2.1: a pushed request cannot point at another.
		return "", oidc.ErrInvalidRequest().WithDescription("request_uri must not be sent to the pushed authorization request endpoint")
	}
	if id := params.Get("client_id"); id != "" && id != c.ID {
		return "", oidc.ErrInvalidRequest().WithDescription("client_id does not match the authenticated client")
	}
	if params.Has("request") {
		// RFC 9126 §3: the request object's parameters are the request.
		if params, err = s.verifyRequestObject(ctx, c, params.Get("request")); err != nil {
			return "", err
		}
	}
	if err := bindPushed(proof, params); err != nil {
		return "", err
	}
	params.Set("client_id", c.ID)
	req := new(oidc.AuthRequest)
	if err := s.Provider().Decoder().Decode(req, params); err != nil {
		return "", oidc.ErrInvalidRequest().WithDescription("the authorization request cannot be read")
	}
	if _, err := s.validateAuthRequest(ctx, c, req, params, atPAR); err != nil {
		return "", err
	}
	token, err := factor.NewToken()
	if err != nil {
		return "", oidc.ErrServerError().WithParent(err)
	}
	p := storage.PushedRequest{ID: factor.HashToken(token), ClientID: c.ID, Params: params.Encode(), ExpiresAt: s.now().Add(parTTL)}
	if err := s.store.CreatePushedRequest(ctx, p); err != nil {
		return "", oidc.ErrServerError().WithParent(err)
	}
	return parURNPrefix + token, nil
}

// bindPushed binds a pushed request's code to the key of the DPoP proof
// sent with it (RFC 9449 §10.1), checked as at the token endpoint: the
// proof's thumbprint becomes dpop_jkt, and a dpop_jkt sent beside the
// proof must be that thumbprint. Without a proof the request is unchanged
// (a dpop_jkt parameter alone binds as at /authorize).
func bindPushed(p *dpop.Proof, params url.Values) error {
	if p == nil {
		return nil
	}
	if jkt := params.Get("dpop_jkt"); jkt != "" && jkt != p.JKT {
		return errInvalidDPoP("dpop_jkt does not match the key of the DPoP proof")
	}
	params.Set("dpop_jkt", p.JKT)
	return nil
}

// redeemPushed spends the pushed request a request_uri names for client
// clientID and returns its parameters (RFC 9126 §4): unknown, expired,
// already used or another client's, it is refused.
func (s *opServer) redeemPushed(ctx context.Context, clientID, requestURI string) (url.Values, error) {
	token, ok := strings.CutPrefix(requestURI, parURNPrefix)
	if !ok || token == "" {
		// Keystep does not fetch request objects from URLs (OIDC Core §6.2).
		return nil, errors.New("request_uri is not one the PAR endpoint issued")
	}
	if clientID == "" {
		return nil, errors.New("client_id is required beside request_uri")
	}
	p, err := s.store.ConsumePushedRequest(ctx, factor.HashToken(token), clientID, s.now())
	if err != nil {
		return nil, fmt.Errorf("pushed request: %w", err)
	}
	params, err := url.ParseQuery(p.Params)
	if err != nil || params.Get("client_id") != clientID {
		return nil, errors.New("stored pushed request is unreadable")
	}
	return params, nil
}

// clientCredentials reads the client authentication of a PAR request as
// the library reads it at the token endpoint: from HTTP Basic or the form,
// never both (RFC 6749 §2.3). None at all is a nil result, which
// authenticateClient refuses with invalid_client.
func clientCredentials(r *http.Request) (*op.ClientCredentials, error) {
	f := r.PostForm
	cc := &op.ClientCredentials{
		ClientID: f.Get("client_id"), ClientSecret: f.Get("client_secret"),
		ClientAssertion: f.Get("client_assertion"), ClientAssertionType: f.Get("client_assertion_type"),
	}
	assertion, secret := cc.ClientAssertion != "", cc.ClientSecret != ""
	if assertion && secret {
		return nil, oidc.ErrInvalidRequest().WithDescription("client authentication must not use more than one method")
	}
	if id, pass, ok := r.BasicAuth(); ok {
		if assertion || secret {
			return nil, oidc.ErrInvalidRequest().WithDescription("client authentication must not use more than one method")
		}
		var err1, err2 error
		cc.ClientID, err1 = url.QueryUnescape(id)
		cc.ClientSecret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return nil, oidc.ErrInvalidClient().WithDescription("invalid basic auth header")
		}
	}
	if assertion && cc.ClientAssertionType != oidc.ClientAssertionTypeJWTAssertion {
		return nil, oidc.ErrInvalidClient().WithDescription("client_assertion_type must be %s", oidc.ClientAssertionTypeJWTAssertion)
	}
	if cc.ClientID == "" && !assertion {
		return nil, nil
	}
	return cc, nil
}

// writePARError answers a refused pushed request (RFC 9126 §2.3, with the
// token endpoint's error shape, RFC 6749 §5.2): 401 for a client that did
// not authenticate, 500 for a server fault, else 400.
func (s *opServer) writePARError(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) {
	e := oidc.DefaultToServerError(err, "pushed authorization request")
	status := http.StatusBadRequest
	switch e.ErrorType {
	case oidc.InvalidClient:
		status = http.StatusUnauthorized
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+s.issuer+`"`)
		}
	case oidc.ServerError:
		status = http.StatusInternalServerError
		s.log.ErrorContext(ctx, "pushed authorization request failed", "err", err)
		e.Description = "internal error"
	}
	writeOAuthError(w, status, string(e.ErrorType), e.Description)
}
