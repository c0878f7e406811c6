package conformance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

func TestMain(m *testing.M) {
	// The OP library logs to the default logger; keep test output readable.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// clock is the server's time. It starts at the real time and only moves
// when a test says so.
type clock struct {
	mu sync.Mutex
	t  time.Time
	// runFrom, when set, makes the clock run: Now is t plus the real time
	// since runFrom. Tests whose tokens the OP library stamps with real
	// time (iat, nbf) and that run long on a busy machine use it.
	runFrom time.Time
}

// newClock starts a clock at the real time, in whole seconds, not at a fixed
// t0: the OP library stamps ID tokens' iat and exp with time.Now(), while the
// server (auth_time, code, session and token lifetimes) and the tests' checks
// (go-oidc's exp, the suite's iat window) use this clock, so the two must
// agree.
func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.runFrom.IsZero() {
		return c.t.Add(time.Since(c.runFrom))
	}
	return c.t
}

// run starts the clock from its current time.
func (c *clock) run() {
	c.mu.Lock()
	c.runFrom = time.Now()
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one Keystep server on SQLite with a confidential and a public client.
type env struct {
	t        *testing.T
	srv      *httptest.Server
	store    storage.Store
	clock    *clock
	issuer   string
	key      []byte
	rpSecret string
	noUsers  bool
	dbDir    string
	tls      bool
	server   *idp.Server
}

const (
	rpRedirect   = "https://rp.example/cb"
	rpLogout     = "https://rp.example/bye"
	rpClient     = "rp"
	publicClient = "spa"
	alice        = "alice"
	alicePass    = "correct horse battery staple"
)

type envOption func(*idp.Config)

// onLocalhost serves the issuer as http://localhost:PORT: WebAuthn needs a
// host name, and localhost is a secure context for browsers.
func onLocalhost(c *idp.Config) { c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1) }

func newEnvNoUsers(t *testing.T) *env { return newEnvWith(t, true, false) }

func newEnv(t *testing.T, opts ...envOption) *env { return newEnvWith(t, false, false, opts...) }

// newTLSEnv serves https on localhost, as a production issuer would.
func newTLSEnv(t *testing.T, opts ...envOption) *env { return newEnvWith(t, false, true, opts...) }

func setupLink(e *env) (string, error) {
	return admin.NewSetupLink(context.Background(), e.store, e.issuer, e.clock.Now())
}

