package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/keystep/keystep/idp/dpop"
)

// The bench's HTTP side: an RP and a browser that drive the HTML login the
// way conformance/harness_test.go does, over keep-alive connections.

const userAgent = "keystep-bench/1"

// redirectURI is every bench client's redirect URI. Nothing listens
// there: the browser stops at the redirect and reads the code from it.
const redirectURI = "http://127.0.0.1/keystep-bench/callback"

// target is the server under test.
type target struct {
	base      *url.URL // where requests go (--url or the child's)
	endpoints endpoints
	tokenURL  string // the token endpoint as discovery names it: DPoP proofs' htu
	transport *http.Transport
	plain     *http.Client // no cookies, no redirects: token, userinfo, introspection, JWKS

	nonceMu sync.Mutex
	nonce   string // the last DPoP-Nonce the server sent
}

// endpoints are the discovery endpoints as paths on base: behind a
// proxy the issuer may name another host than the one benchmarked.
type endpoints struct {
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	Userinfo      string `json:"userinfo_endpoint"`
	Introspection string `json:"introspection_endpoint"`
	JWKS          string `json:"jwks_uri"`
}

func newTarget(ctx context.Context, base string, workers int) (*target, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil {
		return nil, fmt.Errorf("bench: server URL: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Each worker holds a connection; browsers of the step-up preparation
	// and token calls add a few more. Idle ones must stay open, or every
	// request pays a TCP handshake and the server a new goroutine stack.
	tr.MaxIdleConns = 4*workers + 16
	tr.MaxIdleConnsPerHost = 4*workers + 16
	tr.IdleConnTimeout = 90 * time.Second
	t := &target{base: u, transport: tr}
	t.plain = &http.Client{Transport: tr, Timeout: 60 * time.Second, CheckRedirect: noRedirects}
	var d endpoints
	if err := t.getJSON(ctx, "/.well-known/openid-configuration", &d); err != nil {
		return nil, fmt.Errorf("bench: discovery: %w", err)
	}
	t.tokenURL = d.Token
	for _, e := range []*string{&d.Authorization, &d.Token, &d.Userinfo, &d.Introspection, &d.JWKS} {
		p, err := url.Parse(*e)
		if err != nil || p.Path == "" {
			return nil, fmt.Errorf("bench: discovery lists a bad endpoint %q", *e)
		}
		*e = p.Path
	}
	t.endpoints = d
	return t, nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (t *target) url(path string) string { return t.base.String() + path }

func (t *target) close() { t.transport.CloseIdleConnections() }

func (t *target) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url(path), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := t.plain.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// client is a registered RP. With a key, its token requests carry a
// DPoP proof of it (RFC 9449 §5), so its tokens are bound to that key.
type client struct {
	id, secret string
	key        *dpop.Prover
}

// tokenResponse is RFC 6749 §5.1 or §5.2.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	RefreshToken     string `json:"refresh_token"`
	IDToken          string `json:"id_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// post sends a form to path, authenticated as c with HTTP Basic
// (RFC 6749 §2.3.1: both parts form-encoded first), with a DPoP proof when
// proof is not "", and decodes JSON.
func (t *target) post(ctx context.Context, path string, c client, form url.Values, proof string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	if proof != "" {
		req.Header.Set(dpop.HeaderProof, proof)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", userAgent)
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := t.plain.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if n := resp.Header.Get(dpop.HeaderNonce); n != "" {
		t.setNonce(n)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return resp.StatusCode, fmt.Errorf("POST %s: status %d, not JSON: %.200s", path, resp.StatusCode, body)
	}
	return resp.StatusCode, nil
}

// token sends a token request. A client with a key signs a DPoP proof for
// it with the server's last nonce; when the server wants a newer one
// (use_dpop_nonce, RFC 9449 §8), the request is sent once more with it.
func (t *target) token(ctx context.Context, c client, form url.Values) (tokenResponse, error) {
	for try := 0; ; try++ {
		var proof string
		if c.key != nil {
			var err error
			if proof, err = c.key.Proof(http.MethodPost, t.tokenURL, "", t.lastNonce(), time.Now()); err != nil {
				return tokenResponse{}, err
			}
		}
		var tr tokenResponse
		status, err := t.post(ctx, t.endpoints.Token, c, form, proof, &tr)
		if err != nil {
			return tr, err
		}
		if c.key != nil && try == 0 && tr.Error == dpop.CodeUseNonce {
			continue
		}
		if status != http.StatusOK || tr.AccessToken == "" {
			return tr, fmt.Errorf("token (%s): status %d %s %s", form.Get("grant_type"), status, tr.Error, tr.ErrorDescription)
		}
		if c.key != nil && tr.TokenType != dpop.Scheme {
			return tr, fmt.Errorf("token (%s): token_type %q, want DPoP", form.Get("grant_type"), tr.TokenType)
		}
		return tr, nil
	}
}

// lastNonce is the server's last DPoP-Nonce; "" before the first.
func (t *target) lastNonce() string {
	t.nonceMu.Lock()
	defer t.nonceMu.Unlock()
	return t.nonce
}

func (t *target) setNonce(n string) {
	t.nonceMu.Lock()
	t.nonce = n
	t.nonceMu.Unlock()
}

func (t *target) exchange(ctx context.Context, c client, code string, a authState) (tokenResponse, error) {
	tr, err := t.token(ctx, c, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {a.verifier}})
	if err == nil && tr.IDToken == "" {
		err = errors.New("token: no id_token")
	}
	return tr, err
}

func (t *target) refresh(ctx context.Context, c client, rt string) (tokenResponse, error) {
	tr, err := t.token(ctx, c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if err == nil && (tr.RefreshToken == "" || tr.IDToken == "") {
		err = errors.New("refresh: no new refresh token or ID token")
	}
	return tr, err
}

func (t *target) clientCredentials(ctx context.Context, c client) error {
	_, err := t.token(ctx, c, url.Values{"grant_type": {"client_credentials"}})
	return err
}

func (t *target) introspect(ctx context.Context, c client, token string) error {
	var out struct {
		Active bool   `json:"active"`
		ACR    string `json:"acr"`
	}
	status, err := t.post(ctx, t.endpoints.Introspection, c, url.Values{"token": {token}}, "", &out)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !out.Active {
		return fmt.Errorf("introspection: status %d, active %v", status, out.Active)
	}
	return nil
}

// get fetches path, with a bearer token when given, and discards the body.
func (t *target) get(ctx context.Context, path, bearer string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url(path), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", userAgent)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := t.plain.Do(req)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return cerr
}

// browser is a user agent with its own cookie jar. It follows redirects
// within the server and stops at a page or at a redirect to the RP.
type browser struct {
	t  *target
	hc *http.Client
	ip string // sent as X-Forwarded-For
}

func (t *target) browser(ip string) *browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &browser{t: t, ip: ip, hc: &http.Client{Transport: t.transport, Jar: jar, Timeout: 60 * time.Second, CheckRedirect: noRedirects}}
}

// page is where a browse ended: a page of the server, or a redirect
// to the RP.
type page struct {
	status int
	url    string
	body   string
	rp     *url.URL
}

// id returns the value of the form's hidden input "id" (the step token).
func (p page) id() string {
	m := hiddenID.FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

var hiddenID = regexp.MustCompile(`name="id" value="([^"]*)"`)

// has reports whether the page has a form posting to action.
func (p page) has(action string) bool { return strings.Contains(p.body, `action="`+action+`"`) }

func (p page) String() string {
	if p.rp != nil {
		return "redirect to the RP with " + p.rp.RawQuery
	}
	title := p.body
	if i := strings.Index(title, "<title>"); i >= 0 {
		title = title[i+len("<title>"):]
		if j := strings.Index(title, "<"); j >= 0 {
			title = title[:j]
		}
	} else {
		title = ""
	}
	return fmt.Sprintf("%d at %s (%s)", p.status, p.url, strings.TrimSpace(title))
}

func (b *browser) do(req *http.Request) (page, error) {
	for range 10 {
		req.Header.Set("User-Agent", userAgent)
		req.Header.Set("X-Forwarded-For", b.ip)
		resp, err := b.hc.Do(req)
		if err != nil {
			return page{}, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return page{}, err
		}
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return page{status: resp.StatusCode, url: req.URL.String(), body: string(body)}, nil
		}
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			return page{}, fmt.Errorf("bad redirect from %s: %w", req.URL.Path, err)
		}
		if strings.HasPrefix(loc.String(), redirectURI) {
			return page{status: resp.StatusCode, url: req.URL.String(), rp: loc}, nil
		}
		// Every other redirect is to the server itself, whatever host its
		// issuer names.
		next := *b.t.base
		next.Path, next.RawQuery = loc.Path, loc.RawQuery
		req, err = http.NewRequestWithContext(req.Context(), http.MethodGet, next.String(), nil)
		if err != nil {
			return page{}, err
		}
	}
	return page{}, errors.New("redirect loop")
}

