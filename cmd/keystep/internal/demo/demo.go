// Package demo is "Acme Payroll", a small relying party that shows Keystep's
// step-up loop end to end (RFC 9470):
//
//  1. the user signs in (any level);
//  2. a page calls the app's own API with the user's access token;
//  3. the API, protected by [resource.Verifier.Require], answers 401 with
//     WWW-Authenticate: Bearer error="insufficient_user_authentication",
//     acr_values="…", max_age=…;
//  4. the app parses it with [resource.ParseChallenge] and sends the browser
//     back to Keystep's authorization endpoint with
//     [resource.ChallengeInfo.AuthorizeParams];
//  5. Keystep asks only for the missing factor, the app exchanges the new
//     code and retries the call, which now succeeds.
//
// It is a real RP (github.com/coreos/go-oidc/v3 for discovery and ID
// tokens: code flow, PKCE S256, nonce, state bound to a cookie) with
// made-up data, in-memory sessions and its own templates; it is not part of
// the provider. It pushes its authorization requests (PAR, RFC 9126), and
// its tokens are DPoP-bound (RFC 9449) to a key per session that never
// leaves the app: the API takes nothing else (dpop.go). "Pay an invoice"
// (invoice.go) asks Keystep to have the payment itself approved (RFC 9396
// authorization_details), and its API pays only what the token covers.
// `keystep demo` runs it next to Keystep.
package demo

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/idp/resource"
	"github.com/keystep/keystep/idp/stepup"
)

//go:embed templates/*.html static/*
var files embed.FS

// Levels the app's API asks for: Keystep's default acr names (README,
// "Assurance levels"), short because the app names them often.
const (
	acrSFA  = stepup.ACRSingleFactor
	acrMFA  = stepup.ACRMultiFactor
	acrPHR  = stepup.ACRPhishing
	acrPHRH = stepup.ACRHardware
)

// Requirements of the app's API.
var (
	// Payslips and the bank account on file need two steps.
	readNeeds = resource.Requirement{ACR: []string{acrMFA, acrPHR, acrPHRH}}
	// Changing where the salary goes needs a passkey or security key, used
	// in the last five minutes.
	changeNeeds = resource.Requirement{ACR: []string{acrPHR, acrPHRH}, MaxAge: 5 * time.Minute}
)

// Config is what New needs.
type Config struct {
	// Issuer is Keystep's issuer URL, e.g. http://localhost:8080.
	Issuer string
	// ClientID and ClientSecret are the app's confidential client at Keystep.
	ClientID, ClientSecret string
	// URL is where the app is served, e.g. http://localhost:9090. The
	// client's redirect URI is URL+"/callback" and its post-logout redirect
	// URI URL+"/". The app calls its own API there too.
	URL string
	// HTTPClient talks to Keystep and to the API; nil means a client with a
	// 10 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger     // nil discards
	Now        func() time.Time // nil means time.Now
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"issuer", c.Issuer}, {"URL", c.URL}} {
		u, err := url.Parse(f.v)
		if f.v == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(f.v, "/") {
			errs = append(errs, fmt.Errorf("demo: %s %q must be an http(s) URL without a trailing /", f.name, f.v))
		}
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("demo: no client ID"))
	}
	return errors.Join(errs...)
}

// App is the Acme Payroll web app and its API, as one http.Handler.
type App struct {
	cfg      Config
	handler  http.Handler
	pages    map[string]*template.Template
	sessions *sessions
	accounts *accounts
	ledger   *ledger
	log      *slog.Logger
	secure   bool // cookies get Secure when the app is served over https

	mu   sync.Mutex
	conn *conn // set by the first successful connect

	nonceMu sync.Mutex
	nonce   string // Keystep's last DPoP-Nonce
}

// conn is what the app learns from Keystep: discovery, keys, endpoints.
type conn struct {
	provider   *oidc.Provider
	oauth      oauth2.Config
	idVerifier *oidc.IDTokenVerifier
	endSession string
	par        string // pushed_authorization_request_endpoint
	userinfo   string
	verifier   *resource.Verifier // the API's, which the overview asks too
	api        http.Handler       // the API, with verifier
}

// New builds the app. It does no I/O: Keystep's discovery document and keys
// are fetched on the first request that needs them, so the app may start
// before Keystep does.
func New(cfg Config) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg: cfg, pages: pages, log: cfg.Logger,
		sessions: newSessions(cfg.Now), accounts: newAccounts(), ledger: newLedger(),
		secure: strings.HasPrefix(cfg.URL, "https://"),
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}

	web := http.NewServeMux()
	web.Handle("GET /{$}", a.handle(a.home))
	web.Handle("GET /login", a.handle(a.login))
	web.Handle("GET /callback", a.handle(a.callback))
	web.Handle("GET /dashboard", a.handle(a.dashboard))
	web.Handle("GET /payslips", a.handle(a.payslips))
	web.Handle("GET /bank", a.handle(a.bank))
	web.Handle("POST /bank", a.handle(a.bankSubmit))
	web.Handle("GET /bank/resume", a.handle(a.bankResume))
	web.Handle("GET /invoice", a.handle(a.invoicePage))
	web.Handle("POST /invoice/pay", a.handle(a.payInvoice))
	web.Handle("GET /invoice/resume", a.handle(a.invoiceResume))
	web.Handle("POST /invoice/try", a.handle(a.tryPayment))
	web.Handle("POST /logout", a.handle(a.logout))
	web.Handle("POST /stolen", a.handle(a.stolen))
	web.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))

	mux := http.NewServeMux()
	// Form posts must come from the app's own pages (SameSite cookies alone
	// do not stop a same-site origin such as another localhost port).
	mux.Handle("/", http.NewCrossOriginProtection().Handler(web))
	// The API takes DPoP-bound tokens only, never cookies, so it needs no
	// CSRF protection.
	mux.Handle("/api/", http.HandlerFunc(a.serveAPI))
	a.handler = a.headers(http.MaxBytesHandler(mux, 64<<10))
	return a, nil
}

