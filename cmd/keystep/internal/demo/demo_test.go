package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/resource"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

func TestMain(m *testing.M) {
	// The OP library logs to the default logger; keep test output readable.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

const (
	userID   = "u-alice"
	username = "alice"
	password = "correct horse battery staple"
	clientID = "acme-payroll"
)

// env is Keystep and Acme Payroll, each on its own httptest server.
type env struct {
	t      *testing.T
	issuer string
	key    []byte
	store  storage.Store
	app    *App
	rpURL  string

	mu     sync.Mutex
	pushed []url.Values // the app's pushed authorization requests, in order
	nonces []string     // the nonce of each token request's DPoP proof, in order
}

// recorder is the app's HTTP client transport in tests: it keeps the
// parameters of every pushed authorization request.
type recorder struct{ e *env }

func (rt recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/oauth/par") && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(body)
		q, _ := url.ParseQuery(string(b))
		rt.e.mu.Lock()
		rt.e.pushed = append(rt.e.pushed, q)
		rt.e.mu.Unlock()
	}
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/oauth/token") {
		var c struct {
			Nonce string `json:"nonce"`
		}
		if parts := strings.Split(req.Header.Get("DPoP"), "."); len(parts) == 3 {
			b, _ := base64.RawURLEncoding.DecodeString(parts[1])
			_ = json.Unmarshal(b, &c)
		}
		rt.e.mu.Lock()
		rt.e.nonces = append(rt.e.nonces, c.Nonce)
		rt.e.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

// lastPushed is the app's last pushed authorization request.
func (e *env) lastPushed() url.Values {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.pushed) == 0 {
		e.t.Fatal("the app pushed no authorization request")
	}
	return e.pushed[len(e.pushed)-1]
}

// allPushed is every pushed authorization request so far.
func (e *env) allPushed() []url.Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.pushed)
}

func newEnv(t *testing.T) *env { return newEnvWith(t, false, nil) }