func (b *browser) get(ctx context.Context, u string) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return page{}, err
	}
	return b.do(req)
}

func (b *browser) post(ctx context.Context, path string, form url.Values) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.t.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		return page{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// authState is what the RP keeps for one authorization request.
type authState struct{ state, nonce, verifier string }

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorize starts a code flow with PKCE (S256) and follows it as far as
// the server goes without input.
func (b *browser) authorize(ctx context.Context, c client, scope string, extra url.Values) (page, authState, error) {
	a := authState{state: randomToken(), nonce: randomToken(), verifier: randomToken() + randomToken()}
	sum := sha256.Sum256([]byte(a.verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {redirectURI},
		"scope": {scope}, "state": {a.state}, "nonce": {a.nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	p, err := b.get(ctx, b.t.url(b.t.endpoints.Authorization)+"?"+q.Encode())
	return p, a, err
}

// code returns the authorization code the browse ended with.
func codeOf(p page, a authState) (string, error) {
	if p.rp == nil {
		return "", fmt.Errorf("expected a redirect to the RP, got %s", p)
	}
	q := p.rp.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("RP got error %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != a.state || q.Get("code") == "" {
		return "", errors.New("RP got no code or a wrong state")
	}
	return q.Get("code"), nil
}

// signIn runs authorize → password → callback for a browser without a
// session; the code is returned for exchange.
func (b *browser) signIn(ctx context.Context, c client, scope string, u *user, password string) (string, authState, error) {
	p, a, err := b.authorize(ctx, c, scope, nil)
	if err != nil {
		return "", a, err
	}
	if !p.has("/login/password") {
		return "", a, fmt.Errorf("expected the password form, got %s", p)
	}
	p, err = b.post(ctx, "/login/password", url.Values{"id": {p.id()}, "username": {u.name}, "password": {password}})
	if err != nil {
		return "", a, err
	}
	if p.has("/login/otp") {
		return "", a, errors.New("the server asked for a second factor at sign-in (its risk engine: does it trust 127.0.0.1 as a proxy?)")
	}
	code, err := codeOf(p, a)
	return code, a, err
}

// idTokenACR reads the acr claim of a JWT without verifying it: the bench
// checks the server did what was asked, it is not an RP.
func idTokenACR(jwt string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("ID token is not a JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("ID token payload: %w", err)
	}
	var c struct {
		ACR string `json:"acr"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("ID token payload: %w", err)
	}
	return c.ACR, nil
}