// ServeHTTP serves the app's pages and its API.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// headers sets the security headers of every response. Forms may post to
// the app only, but its redirects lead to Keystep, and browsers check
// form-action against redirects too (CSP Level 3 §6.3.1).
func (a *App) headers(next http.Handler) http.Handler {
	csp := "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' " + a.cfg.Issuer
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store") // pages show tokens' claims and pay
		}
		next.ServeHTTP(w, r)
	})
}

// connect discovers Keystep once (OpenID Connect Discovery 1.0 §4). A
// failure is not kept: the next request tries again.
func (a *App) connect(ctx context.Context) (*conn, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		return a.conn, nil
	}
	// go-oidc keeps only the client of this context, not its deadline.
	octx := oidc.ClientContext(ctx, a.cfg.HTTPClient)
	p, err := oidc.NewProvider(octx, a.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
		PAR        string `json:"pushed_authorization_request_endpoint"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, err
	}
	if meta.PAR == "" || p.UserInfoEndpoint() == "" {
		return nil, errors.New("demo: Keystep's discovery names no pushed_authorization_request_endpoint or userinfo_endpoint")
	}
	v, err := resource.Open(ctx, a.cfg.Issuer,
		resource.WithHTTPClient(a.cfg.HTTPClient),
		// Keystep's access tokens name the client they were issued to; the
		// API takes only Acme Payroll's.
		resource.WithAudience(a.cfg.ClientID),
		// Only tokens bound to the caller's key, with a proof of it for
		// each request, naming the app's URL as the browser sees it.
		resource.WithDPoPRequired(), resource.WithPublicURL(a.cfg.URL),
		resource.WithLogger(a.log), resource.WithClock(a.cfg.Now))
	if err != nil {
		return nil, err
	}
	c := &conn{
		provider: p,
		oauth: oauth2.Config{
			ClientID: a.cfg.ClientID, ClientSecret: a.cfg.ClientSecret,
			Endpoint: p.Endpoint(), RedirectURL: a.cfg.URL + "/callback",
			Scopes: []string{oidc.ScopeOpenID, "profile"},
		},
		idVerifier: p.VerifierContext(octx, &oidc.Config{
			ClientID: a.cfg.ClientID, Now: a.cfg.Now,
			SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256, oidc.EdDSA},
		}),
		endSession: meta.EndSession,
		par:        meta.PAR,
		userinfo:   p.UserInfoEndpoint(),
		verifier:   v,
		api:        a.api(v),
	}
	a.conn = c
	return c, nil
}

// ---- handlers ----

// publicError is an error whose message may be shown as it is.
type publicError struct {
	status        int
	title, detail string
	err           error // logged, never shown
}

func (e *publicError) Error() string {
	if e.err != nil {
		return e.title + ": " + e.err.Error()
	}
	return e.title
}

func (e *publicError) Unwrap() error { return e.err }

func keystepDown(issuer string, err error) error {
	return &publicError{status: http.StatusBadGateway, title: "Acme Payroll can't reach Keystep",
		detail: "Check that Keystep is running at " + issuer + ", then reload this page.", err: err}
}

// handle adapts a handler that returns an error: the error is logged and the
// person sees a plain page, never the error text.
func (a *App) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		pe := &publicError{status: http.StatusInternalServerError, title: "Something went wrong",
			detail: "Acme Payroll hit a problem. Go back and try again."}
		errors.As(err, &pe)
		a.log.WarnContext(r.Context(), "demo request failed", "path", r.URL.Path, "status", pe.status, "error", err)
		a.render(w, r, pe.status, "error", errorPage{frame: a.frame(nil, pe.title), Detail: pe.detail})
	})
}

// frame is what every page shows around its content.
type frame struct {
	Title   string
	User    string // empty when signed out
	Flash   string
	Nav     string
	Account string // Keystep's account portal
}

func (a *App) frame(s *session, title string) frame {
	f := frame{Title: title, Account: a.cfg.Issuer + "/account"}
	if s != nil && s.signedIn() {
		f.User = s.user.displayName()
		f.Flash, s.flash = s.flash, ""
	}
	return f
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{"plural": plural}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html"))
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(files, n)
		if err != nil {
			return nil, fmt.Errorf("demo template %s: %w", n, err)
		}
		pages[name] = t
	}
	for _, want := range []string{"home", "dashboard", "payslips", "bank", "invoice", "needmore", "error"} {
		if pages[want] == nil {
			return nil, fmt.Errorf("demo: template %s.html is missing", want)
		}
	}
	return pages, nil
}

// render writes a page through a buffer, so a template error never leaves
// half a page behind.
func (a *App) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := a.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		a.log.ErrorContext(r.Context(), "demo template failed", "page", name, "error", err)
		http.Error(w, "Something went wrong.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
