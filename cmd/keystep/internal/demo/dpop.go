package demo

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp/dpop"
)

// The app talks OAuth itself where golang.org/x/oauth2 cannot: it pushes
// its authorization requests (RFC 9126), and every call with its tokens
// carries a DPoP proof (RFC 9449) signed by a key made for the session,
// which never leaves this process. A copied access token is worth nothing
// without that key: the dashboard's "What if it's stolen?" panel shows it.

// newSessionKey makes a session's DPoP key: ES256 on P-256.
func newSessionKey() (*dpop.Prover, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return dpop.NewProver(k, jose.ES256)
}

// oauthError is an OAuth error response (RFC 6749 §5.2).
type oauthError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *oauthError) Error() string {
	return fmt.Sprintf("status %d: %s %s", e.Status, e.Code, e.Description)
}

// postForm POSTs form to endpoint as the app's client (client_secret_basic:
// both parts form-encoded first, RFC 6749 §2.3.1), with extra headers,
// and decodes a JSON answer of status want into out.
func (a *App) postForm(ctx context.Context, endpoint string, form url.Values, header http.Header, want int, out any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(a.cfg.ClientID), url.QueryEscape(a.cfg.ClientSecret))
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.Header, err
	}
	if resp.StatusCode != want {
		e := &oauthError{Status: resp.StatusCode}
		_ = json.Unmarshal(body, e)
		return resp.Header, e
	}
	return resp.Header, json.Unmarshal(body, out)
}

// push sends an authorization request's parameters to Keystep's PAR
// endpoint and returns the URL the browser goes to: the authorization
// endpoint with client_id and request_uri, nothing else (RFC 9126 §4).
// What the request asks for, acr_values included, never passes through
// the browser, so nobody can edit it there.
func (a *App) push(ctx context.Context, c *conn, params url.Values) (string, error) {
	var out struct {
		RequestURI string `json:"request_uri"`
	}
	if _, err := a.postForm(ctx, c.par, params, nil, http.StatusCreated, &out); err != nil {
		return "", fmt.Errorf("pushed authorization request: %w", err)
	}
	if out.RequestURI == "" {
		return "", errors.New("pushed authorization request: no request_uri")
	}
	q := url.Values{"client_id": {a.cfg.ClientID}, "request_uri": {out.RequestURI}}
	return c.oauth.Endpoint.AuthURL + "?" + q.Encode(), nil
}

// tokenResponse is RFC 6749 §5.1 with the ID token.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	IDToken     string `json:"id_token"`
	// AuthorizationDetails are what Keystep granted (RFC 9396 §7).
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
}

// exchange redeems a code at the token endpoint with a DPoP proof of the
// session's key, so the tokens are bound to it. Keystep wants its current
// nonce in proofs (RFC 9449 §8): the first proof of a fresh app has none,
// Keystep answers use_dpop_nonce with one in DPoP-Nonce, and the request is
// sent again with it. Every token response carries the next nonce.
func (a *App) exchange(ctx context.Context, c *conn, key *dpop.Prover, code, verifier string) (tokenResponse, error) {
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {a.cfg.URL + "/callback"}, "code_verifier": {verifier},
	}
	var tr tokenResponse
	for try := 0; ; try++ {
		proof, err := key.Proof(http.MethodPost, c.oauth.Endpoint.TokenURL, "", a.keystepNonce(), a.cfg.Now())
		if err != nil {
			return tr, err
		}
		h, err := a.postForm(ctx, c.oauth.Endpoint.TokenURL, form, http.Header{dpop.HeaderProof: {proof}}, http.StatusOK, &tr)
		a.setKeystepNonce(h)
		var oe *oauthError
		if try == 0 && errors.As(err, &oe) && oe.Code == dpop.CodeUseNonce {
			continue
		}
		if err != nil {
			return tr, fmt.Errorf("token: %w", err)
		}
		if !strings.EqualFold(tr.TokenType, dpop.Scheme) {
			return tr, fmt.Errorf("token: token_type %q, want DPoP: the token is not bound to the app's key", tr.TokenType)
		}
		return tr, nil
	}
}

// keystepNonce is the last DPoP-Nonce Keystep sent; "" before the first.
func (a *App) keystepNonce() string {
	a.nonceMu.Lock()
	defer a.nonceMu.Unlock()
	return a.nonce
}

func (a *App) setKeystepNonce(h http.Header) {
	if n := h.Get(dpop.HeaderNonce); n != "" {
		a.nonceMu.Lock()
		a.nonce = n
		a.nonceMu.Unlock()
	}
}

// dpopRequest is req with the access token under the DPoP scheme and a
// proof of key for req (RFC 9449 §7.1); scheme is DPoP, or Bearer for the
// replay panel's thief. A nil key sends no proof.
func dpopRequest(req *http.Request, scheme, accessToken string, key *dpop.Prover, now time.Time) error {
	req.Header.Set("Authorization", scheme+" "+accessToken)
	if key == nil {
		return nil
	}
	u := *req.URL
	u.RawQuery, u.Fragment = "", ""
	proof, err := key.Proof(req.Method, u.String(), accessToken, "", now)
	if err != nil {
		return err
	}
	req.Header.Set(dpop.HeaderProof, proof)
	return nil
}

// userinfo fetches Keystep's userinfo with the session's DPoP-bound token.
func (a *App) userinfo(ctx context.Context, c *conn, key *dpop.Prover, accessToken string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.userinfo, nil)
	if err != nil {
		return nil, err
	}
	if err := dpopRequest(req, dpop.Scheme, accessToken, key, a.cfg.Now()); err != nil {
		return nil, err
	}
	res, err := a.send(req)
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusOK {
		return nil, fmt.Errorf("userinfo: status %d %s", res.status, res.header.Get("WWW-Authenticate"))
	}
	var out map[string]any
	return out, json.Unmarshal(res.body, &out)
}

// send does req and reads the answer.
func (a *App) send(req *http.Request) (apiResponse, error) {
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return apiResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return apiResponse{}, err
	}
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// newRequest is an API or Keystep request with a JSON body, if any.
func newRequest(ctx context.Context, method, u string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}
