package login_test

// The fixture for the handler tests: one login.Handler mounted as the
// composition root (package idp) mounts it, on a real SQLite store, behind
// httptest, with a clock that moves only when a test says so. Every use of
// login.Config is in this file, so a change of its shape is made here once.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
	"github.com/keystep/keystep/templates"
)

// t0 is when every test starts. The TOTP codes and every stored time are
// computed from it, never from the wall clock.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const (
	acrSFA = "urn:keystep:acr:sfa"
	acrMFA = "urn:keystep:acr:mfa"
	acrPHR = "phr"

	alice     = "alice"
	aliceID   = "u-alice"
	alicePass = "correct horse battery staple"
	bob       = "bob"
	bobID     = "u-bob"
	bobPass   = "bob's long enough password"

	// Clients: a first-party app (no consent page), one whose floor is mfa,
	// a third party that needs consent, and the portal's built-in client.
	appClient     = "app"
	mfaClient     = "hr"
	shopClient    = "shop"
	accountClient = "keystep-account"
	rpRedirect    = "https://rp.example/cb"

	// Addresses, as the trusted proxy in front of the server reports them:
	// home is where the browsers start; elsewhere is another network.
	homeIP      = "198.51.100.10"
	elsewhereIP = "203.0.113.20"

	// sessionCookie is the browser session's cookie over http.
	sessionCookie = "ks_session"
)

// clock is the handler's time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t      *testing.T
	store  storage.Store
	clock  *clock
	srv    *httptest.Server
	cfg    fixtureConfig
	sealer *factor.Sealer
	nextID int
	dbPath string // the SQLite file, for tests that damage a row
	ui     *login.Handler
}

// option adjusts the handler's configuration before it is built.
// fixtureConfig is the handler's configuration and the policy it runs
// with (version 0), which options set field by field.
type fixtureConfig struct {
	login.Config
	Policy      *stepup.Policy
	ScopeMinACR map[string]string
	Risk        signin.RiskConfig
	AdminACR    string
	Details     *details.Registry
	Clients     map[string]policy.Client // each client's own policy
	pol         *policy.Snapshot
}

type option func(*fixtureConfig)

// withLimits edits the throttle rules, starting from throttle.DefaultLimits.
// login names two of its scopes itself: "account_lock" (the per-place hard
// lock on passwords) and "factor_lock" (a code factor's lock); New refuses
// limits without them, so a rename shows up here at once.
func withLimits(edit func(throttle.Limits)) option {
	return func(c *fixtureConfig) {
		l := throttle.DefaultLimits()
		edit(l)
		c.Limits = l
	}
}

// rules sets some throttle rules, keeping the defaults of the rest.
func rules(set map[string]storage.ThrottleRule) option {
	return withLimits(func(l throttle.Limits) {
		for scope, r := range set {
			l[scope] = r
		}
	})
}

// login's own names for two of its rules (see withLimits).
const (
	scopeAccountLock = "account_lock"
	scopeFactorLock  = "factor_lock"
)

// withRisk edits the risk configuration, starting from the default; the
// edits of several options add up.
func withRisk(edit func(*signin.RiskConfig)) option {
	return func(c *fixtureConfig) {
		if c.Risk.Rules.Weights == nil {
			c.Risk = signin.DefaultRiskConfig()
		}
		edit(&c.Risk)
	}
}

// sensitive marks clients as sensitive (a risk signal).
func sensitive(clients ...string) option {
	return withRisk(func(r *signin.RiskConfig) { r.SensitiveClients = clients })
}