func newEnvWith(t *testing.T, noUsers, tlsEnv bool, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, store: st, noUsers: noUsers, dbDir: dir, clock: newClock()}
	// The listener is up before the server is built (the issuer is its
	// URL); a request that comes early (a leftover client of an earlier
	// test reusing the port) gets 503 rather than racing the assignment.
	var h atomic.Pointer[idp.Server]
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := h.Load(); s != nil {
			s.ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	})
	e.tls = tlsEnv
	if tlsEnv {
		e.srv = httptest.NewTLSServer(handler)
		// WebAuthn and the issuer want a host name; the certificate covers it.
		e.issuer = strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)
	} else {
		e.srv = httptest.NewServer(handler)
		e.issuer = e.srv.URL
	}
	t.Cleanup(e.srv.Close)
	e.key = make([]byte, 32)
	_, _ = rand.Read(e.key)
	cfg := idp.Config{
		Issuer: e.issuer, Store: st, MasterKey: e.key, Policy: stepup.DefaultPolicy(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: e.clock.Now,
		Hasher: factor.NewTestPasswordHasher(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.issuer = cfg.Issuer // an option may move it (onLocalhost)
	s, err := idp.NewServer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.server = s
	h.Store(s)
	if e.noUsers {
		return e
	}
	e.addUser(alice, alicePass)
	secret := "s3cret-" + t.Name()
	e.rpSecret = secret
	e.addClient(storage.Client{ID: rpClient, Name: "Acme Payroll", SecretHash: factor.HashToken(secret),
		RedirectURIs: []string{rpRedirect}, PostLogoutRedirectURIs: []string{rpLogout},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"},
		IDTokenAlg: "RS256", FirstParty: true})
	e.addClient(storage.Client{ID: publicClient, Name: "Acme SPA", Public: true, AuthMethod: "none",
		RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code", "refresh_token"},
		IDTokenAlg: "ES256", RequirePKCE: true})
	return e
}

func (e *env) addUser(name, password string) storage.User {
	e.t.Helper()
	hash, err := factor.NewTestPasswordHasher().Hash(password)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now()
	u := storage.User{ID: "u-" + name, Username: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) addClient(c storage.Client) {
	e.t.Helper()
	c.CreatedAt, c.UpdatedAt = e.clock.Now(), e.clock.Now()
	if err := e.store.CreateClient(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
}

// browser is a user agent with its own cookie jar that never follows a
// redirect out of the server, so the RP side is observed exactly.
type browser struct {
	e      *env
	client *http.Client
	ip     string // sent as X-Forwarded-For when set
	ua     string // User-Agent when set
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is where a browse ended: either a page of ours or a redirect out.
type page struct {
	status   int
	header   http.Header
	url      string // the URL of the page (ours)
	body     string
	redirect *url.URL // set when the server sent the browser to the RP
}

func (p page) hidden(name string) string {
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// has reports whether the page contains a form posting to action.
func (p page) has(action string) bool {
	return strings.Contains(p.body, `action="`+action+`"`)
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	for range 20 {
		if b.ip != "" {
			req.Header.Set("X-Forwarded-For", b.ip)
		}
		if b.ua != "" {
			req.Header.Set("User-Agent", b.ua)
		}
		resp, err := b.client.Do(req)
		if err != nil {
			b.e.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return page{status: resp.StatusCode, header: resp.Header, url: req.URL.String(), body: string(body)}
		}
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.e.t.Fatal(err)
		}
		if !strings.HasPrefix(loc.String(), b.e.issuer) {
			return page{status: resp.StatusCode, redirect: loc}
		}
		req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
	}
	b.e.t.Fatal("redirect loop")
	return page{}
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, b.e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// signIn submits the password form on p.
func (b *browser) signIn(p page, user, pass string) page {
	b.e.t.Helper()
	if !p.has("/login/password") {
		b.e.t.Fatalf("expected a password form, got %d at %s:\n%s", p.status, p.url, p.body)
	}
	return b.post("/login/password", url.Values{"id": {p.hidden("id")}, "username": {user}, "password": {pass}})
}

// rp is a relying party using go-oidc and x/oauth2.
type rp struct {
	e        *env
	provider *oidc.Provider
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	http     *http.Client
}

// httpClient is a plain client that trusts the test server.
func (e *env) httpClient() *http.Client {
	if e.tls {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	return http.DefaultClient
}

func (e *env) rp(clientID, secret string) *rp {
	e.t.Helper()
	ctx := oidc.ClientContext(context.Background(), e.httpClient())
	p, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		e.t.Fatal(err)
	}
	return &rp{
		e: e, provider: p, http: e.httpClient(),
		oauth:    oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: rpRedirect, Scopes: []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}},
		verifier: p.VerifierContext(ctx, &oidc.Config{ClientID: clientID, Now: e.clock.Now, SupportedSigningAlgs: []string{"RS256", "ES256", "EdDSA"}}),
	}
}

// authRequest is one authorization request the RP started.
type authRequest struct {
	url, state, nonce, verifier string
}

func (r *rp) authURL(extra url.Values) authRequest {
	a := authRequest{state: randomString(), nonce: randomString(), verifier: oauth2.GenerateVerifier()}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.verifier), oidc.Nonce(a.nonce)}
	for k, vs := range extra {
		opts = append(opts, oauth2.SetAuthURLParam(k, vs[0]))
	}
	a.url = r.oauth.AuthCodeURL(a.state, opts...)
	return a
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokens is what a code exchange or refresh returned, with the ID token checked.
type tokens struct {
	token   *oauth2.Token
	idToken *oidc.IDToken
	claims  idClaims
}

type idClaims struct {
	Sub      string   `json:"sub"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce"`
	SID      string   `json:"sid"`
}

// code expects the browse to have ended at the RP with a code, and checks state.
func (r *rp) code(p page, a authRequest) string {
	r.e.t.Helper()
	if p.redirect == nil {
		r.e.t.Fatalf("expected a redirect to the RP, got %d at %s:\n%.2000s", p.status, p.url, p.body)
	}
	q := p.redirect.Query()
	if e := q.Get("error"); e != "" {
		r.e.t.Fatalf("RP got error %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != a.state {
		r.e.t.Fatalf("state mismatch: %q", q.Get("state"))
	}
	return q.Get("code")
}

// goBack is how a signed-in person leaves a request whose level is out of
// reach: the page that says so (login/enroll.go), never the error at once.
// It asserts p is that page and presses its "Go back to …" button, which
// ends at the RP with the error (rpError reads it). Under prompt=none, or
// without a session, the error comes at once and rpError alone applies.
func (b *browser) goBack(p page) page {
	b.e.t.Helper()
	id := p.hidden("id")
	if p.redirect != nil || p.status != http.StatusOK || !p.has("/login/enroll/back") || id == "" || !strings.Contains(p.body, "Go back to") {
		b.e.t.Fatalf("expected the out-of-reach page with its way back, got %d at %s (redirect %v):\n%.2000s", p.status, p.url, p.redirect, p.body)
	}
	return b.post("/login/enroll/back", url.Values{"id": {id}})
}

// rpError expects the browse to have ended at the RP with an error.
func (r *rp) rpError(p page, a authRequest) string {
	r.e.t.Helper()
	if p.redirect == nil {
		r.e.t.Fatalf("expected an error redirect to the RP, got %d at %s:\n%.2000s", p.status, p.url, p.body)
	}
	q := p.redirect.Query()
	if q.Get("code") != "" {
		r.e.t.Fatalf("expected an error, got a code")
	}
	if q.Get("state") != a.state {
		r.e.t.Fatalf("state mismatch on error: %q", q.Get("state"))
	}
	return q.Get("error")
}

func (r *rp) exchange(code string, a authRequest) (tokens, error) {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, r.http)
	tok, err := r.oauth.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
	if err != nil {
		return tokens{}, err
	}
	t, err := r.verify(tok)
	if err != nil {
		return tokens{}, err
	}
	if t.claims.Nonce != a.nonce {
		return tokens{}, fmt.Errorf("nonce mismatch")
	}
	return t, nil
}

func (r *rp) mustExchange(code string, a authRequest) tokens {
	r.e.t.Helper()
	t, err := r.exchange(code, a)
	if err != nil {
		r.e.t.Fatal(err)
	}
	return t
}

func (r *rp) verify(tok *oauth2.Token) (tokens, error) {
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return tokens{}, fmt.Errorf("no id_token in token response")
	}
	idt, err := r.verifier.Verify(context.Background(), raw)
	if err != nil {
		return tokens{}, err
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		return tokens{}, err
	}
	return tokens{token: tok, idToken: idt, claims: c}, nil
}

func (r *rp) refresh(refreshToken string) (tokens, error) {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, r.http)
	tok, err := r.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return tokens{}, err
	}
	return r.verify(tok)
}

// login runs a whole sign-in with the password for a fresh browser.
func (r *rp) login(b *browser, extra url.Values) tokens {
	r.e.t.Helper()
	a := r.authURL(extra)
	p := b.signIn(b.get(a.url), alice, alicePass)
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	return r.mustExchange(r.code(p, a), a)
}

// postForm calls an endpoint with client credentials in HTTP Basic.
func (e *env) postForm(path string, form url.Values, clientID, secret string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if clientID != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