// newEnvWith is newEnv with the app on localhost too when localApp (as
// `keystep demo` serves it, and as a real browser needs it: passkeys want a
// host name), and Keystep's config changed by edit when not nil.
func newEnvWith(t *testing.T, localApp bool, edit func(*idp.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, store: st, key: make([]byte, 32)}
	_, _ = rand.Read(e.key)

	var ks http.Handler
	ksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ks.ServeHTTP(w, r) }))
	t.Cleanup(ksSrv.Close)
	// As `keystep demo` does: a host name, so passkeys work.
	e.issuer = strings.Replace(ksSrv.URL, "127.0.0.1", "localhost", 1)
	logger := slog.New(slog.DiscardHandler)
	cfg := idp.Config{
		Issuer: e.issuer, Store: st, MasterKey: e.key, Policy: stepup.DefaultPolicy(),
		Logger: logger, Hasher: factor.NewTestPasswordHasher(),
		// As `keystep demo` runs it: payments are authorization details.
		Details: details.ExamplePayments(acrMFA, acrPHR),
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := idp.NewServer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ks = srv

	var rp http.Handler
	rpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rp.ServeHTTP(w, r) }))
	t.Cleanup(rpSrv.Close)
	e.rpURL = rpSrv.URL
	if localApp {
		e.rpURL = strings.Replace(rpSrv.URL, "127.0.0.1", "localhost", 1)
	}

	hash, err := factor.NewTestPasswordHasher().Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.CreateUser(ctx, storage.User{ID: userID, Username: username, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	secret := "s3cret-" + t.Name()
	if err := st.CreateClient(ctx, storage.Client{
		ID: clientID, Name: "Acme Payroll", SecretHash: factor.HashToken(secret),
		RedirectURIs: []string{e.rpURL + "/callback"}, PostLogoutRedirectURIs: []string{e.rpURL + "/"},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"},
		IDTokenAlg: "ES256", FirstParty: true, RequirePKCE: true,
		// Pushed requests only, and tokens bound to the app's DPoP key.
		RequirePAR: true, DPoPBoundAccessTokens: true, CreatedAt: now, UpdatedAt: now,
		AuthorizationDetailsTypes: []string{details.PaymentInitiation},
	}); err != nil {
		t.Fatal(err)
	}
	e.app, err = New(Config{Issuer: e.issuer, ClientID: clientID, ClientSecret: secret, URL: e.rpURL, Logger: logger,
		HTTPClient: &http.Client{Transport: recorder{e}, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	rp = e.app
	return e
}

// enrollTOTP gives the user an authenticator app directly in storage, the
// way the account portal stores it, and returns its secret.
func (e *env) enrollTOTP() string {
	e.t.Helper()
	key, err := factor.NewTOTPKey("Keystep", userID)
	if err != nil {
		e.t.Fatal(err)
	}
	sealer, err := factor.NewSealer(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	f := storage.Factor{ID: "f-" + userID, UserID: userID, Kind: "totp", Name: "Phone",
		Secret: sealer.Seal([]byte(key.Secret), []byte("totp:"+userID)), CreatedAt: time.Now().UTC()}
	if err := e.store.CreateFactor(context.Background(), f); err != nil {
		e.t.Fatal(err)
	}
	return key.Secret
}

func (e *env) totp(secret string) string {
	e.t.Helper()
	c, err := factor.TOTPCode(secret, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// browser is a user agent with a cookie jar. It follows redirects itself,
// across both servers, and records where they led.
type browser struct {
	e      *env
	client *http.Client
	jar    *cookiejar.Jar
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, jar: jar, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is where a navigation ended, and the redirects on the way.
type page struct {
	status int
	url    string
	body   string
	header http.Header
	hops   []*url.URL
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	var hops []*url.URL
	for range 20 {
		resp, err := b.client.Do(req)
		if err != nil {
			b.e.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return page{status: resp.StatusCode, url: req.URL.String(), body: string(body), header: resp.Header, hops: hops}
		}
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.e.t.Fatal(err)
		}
		hops = append(hops, loc)
		req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
	}
	b.e.t.Fatal("redirect loop")
	return page{}
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (p page) hidden(name string) string {
	m := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `" value="([^"]*)"`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func (p page) has(action string) bool { return strings.Contains(p.body, `action="`+action+`"`) }

// goBack asserts p is Keystep's page for a level out of reach (a signed-in
// person reads why there instead of being sent back at once) and presses
// its "Go back" button, which returns to the app with the error.
func (b *browser) goBack(p page) page {
	b.e.t.Helper()
	if p.status != http.StatusOK || !strings.HasPrefix(p.url, b.e.issuer+"/login") || !p.has("/login/enroll/back") || p.hidden("id") == "" {
		b.e.t.Fatalf("expected Keystep's out-of-reach page, got %d at %s:\n%.3000s", p.status, p.url, p.body)
	}
	return b.post(b.e.issuer+"/login/enroll/back", url.Values{"id": {p.hidden("id")}})
}

// hop returns the first redirect to base+path.
func (p page) hop(base, path string) *url.URL {
	for _, h := range p.hops {
		if strings.HasPrefix(h.String(), base+path) && h.Path == path {
			return h
		}
	}
	return nil
}

// signIn signs in at Acme Payroll with the password and lands on the dashboard.
func (b *browser) signIn() page {
	b.e.t.Helper()
	e := b.e
	p := b.get(e.rpURL + "/login")
	if !p.has("/login/password") {
		e.t.Fatalf("expected Keystep's sign-in form, got %d at %s:\n%.2000s", p.status, p.url, p.body)
	}
	p = b.post(e.issuer+"/login/password", url.Values{"id": {p.hidden("id")}, "username": {username}, "password": {password}})
	if p.status != http.StatusOK || p.url != e.rpURL+"/dashboard" {
		e.t.Fatalf("sign-in ended with %d at %s:\n%.2000s", p.status, p.url, p.body)
	}
	return p
}

// tokens returns the tokens the app keeps for b's session.
func (e *env) tokens(b *browser) (accessToken string, u user) {
	e.t.Helper()
	v := e.session(b)
	return v.accessToken, v.user
}

// sessionView is what the app keeps for a browser.
type sessionView struct {
	accessToken, tokenType string
	user                   user
	key                    *dpop.Prover
}

// onlySession returns what the app keeps for its one signed-in session
// (the browser test's Chromium, whose cookies the test does not read).
func (e *env) onlySession() sessionView {
	e.t.Helper()
	e.app.sessions.mu.Lock()
	var all []*session
	for _, s := range e.app.sessions.m {
		all = append(all, s)
	}
	e.app.sessions.mu.Unlock()
	var out []sessionView
	for _, s := range all {
		s.mu.Lock()
		if s.signedIn() {
			out = append(out, sessionView{accessToken: s.accessToken, tokenType: s.tokenType, user: s.user, key: s.key})
		}
		s.mu.Unlock()
	}
	if len(out) != 1 {
		e.t.Fatalf("%d signed-in sessions, want 1", len(out))
	}
	return out[0]
}

// session returns what the app keeps for b's session.
func (e *env) session(b *browser) sessionView {
	e.t.Helper()
	rp, _ := url.Parse(e.rpURL)
	for _, c := range b.jar.Cookies(rp) {
		if c.Name != sessionCookie {
			continue
		}
		e.app.sessions.mu.Lock()
		s := e.app.sessions.m[c.Value]
		e.app.sessions.mu.Unlock()
		if s == nil {
			break
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return sessionView{accessToken: s.accessToken, tokenType: s.tokenType, user: s.user, key: s.key}
	}
	e.t.Fatal("the browser has no Acme Payroll session")
	return sessionView{}
}

// callAPI calls the app's API directly, as curl would: with the token
// under the DPoP scheme and a proof of key, or as a bearer token when key
// is nil.
func (e *env) callAPI(key *dpop.Prover, method, path, token, body string) (int, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.rpURL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key == nil {
		req.Header.Set("Authorization", "Bearer "+token)
	} else {
		proof, err := key.Proof(method, e.rpURL+path, token, "", time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", "DPoP "+token)
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// rfc9470-loop: the RFC 9470 loop, as the demo shows it. A password session
// opens Payslips, the API answers with the step-up challenge (§3), the app
// re-authorizes with its acr_values (§4), Keystep asks only for the code, and
// the retried call succeeds with an mfa token.
func TestRFC9470Loop(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP()
	b := e.browser()

	if p := b.get(e.rpURL + "/"); p.status != http.StatusOK || !strings.Contains(p.body, `href="/login"`) || !strings.Contains(p.body, "Sign in") {
		t.Fatalf("home: %d\n%.2000s", p.status, p.body)
	}
	p := b.signIn()
	if !strings.Contains(p.body, levelWords(acrSFA)) {
		t.Errorf("the dashboard does not say the sign-in was one step:\n%s", p.body)
	}
	sv := e.session(b)
	first, u, key := sv.accessToken, sv.user, sv.key
	if u.ACR != acrSFA || u.Subject != userID || u.Username != username {
		t.Fatalf("after sign-in: %+v, want acr %s for %s", u, acrSFA, userID)
	}
	// The tokens are bound to the session's key (RFC 9449 §5, §6.1), the
	// code was asked for with it (dpop_jkt), and the overview shows it.
	if sv.tokenType != "DPoP" || key == nil || u.JKT != key.JKT {
		t.Fatalf("token_type %q, cnf.jkt %q; want DPoP bound to the session's key", sv.tokenType, u.JKT)
	}
	// The nonce dance (RFC 9449 §8): the first proof had none, Keystep
	// answered use_dpop_nonce, the second carried its nonce.
	e.mu.Lock()
	nonces := slices.Clone(e.nonces)
	e.mu.Unlock()
	if len(nonces) != 2 || nonces[0] != "" || nonces[1] == "" {
		t.Errorf("token requests' proof nonces %q, want none and then Keystep's", nonces)
	}
	if got := e.lastPushed().Get("dpop_jkt"); got != key.JKT {
		t.Errorf("pushed dpop_jkt %q, want the session key's %q", got, key.JKT)
	}
	if !strings.Contains(p.body, `<code class="jkt">`+key.JKT+`</code>`) || !strings.Contains(p.body, "<code>DPoP</code>") {
		t.Errorf("the overview does not show the token's cnf.jkt %s and token_type DPoP:\n%s", key.JKT, p.body)
	}

	// The API's answer to the password-only token, byte for byte (RFC 9470
	// §3), in the DPoP scheme (RFC 9449 §7.1).
	status, h := e.callAPI(key, http.MethodGet, "/api/payslips", first, "")
	const algs = `algs="ES256 ES384 PS256 RS256 EdDSA"`
	const wantPayslips = `DPoP error="insufficient_user_authentication", error_description="The access token's authentication context class is not accepted here", acr_values="urn:keystep:acr:mfa phr phrh", ` + algs
	if got := h.Get("WWW-Authenticate"); status != http.StatusUnauthorized || got != wantPayslips {
		t.Fatalf("GET /api/payslips with an sfa token: %d\n got WWW-Authenticate: %s\nwant WWW-Authenticate: %s", status, got, wantPayslips)
	}
	// The same token without the key is not even a token to the API.
	status, h = e.callAPI(nil, http.MethodGet, "/api/payslips", first, "")
	const wantBearer = `DPoP error="invalid_token", error_description="The access token is DPoP-bound and needs the DPoP scheme", ` + algs
	if got := h.Get("WWW-Authenticate"); status != http.StatusUnauthorized || got != wantBearer {
		t.Fatalf("GET /api/payslips with the token as Bearer: %d\n got WWW-Authenticate: %s\nwant WWW-Authenticate: %s", status, got, wantBearer)
	}

	// Payslips: the app's call is refused, it pushes a new authorization
	// request with the challenge's acr_values, the browser carries only its
	// request_uri (RFC 9126 §4), and Keystep asks only for the code.
	pushedBefore := len(e.allPushed())
	p = b.get(e.rpURL + "/payslips")
	authz := p.hop(e.issuer, "/authorize")
	if authz == nil {
		t.Fatalf("the app did not send the browser to Keystep; hops %v", p.hops)
	}
	if q := authz.Query(); len(q) != 2 || q.Get("client_id") != clientID || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
		t.Errorf("the authorization URL carries %v, want client_id and a pushed request_uri only", q)
	}
	if n := len(e.allPushed()); n != pushedBefore+1 {
		t.Fatalf("%d authorization requests pushed for the step-up, want 1", n-pushedBefore)
	}
	q := e.lastPushed()
	if q.Get("acr_values") != acrMFA+" "+acrPHR+" "+acrPHRH || q.Has("max_age") {
		t.Errorf("re-authorization asked for acr_values=%q max_age=%q, want the challenge's", q.Get("acr_values"), q.Get("max_age"))
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("client_id") != clientID ||
		q.Get("dpop_jkt") != key.JKT {
		t.Errorf("pushed authorization request lacks PKCE, nonce, state or dpop_jkt: %v", q)
	}
	if !p.has("/login/otp") || strings.Contains(p.body, `type="password"`) {
		t.Fatalf("step-up should ask only for the code, got %d at %s:\n%.3000s", p.status, p.url, p.body)
	}
	if !strings.Contains(p.body, "Acme Payroll") {
		t.Errorf("the step-up page does not name the app:\n%s", p.body)
	}

	p = b.post(e.issuer+"/login/otp", url.Values{"id": {p.hidden("id")}, "code": {e.totp(secret)}})
	if p.status != http.StatusOK || p.url != e.rpURL+"/payslips" || !strings.Contains(p.body, "Your last three payslips") {
		t.Fatalf("after the code: %d at %s, want the payslips:\n%.3000s", p.status, p.url, p.body)
	}
	if p.hop(e.rpURL, "/callback") == nil {
		t.Errorf("the code did not come back through the callback: %v", p.hops)
	}

	// The new tokens carry mfa: the ID token as the app verified it, and the
	// access token as any resource server would verify it.
	// The nonce from the last token response was kept: one request this time.
	e.mu.Lock()
	nonces = slices.Clone(e.nonces)
	e.mu.Unlock()
	if len(nonces) != 3 || nonces[2] == "" {
		t.Errorf("token requests' proof nonces %q, want the kept nonce in the step-up's one request", nonces)
	}
	sv = e.session(b)
	second, u := sv.accessToken, sv.user
	if sv.key != key || u.JKT != key.JKT {
		t.Errorf("after the step-up the token is bound to %q, want the session's key %q still", u.JKT, key.JKT)
	}
	if u.ACR != acrMFA || u.Subject != userID {
		t.Errorf("ID token after step-up: acr %q sub %q, want %s for %s", u.ACR, u.Subject, acrMFA, userID)
	}
	for _, m := range []string{"pwd", "otp"} {
		if !slices.Contains(u.AMR, m) {
			t.Errorf("ID token amr %v lacks %s", u.AMR, m)
		}
	}
	v, err := resource.Open(t.Context(), e.issuer, resource.WithAudience(clientID))
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.VerifyHeld(t.Context(), second, key.JKT)
	if err != nil {
		t.Fatal(err)
	}
	if c.ACR != acrMFA || c.Subject != userID || c.ClientID != clientID {
		t.Errorf("access token after step-up: %+v, want acr %s", c, acrMFA)
	}
	if c.JKT != key.JKT {
		t.Errorf("access token cnf.jkt %q, want %q", c.JKT, key.JKT)
	}
	if status, _ := e.callAPI(key, http.MethodGet, "/api/payslips", second, ""); status != http.StatusOK {
		t.Errorf("GET /api/payslips with the stepped-up token: %d, want 200", status)
	}

	// Changing the bank account asks for more still: phr within 5 minutes.
	status, h = e.callAPI(key, http.MethodPut, "/api/bank-account", second, `{"iban":"GB33BUKB20201555555555"}`)
	const wantBank = `DPoP error="insufficient_user_authentication", error_description="The access token's authentication context class is not accepted here", acr_values="phr phrh", max_age=300, ` + algs
	if got := h.Get("WWW-Authenticate"); status != http.StatusUnauthorized || got != wantBank {
		t.Fatalf("PUT /api/bank-account with an mfa token: %d\n got WWW-Authenticate: %s\nwant WWW-Authenticate: %s", status, got, wantBank)
	}

	// The dashboard now tells the story.
	p = b.get(e.rpURL + "/dashboard")
	for _, want := range []string{levelWords(acrMFA), "one-time code", "Payslips: the API wants", "Payslips: the API said yes."} {
		if !strings.Contains(p.body, html.EscapeString(want)) {
			t.Errorf("dashboard lacks %q:\n%s", want, p.body)
		}
	}
}

// "What if it's stolen?": the app replays the session's access token as a
// thief would, without the key, and every attempt is refused with the DPoP
// challenge; the same token with the session's key is a valid token (the
// API only wants more steps), so the refusals are the key's doing.
func TestStolenTokenIsRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	sv := e.session(b)

	p := b.post(e.rpURL+"/stolen", nil)
	if p.status != http.StatusOK || p.url != e.rpURL+"/dashboard#stolen" {
		t.Fatalf("the replay ended with %d at %s:\n%.2000s", p.status, p.url, p.body)
	}
	if n := strings.Count(p.body, `<li class="refused">`); n != 3 || strings.Contains(p.body, `<li class="accepted">`) {
		t.Fatalf("%d of the thief's attempts shown as refused, want all 3:\n%s", n, p.body)
	}
	for _, want := range []string{
		"Refused. The token works only with the key that stays inside Acme Payroll.",
		`WWW-Authenticate: DPoP error=&#34;invalid_token&#34;, error_description=&#34;The access token is DPoP-bound and needs the DPoP scheme&#34;`,
		`error_description=&#34;The DPoP proof is not signed by the key the access token is bound to&#34;`,
		"Replayed your access token without its key: refused every time.",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the overview lacks %q:\n%s", want, p.body)
		}
	}
	// Nothing of the session changed: the token still works with its key.
	if after := e.session(b); after.accessToken != sv.accessToken || after.key != sv.key {
		t.Error("the replay changed the session's token or key")
	}
	status, h := e.callAPI(sv.key, http.MethodGet, "/api/payslips", sv.accessToken, "")
	if ch, _ := resource.ParseChallenge(h.Get("WWW-Authenticate")); status != http.StatusUnauthorized || ch.Error != "insufficient_user_authentication" {
		t.Errorf("with the session's key: %d %q, want the step-up challenge", status, h.Get("WWW-Authenticate"))
	}
	// Only the app's own pages can start it.
	req, _ := http.NewRequest(http.MethodPost, e.rpURL+"/stolen", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Errorf("cross-site replay: %d, want 403", p.status)
	}
}

// When Keystep cannot give what the API asks (the user has no passkey), the
// app stops after one round trip and says what to add, instead of sending
// the browser round in circles. The change waits and can be retried.
func TestStepUpKeystepCannotMeet(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP()
	b := e.browser()
	b.signIn()
	p := b.get(e.rpURL + "/bank")
	if !p.has("/login/otp") {
		t.Fatalf("viewing the bank account should ask for the code, got %d at %s", p.status, p.url)
	}
	p = b.post(e.issuer+"/login/otp", url.Values{"id": {p.hidden("id")}, "code": {e.totp(secret)}})
	if p.url != e.rpURL+"/bank" || !strings.Contains(p.body, "ending in <strong class=\"mono\">5432</strong>") {
		t.Fatalf("after the code: %d at %s:\n%.3000s", p.status, p.url, p.body)
	}

	p = b.post(e.rpURL+"/bank", url.Values{"iban": {"gb33 bukb 2020 1555 5555 55"}})
	if q := e.lastPushed(); p.hop(e.issuer, "/authorize") == nil || q.Get("acr_values") != "phr phrh" || q.Get("max_age") != "300" {
		t.Fatalf("the change should re-authorize with acr_values=phr phrh and max_age=300; pushed %v, hops %v", q, p.hops)
	}
	// Voluntary acr_values Keystep cannot reach: it answers with the true acr
	// (mfa), the retry is refused again, and the app explains.
	if p.status != http.StatusForbidden || p.url != e.rpURL+"/bank/resume" || !strings.Contains(p.body, "a passkey or security key") ||
		!strings.Contains(p.body, e.issuer+"/account") {
		t.Fatalf("want the page saying to add a passkey, got %d at %s:\n%.3000s", p.status, p.url, p.body)
	}
	n := 0
	for _, h := range p.hops {
		if h.Path == "/authorize" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("went to Keystep's /authorize %d times, want once: %v", n, p.hops)
	}
	if _, u := e.tokens(b); u.ACR != acrMFA {
		t.Errorf("acr %q after the unmet step-up, want %s", u.ACR, acrMFA)
	}
	// "Try again" goes round once more rather than giving up for good.
	p = b.get(e.rpURL + "/bank/resume")
	if p.hop(e.issuer, "/authorize") == nil || p.status != http.StatusForbidden {
		t.Errorf("try again: %d at %s, hops %v", p.status, p.url, p.hops)
	}
}

// A password-only account asked for Payslips ends on the same page, naming
// the authenticator app.
func TestStepUpWithoutSecondFactor(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	p := b.get(e.rpURL + "/payslips")
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "an authenticator app") {
		t.Fatalf("want the page saying to add an authenticator app, got %d at %s:\n%.3000s", p.status, p.url, p.body)
	}
	if strings.Contains(p.body, "Your last three payslips") {
		t.Fatal("payslips shown without two steps")
	}
}

// Sign-out ends the app's session and Keystep's (RP-Initiated Logout 1.0),
// and only the app's own pages can post it.
func TestSignOut(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()

	req, _ := http.NewRequest(http.MethodPost, e.rpURL+"/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Fatalf("cross-site sign-out: %d, want 403", p.status)
	}
	if p := b.get(e.rpURL + "/dashboard"); p.url != e.rpURL+"/dashboard" || p.status != http.StatusOK {
		t.Fatalf("still signed in after a refused cross-site post: %d at %s", p.status, p.url)
	}

	p := b.post(e.rpURL+"/logout", nil)
	end := p.hop(e.issuer, "/end_session")
	if end == nil || end.Query().Get("id_token_hint") == "" || end.Query().Get("post_logout_redirect_uri") != e.rpURL+"/" {
		t.Fatalf("sign-out did not go through Keystep's end_session with the hint: %v", p.hops)
	}
	if p.url != e.rpURL+"/?state=signed-out" || !strings.Contains(p.body, "signed out of Acme Payroll and of Keystep") {
		t.Fatalf("sign-out ended with %d at %s:\n%.2000s", p.status, p.url, p.body)
	}
	// Both sessions are gone: the next sign-in asks for the password again.
	if p := b.get(e.rpURL + "/login"); !p.has("/login/password") {
		t.Fatalf("after sign-out, sign-in did not ask for the password: %d at %s", p.status, p.url)
	}
}

// A callback whose state is not the one this browser started is refused.
func TestCallbackNeedsItsState(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	p := b.get(e.rpURL + "/login")
	authz := p.hop(e.issuer, "/authorize")
	if authz == nil {
		t.Fatalf("no authorization request: %v", p.hops)
	}
	if p := b.get(e.rpURL + "/callback?code=x&state=forged"); p.status != http.StatusBadRequest {
		t.Errorf("forged state: %d, want 400", p.status)
	}
	other := e.browser()
	if p := other.get(e.rpURL + "/callback?code=x&state=" + url.QueryEscape(authz.Query().Get("state"))); p.status != http.StatusBadRequest {
		t.Errorf("state replayed in another browser: %d, want 400", p.status)
	}
}

func TestPagesCarryCSP(t *testing.T) {
	e := newEnv(t)
	p := e.browser().get(e.rpURL + "/")
	csp := p.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self' "+e.issuer) || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(p.body, "<script") || strings.Contains(p.body, "style=") {
		t.Error("the home page has inline script or style")
	}
}

func TestNormalizeIBAN(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"the UK registry example is valid", "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", true},
		{"lower case and spaces are tidied", "gb33 bukb 2020 1555 5555 55", "GB33BUKB20201555555555", true},
		{"a German IBAN is valid", "DE89370400440532013000", "DE89370400440532013000", true},
		{"a wrong check digit is refused", "GB82WEST12345698765431", "", false},
		{"too short is refused", "GB82WEST1234", "", false},
		{"punctuation is refused", "GB82-WEST-1234-5698-7654-32", "", false},
		{"digits where the country goes are refused", "1282WEST12345698765432", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := normalizeIBAN(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("normalizeIBAN(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestWords(t *testing.T) {
	five := 300
	tests := []struct {
		name, got, want string
	}{
		{"a password sign-in", amrWords([]string{"pwd"}), "password"},
		{"password and code, mfa left out", amrWords([]string{"pwd", "otp", "mfa"}), "password and one-time code"},
		{"a passkey reads as one method", amrWords([]string{"hwk", "mfa", "pop", "user"}), "passkey or security key, unlocked with your fingerprint, face or PIN"},
		{"no amr", amrWords(nil), "not stated"},
		{"the mfa challenge", needWords(resource.ChallengeInfo{ACRValues: []string{acrMFA, acrPHR, acrPHRH}}), "two steps, such as your password and a code from your authenticator app"},
		{"the bank challenge", needWords(resource.ChallengeInfo{ACRValues: []string{acrPHR, acrPHRH}, MaxAge: &five}), "a passkey or security key, used in the last 5 minutes"},
		{"an unknown level is named as sent", levelWords("urn:other"), "a level Acme Payroll doesn't know (urn:other)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