// suspicious puts the addresses' networks on the operator's suspicious list.
func suspicious(t *testing.T, cidrs ...string) option {
	p, err := risk.ParsePrefixes(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return withRisk(func(r *signin.RiskConfig) { r.Suspicious = p })
}

// denied puts the addresses' networks on the operator's deny list.
func denied(t *testing.T, cidrs ...string) option {
	p, err := risk.ParsePrefixes(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return withRisk(func(r *signin.RiskConfig) { r.Deny = p })
}

// withPseudoLocales offers the pseudo-locales en-XA and ar-XB.
func withPseudoLocales(t *testing.T) option {
	cats, err := i18n.Load(i18n.Options{Pseudo: true})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *fixtureConfig) { c.Catalogs = cats }
}

func withStuffingLimit(n int) option { return func(c *fixtureConfig) { c.StuffingLimit = n } }

func withScopeMinACR(scope, acr string) option {
	return func(c *fixtureConfig) { c.ScopeMinACR = map[string]string{scope: acr} }
}

func withSessionLifetimes(idle, maxAge time.Duration) option {
	return func(c *fixtureConfig) { c.SessionIdleTimeout, c.SessionMaxAge = idle, maxAge }
}

// withLog sends the handler's log to l.
func withLog(l *slog.Logger) option { return func(c *fixtureConfig) { c.Log = l } }

func withAdminACR(acr string) option { return func(c *fixtureConfig) { c.AdminACR = acr } }

// withPasskeys turns passkeys on, for a relying party on a host name (the
// test server's 127.0.0.1 would turn them off).
func withPasskeys(t *testing.T) option {
	wa, err := factor.NewWebAuthn("https://login.example", "Keystep")
	if err != nil || wa == nil {
		t.Fatalf("webauthn: %v", err)
	}
	return func(c *fixtureConfig) { c.WebAuthn = wa }
}

func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "keystep.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	masterKey := bytes.Repeat([]byte{7}, 32)
	sealer, err := factor.NewSealer(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := storage.NewAuditKey(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: st, clock: &clock{t: t0}, sealer: sealer, dbPath: dbPath}
	var h http.Handler
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(f.srv.Close)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.cfg = fixtureConfig{Policy: stepup.DefaultPolicy()}
	f.cfg.Config = login.Config{
		Store: st, Templates: templates.FS,
		Hasher: factor.NewTestPasswordHasher(), Sealer: sealer,
		Audit:    &web.Auditor{Store: st, Key: auditKey, Log: discard, Now: f.clock.Now},
		Log:      discard,
		Now:      f.clock.Now,
		Cookies:  web.Cookies{},
		Callback: f.callback,
		Issuer:   f.srv.URL, AccountClientID: accountClient,
	}
	for _, o := range opts {
		o(&f.cfg)
	}
	f.cfg.pol, err = policy.Complete(policy.Snapshot{Levels: f.cfg.Policy, ScopeMinACR: f.cfg.ScopeMinACR, Risk: f.cfg.Risk,
		AdminACR: f.cfg.AdminACR, Details: f.cfg.Details, Clients: f.cfg.Clients})
	if err != nil {
		t.Fatal(err)
	}
	f.cfg.Policies = policy.Static(f.cfg.pol)
	ui, err := login.New(f.cfg.Config)
	if err != nil {
		t.Fatal(err)
	}
	f.ui = ui
	mux := http.NewServeMux()
	ui.Register(mux)
	// The test server's peer is a trusted proxy that names the browser's
	// address, so each browser can come from a network of its own.
	h = web.WithRequestInfo([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, mux)

	f.addUser(alice, aliceID, alicePass, false)
	f.addUser(bob, bobID, bobPass, false)
	f.addClient(storage.Client{ID: appClient, Name: "Acme Payroll", FirstParty: true})
	f.addClient(storage.Client{ID: mfaClient, Name: "Acme HR", FirstParty: true, MinACR: acrMFA})
	f.addClient(storage.Client{ID: shopClient, Name: "Acme Shop"})
	f.addClient(storage.Client{ID: accountClient, Name: "your account", FirstParty: true,
		RedirectURIs: []string{f.srv.URL + "/account/callback"}})
	return f
}

// callback stands for the OP's authorization callback URL.
func (f *fixture) callback(_ context.Context, id string) string {
	return "https://op.example/authorize/callback?id=" + url.QueryEscape(id)
}

func (f *fixture) ctx() context.Context { return context.Background() }

func (f *fixture) addUser(name, id, password string, admin bool) storage.User {
	f.t.Helper()
	hash, err := factor.NewTestPasswordHasher().Hash(password)
	if err != nil {
		f.t.Fatal(err)
	}
	u := storage.User{ID: id, Username: name, PasswordHash: hash, Admin: admin, CreatedAt: t0, UpdatedAt: t0}
	if err := f.store.CreateUser(f.ctx(), u); err != nil {
		f.t.Fatal(err)
	}
	return u
}

// makeAdmin gives a user the admin role.
func (f *fixture) makeAdmin(userID string) {
	f.t.Helper()
	u, err := f.store.UserByID(f.ctx(), userID)
	if err != nil {
		f.t.Fatal(err)
	}
	u.Admin = true
	if err := f.store.UpdateUser(f.ctx(), u); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) addClient(c storage.Client) {
	f.t.Helper()
	if c.RedirectURIs == nil {
		c.RedirectURIs = []string{rpRedirect}
	}
	c.AuthMethod, c.GrantTypes, c.IDTokenAlg = "client_secret_basic", []string{"authorization_code"}, "RS256"
	c.CreatedAt, c.UpdatedAt = t0, t0
	if err := f.store.CreateClient(f.ctx(), c); err != nil {
		f.t.Fatal(err)
	}
}

// enrollTOTP gives the user an authenticator app the way the portal stores
// it (the seed sealed for "totp:"+user ID) and returns its secret.
func (f *fixture) enrollTOTP(userID string) string {
	f.t.Helper()
	key, err := factor.NewTOTPKey("Keystep", userID)
	if err != nil {
		f.t.Fatal(err)
	}
	fa := storage.Factor{ID: "totp-" + userID, UserID: userID, Kind: "totp", Name: "Phone",
		Secret: f.sealer.Seal([]byte(key.Secret), []byte("totp:"+userID)), CreatedAt: f.clock.Now()}
	if err := f.store.CreateFactor(f.ctx(), fa); err != nil {
		f.t.Fatal(err)
	}
	return key.Secret
}

// recoveryCodes gives the user ten recovery codes, stored as the portal
// stores them, and returns them.
func (f *fixture) recoveryCodes(userID string) []string {
	f.t.Helper()
	codes, err := factor.NewRecoveryCodes(10)
	if err != nil {
		f.t.Fatal(err)
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = factor.RecoveryCodeMAC(f.sealer, userID, c)
	}
	if err := f.store.ReplaceRecoveryCodes(f.ctx(), userID, hashes, f.clock.Now()); err != nil {
		f.t.Fatal(err)
	}
	return codes
}

// totp is the authenticator app's code at the fixture's now.
func (f *fixture) totp(secret string) string {
	f.t.Helper()
	c, err := factor.TOTPCode(secret, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// wrongTOTP is a code that is not the app's at now, nor at the steps
// either side of it.
func (f *fixture) wrongTOTP(secret string) string {
	f.t.Helper()
	near := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, err := factor.TOTPCode(secret, f.clock.Now().Add(d))
		if err != nil {
			f.t.Fatal(err)
		}
		near[c] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i*7919%1000000); !near[c] {
			return c
		}
	}
}

// ---- authorization requests ----

// authRequest is an authorization request as /authorize receives it: the
// stored fields, and the raw claims parameter, which /authorize parses
// into the stored requirement.
type authRequest struct {
	storage.AuthRequest
	claims string
}

// request stores an authorization request of client bound to b, as
// /authorize does, and returns its ID. edit adjusts it before it is stored.
func (f *fixture) request(b *browser, clientID string, edit ...func(*authRequest)) string {
	f.t.Helper()
	f.nextID++
	now := f.clock.Now()
	ar := authRequest{AuthRequest: storage.AuthRequest{
		ID: fmt.Sprintf("ar-%d", f.nextID), ClientID: clientID, RedirectURI: rpRedirect,
		Scopes: []string{"openid"}, ResponseType: "code", State: fmt.Sprintf("state-%d", f.nextID),
		Nonce: "n", BrowserBinding: b.binding(), CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute),
	}}
	if clientID == accountClient {
		ar.RedirectURI = f.srv.URL + "/account/callback"
	}
	for _, e := range edit {
		e(&ar)
	}
	f.requirement(&ar)
	if err := f.store.CreateAuthRequest(f.ctx(), ar.AuthRequest); err != nil {
		f.t.Fatal(err)
	}
	return ar.ID
}

// requirement parses and merges what the request asks of acr, with the
// client's and the scopes' floors, as /authorize does.
func (f *fixture) requirement(ar *authRequest) {
	f.t.Helper()
	c, err := f.store.ClientByID(f.ctx(), ar.ClientID)
	if err != nil {
		f.t.Fatal(err)
	}
	if ar.Requirement, err = signin.NewRequirement(ar.claims, ar.ACRValues, c, f.cfg.pol.ScopeFloors(c.ID, ar.Scopes)); err != nil {
		f.t.Fatal(err)
	}
	if ar.AuthorizationDetails != "" {
		// What the details demand, as /authorize computes it.
		d, err := details.Parse(ar.AuthorizationDetails)
		if err != nil {
			f.t.Fatal(err)
		}
		ar.AuthorizationDetails = d.String()
		if ar.Requirement.TransactionMin, ar.Requirement.TransactionMaxAge, err = signin.TransactionDemand(f.cfg.pol.Details, d, f.cfg.pol.Levels); err != nil {
			f.t.Fatal(err)
		}
	}
}

// parseRequirement reads a step-up's claims and acr_values as /authorize
// does, without floors.
func parseRequirement(claims string, acr []string) (storage.Requirement, error) {
	return signin.NewRequirement(claims, acr, storage.Client{}, nil)
}

// Request edits.

func acrValues(v ...string) func(*authRequest) {
	return func(ar *authRequest) { ar.ACRValues = v }
}

// essentialACR asks for acr values as an essential claim (OIDC Core §5.5.1.1).
func essentialACR(v ...string) func(*authRequest) {
	return func(ar *authRequest) {
		vals, _ := json.Marshal(v)
		ar.claims = `{"id_token":{"acr":{"essential":true,"values":` + string(vals) + `}}}`
	}
}

func maxAge(secs int64) func(*authRequest) {
	return func(ar *authRequest) { ar.MaxAge = &secs }
}

func prompt(p ...string) func(*authRequest) {
	return func(ar *authRequest) { ar.Prompt = p }
}

func scopes(s ...string) func(*authRequest) {
	return func(ar *authRequest) { ar.Scopes = s }
}

func hintSubject(sub string) func(*authRequest) {
	return func(ar *authRequest) { ar.IDTokenHintSubject = sub }
}

func loginHint(name string) func(*authRequest) {
	return func(ar *authRequest) { ar.LoginHint = name }
}

// authRequest reads a request back; ok is false once it is gone.
func (f *fixture) authRequest(id string) (storage.AuthRequest, bool) {
	f.t.Helper()
	ar, err := f.store.AuthRequestByID(f.ctx(), id, f.clock.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return ar, false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return ar, true
}

// audit lists the events of one type, oldest first.
func (f *fixture) audit(typ storage.EventType) []storage.AuditEvent {
	f.t.Helper()
	evs, err := f.store.ListAudit(f.ctx(), storage.AuditFilter{Type: typ})
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

// sessions lists the user's browser sessions.
func (f *fixture) sessions(userID string) []storage.Session {
	f.t.Helper()
	ss, err := f.store.ListUserSessions(f.ctx(), userID, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return ss
}

// ---- browsers ----

// browser is a user agent with its own cookie jar that never follows a
// redirect, so every step is observed.
type browser struct {
	f   *fixture
	jar *cookiejar.Jar
	c   *http.Client
	ip  string
	ua  string
	// lang is the browser's Accept-Language ("" sends none).
	lang string
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, jar: jar, ip: homeIP, ua: "TestBrowser/1.0",
		c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// binding is the browser binding of b, made by the same Cookies the
// handler reads, its cookie kept in the jar.
func (b *browser) binding() string {
	b.f.t.Helper()
	u, _ := url.Parse(b.f.srv.URL)
	req := httptest.NewRequest(http.MethodGet, b.f.srv.URL+"/", nil)
	for _, c := range b.jar.Cookies(u) {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	bind, err := b.f.cfg.Cookies.BrowserBinding(rec, req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	b.jar.SetCookies(u, rec.Result().Cookies())
	return bind
}

// cookies is the jar's cookies for the server, by name, so a test can see
// whether a step changed them.
func (b *browser) cookies() map[string]string {
	u, _ := url.Parse(b.f.srv.URL)
	out := map[string]string{}
	for _, c := range b.jar.Cookies(u) {
		out[c.Name] = c.Value
	}
	return out
}

// response is one answer of the server.
type response struct {
	status   int
	header   http.Header
	body     string
	location string
	b        *browser // the browser that got it, to press its buttons (goBack)
}

func (b *browser) do(method, path string, body io.Reader, contentType string) response {
	b.f.t.Helper()
	req, err := http.NewRequest(method, b.f.srv.URL+path, body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-Forwarded-For", b.ip)
	req.Header.Set("User-Agent", b.ua)
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(raw), location: resp.Header.Get("Location"), b: b}
}

func (b *browser) get(path string) response { return b.do(http.MethodGet, path, nil, "") }

func (b *browser) post(path string, form url.Values) response {
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
}

func (b *browser) postJSON(path string, v any) response {
	raw, err := json.Marshal(v)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return b.do(http.MethodPost, path, bytes.NewReader(raw), "application/json")
}

// open is the dispatcher's page for request id.
func (b *browser) open(id string) response { return b.get("/login?id=" + url.QueryEscape(id)) }

// password posts a username and password for request id.
func (b *browser) password(id, username, password string) response {
	return b.post("/login/password", url.Values{"id": {id}, "username": {username}, "password": {password}})
}

// code posts a code to a factor endpoint ("/login/otp", "/login/recovery").
func (b *browser) code(action, id, code string) response {
	return b.post(action, url.Values{"id": {id}, "code": {code}})
}

// signIn signs b in with the password through the dispatcher, for the
// first-party app, and checks the request completes.
func (f *fixture) signIn(b *browser, username, password string) {
	f.t.Helper()
	id := f.request(b, appClient)
	f.mustContinue(b.password(id, username, password), id)
	f.mustComplete(b.open(id), id)
}

// signInMFA signs b in with the password and the authenticator app.
func (f *fixture) signInMFA(b *browser, username, password, secret string) {
	f.t.Helper()
	id := f.request(b, appClient, acrValues(acrMFA))
	f.mustContinue(b.password(id, username, password), id)
	if p := b.open(id); !hasForm(p.body, "/login/otp") {
		f.t.Fatalf("sign-in at mfa: want the code page, got %d %s\n%.2000s", p.status, p.location, p.body)
	}
	f.mustContinue(b.code("/login/otp", id, f.totp(secret)), id)
	f.mustComplete(b.open(id), id)
}

// mustContinue checks that a factor post went back to the dispatcher.
func (f *fixture) mustContinue(r response, id string) {
	f.t.Helper()
	if want := "/login?id=" + url.QueryEscape(id); r.status != http.StatusSeeOther || r.location != want {
		f.t.Fatalf("want 303 to %s, got %d %q\n%.2000s", want, r.status, r.location, r.body)
	}
}

// mustComplete checks that the dispatcher sent the browser to the callback.
func (f *fixture) mustComplete(r response, id string) {
	f.t.Helper()
	if want := f.callback(f.ctx(), id); r.status != http.StatusSeeOther || r.location != want {
		f.t.Fatalf("want 303 to the callback %s, got %d %q\n%.2000s", want, r.status, r.location, r.body)
	}
}

// ---- reading pages ----

var formAction = regexp.MustCompile(`<form [^>]*action="([^"]*)"`)

// hasForm reports whether a page has a form posting to action.
func hasForm(body, action string) bool {
	for _, m := range formAction.FindAllStringSubmatch(body, -1) {
		if m[1] == action {
			return true
		}
	}
	return false
}

// says reports whether a page shows text, HTML escapes undone (markup
// in text is matched as it is).
func says(body, text string) bool {
	return strings.Contains(html.UnescapeString(body), text)
}

// goBack is how a signed-in person leaves a request whose level is out of
// reach: the dispatcher shows the "You can't continue" page (enroll.go),
// never the error at once. It asserts got is that page for request id,
// presses its "Go back to …" button, and returns the answer, the redirect
// to the app with the error.
func goBack(t *testing.T, id string, got response) response {
	t.Helper()
	if got.status != http.StatusOK || !hasForm(got.body, "/login/enroll/back") || !says(got.body, `name="id" value="`+id+`"`) || !says(got.body, "Go back to") {
		t.Fatalf("want the out-of-reach page with its way back for %s, got %d %q\n%.2000s", id, got.status, got.location, got.body)
	}
	return got.b.post("/login/enroll/back", url.Values{"id": {id}})
}

// errorOf reads the OAuth error response an RP gets at its redirect URI.
func errorOf(t *testing.T, location string) (code, state string) {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != rpRedirect {
		t.Fatalf("error response to %q, want the client's redirect URI %s", got, rpRedirect)
	}
	return u.Query().Get("error"), u.Query().Get("state")
}
