// Package idp is Keystep's composition root: NewServer wires storage, the
// OpenID provider (github.com/zitadel/oidc/v3), the hosted login UI and the
// operational endpoints into one http.Handler. cmd/keystep and every
// end-to-end test build the server through it.
package idp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go.opentelemetry.io/otel/trace"

	"github.com/keystep/keystep/idp/adminapi"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/static"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/templates"
)

// AccountClientID is the built-in client the account portal signs in with.
const AccountClientID = "keystep-account"

// MaxBodyBytes bounds every request body (DESIGN §6).
const MaxBodyBytes = 1 << 20

// Config is everything NewServer needs. Only cmd reads flags and files;
// tests fill this directly.
type Config struct {
	Issuer    string // e.g. http://localhost:8080 (no trailing slash)
	Store     storage.Store
	MasterKey []byte // 32 bytes
	Policy    *stepup.Policy
	// ScopeMinACR maps a scope to the minimum acr a request with it needs.
	ScopeMinACR    map[string]string
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	Now            func() time.Time
	Hasher         *factor.PasswordHasher // nil: production argon2id parameters
	ProductName    string
	// TemplatesDir, when set, serves templates from disk and re-reads them
	// on every render (--dev).
	TemplatesDir string
	// PseudoLocales offers the pseudo-locales en-XA and ar-XB as
	// ui_locales, for testing the pages' layout (--pseudo-locales).
	PseudoLocales bool
	// Risk configures the risk engine; zero means signin.DefaultRiskConfig.
	Risk signin.RiskConfig
	// Limits are the throttle rules; nil means throttle.DefaultLimits.
	Limits throttle.Limits
	// RateLimits cap requests on the protocol endpoints by group: "token"
	// and "authorize" per address, "client" per authenticated client
	// (DefaultRateLimits says which requests count where); nil means
	// DefaultRateLimits.
	RateLimits map[string]RateLimit
	// TracerProvider receives the server's OpenTelemetry spans: each
	// request, each step-up decision, each storage statement (when the
	// store is a storage.Traced) and each token it signs. nil traces
	// nothing (OpenTelemetry's no-op).
	TracerProvider trace.TracerProvider
	// Registry receives the server's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// AdminACR is the level the admin console needs ("" means phr, or the
	// highest level when the policy has no phr); AdminMaxAge is how recently
	// its factors must have been done (0 means 15 minutes).
	AdminACR    string
	AdminMaxAge time.Duration
	// AuditCheckpointEvery and AuditCheckpointInterval: a signed checkpoint
	// of the audit chain is written every so many events or so long,
	// whichever comes first (0 means 1000 events and 10 minutes).
	AuditCheckpointEvery    int
	AuditCheckpointInterval time.Duration
	// SessionIdleTimeout ends a browser session that has not been used for
	// that long (0 means login.DefaultSessionIdleTimeout); SessionMaxAge
	// ends it that long after its first sign-in, used or not (0 means
	// login.DefaultSessionMaxAge).
	SessionIdleTimeout time.Duration
	SessionMaxAge      time.Duration
	// PasskeyCoolingOff is how long a passkey added from a session below
	// phr waits before a use from a known device and network makes it
	// phishing-resistant (0 means 24 hours; DESIGN §3.3).
	PasskeyCoolingOff time.Duration
	// RecoveryCoolingOff is how long a request to replace lost second
	// factors waits before it can be used, unless an admin approves it
	// sooner (0 means login.DefaultRecoveryCoolingOff, 72 hours).
	RecoveryCoolingOff time.Duration
	// PasskeysTrustedAtOnce is for `keystep demo` only, whose throwaway
	// server has no history to judge a new passkey by: every passkey
	// added counts as phishing-resistant at once. It turns off DESIGN
	// §3.3's rule that a phishable session cannot mint phishing
	// resistance, so serve never sets it and no config file can.
	PasskeysTrustedAtOnce bool
	// RequirePAR admits only pushed authorization requests (RFC 9126 §5)
	// at /authorize, from every client; a client can also require it for
	// itself (storage.Client.RequirePAR).
	RequirePAR bool
	// Details registers the authorization_details types (RFC 9396) a
	// client may request, what each demands and how it is shown to the
	// person approving it; nil for none.
	Details *details.Registry
	// DPoPNonceNotRequired lets DPoP proofs at the token endpoint go
	// without a server nonce (RFC 9449 §8). By default one is required: a
	// proof made ahead of time by a thief with brief access to the key is
	// then useless.
	DPoPNonceNotRequired bool
	// PolicyDocument is the document Policy, ScopeMinACR, Risk, AdminACR,
	// AdminMaxAge, Details and ClientPolicies were compiled from, when
	// they were (shown by the console as version 0); ClientPolicies is
	// each client's own policy.
	PolicyDocument policy.Document
	ClientPolicies map[string]policy.Client
	// PolicyReadOnly makes this server decide with its Config's policy
	// only, never a stored version, and refuse to store one: for
	// deployments whose policy is a file under change control.
	PolicyReadOnly bool
	// Outbox tunes the delivery of notifications (back-channel logouts):
	// timeouts, retries and which addresses they may go to.
	Outbox OutboxConfig
	// Mail sends email (an SMTP relay, or a directory of .eml files in
	// development); nil: email is not set up, nothing is queued for it and
	// the portal says so. Messages go through the outbox, never straight
	// from a request.
	Mail mail.Sender
	// AuditSink, if set, sees every audit event this server writes, after
	// it is committed, as stored (sequence and hash included): the
	// --audit-log stream. Events written at once may arrive out of order.
	AuditSink func(storage.AuditEvent)
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "" || err != nil:
		errs = append(errs, fmt.Errorf("issuer %q is not a URL", c.Issuer))
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", u.RawQuery != "", u.Fragment != "":
		errs = append(errs, fmt.Errorf("issuer %q must be an http(s) URL with a host and no query or fragment", c.Issuer))
	case strings.HasSuffix(c.Issuer, "/"):
		errs = append(errs, fmt.Errorf("issuer %q must not end with /", c.Issuer))
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		errs = append(errs, fmt.Errorf("issuer %q: http is only allowed for localhost; use https", c.Issuer))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if len(c.MasterKey) != factor.MasterKeySize {
		errs = append(errs, fmt.Errorf("master key must be %d bytes, got %d", factor.MasterKeySize, len(c.MasterKey)))
	}
	if c.Policy == nil {
		errs = append(errs, errors.New("no acr policy"))
	} else {
		for scope, acr := range c.ScopeMinACR {
			if _, _, ok := c.Policy.Lookup(acr); !ok {
				errs = append(errs, fmt.Errorf("scope %q: unknown minimum acr %q", scope, acr))
			}
		}
		if _, _, ok := c.Policy.Lookup(c.AdminACR); c.AdminACR != "" && !ok {
			errs = append(errs, fmt.Errorf("admin console: unknown acr %q", c.AdminACR))
		}
	}
	if c.AdminMaxAge < 0 {
		errs = append(errs, fmt.Errorf("admin console: max age %s is negative", c.AdminMaxAge))
	}
	if c.AuditCheckpointEvery < 0 || c.AuditCheckpointInterval < 0 {
		errs = append(errs, fmt.Errorf("audit checkpoints: every %d events or %s must not be negative", c.AuditCheckpointEvery, c.AuditCheckpointInterval))
	}
	if err := c.Outbox.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SessionIdleTimeout < 0 || c.SessionMaxAge < 0 {
		errs = append(errs, fmt.Errorf("session: idle timeout %s and max age %s must not be negative", c.SessionIdleTimeout, c.SessionMaxAge))
	}
	if c.RecoveryCoolingOff < 0 {
		errs = append(errs, fmt.Errorf("recovery: cooling-off %s is negative", c.RecoveryCoolingOff))
	}
	if c.PasskeyCoolingOff < 0 {
		errs = append(errs, fmt.Errorf("passkeys: cooling-off %s is negative", c.PasskeyCoolingOff))
	}
	return errors.Join(errs...)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// Server is a running Keystep: an http.Handler plus its parts.
type Server struct {
	cfg     Config
	handler http.Handler
	ops     http.Handler
	keys    *keyring
	sealer  *factor.Sealer
	metrics *metrics
	log     *slog.Logger
	audit   *web.Auditor
	ui      *login.Handler
	outbox  *outbox
	pols    *policy.Live
}

// Policies is the policy the server decides with: the active stored
// version, or its own Config's.
func (s *Server) Policies() *policy.Live { return s.pols }

// FollowPolicy picks up policy versions activated on any instance, every
// `every` (0: policy.DefaultFollowEvery), until ctx ends.
func (s *Server) FollowPolicy(ctx context.Context, every time.Duration) { s.pols.Follow(ctx, every) }

// ServeHTTP serves every Keystep endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// OpsHandler serves the operators' endpoints, which ServeHTTP does not:
// GET /healthz (the process answers), /readyz (and its storage does) and
// /metrics (Prometheus).
func (s *Server) OpsHandler() http.Handler { return s.ops }

// NewServer builds the server. It creates missing signing keys and the
// account portal's client in storage.
func NewServer(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Hasher == nil {
		cfg.Hasher = factor.NewPasswordHasher()
	}
	if cfg.ProductName == "" {
		cfg.ProductName = "Keystep"
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	now := func() time.Time { return cfg.Now().UTC() }
	tracer := tracerOf(cfg.TracerProvider)
	if t, ok := cfg.Store.(storage.Traced); ok && cfg.TracerProvider != nil {
		t.TraceStatements(statementTracer{tracer})
	}
	cfg.Store = newClientCache(cfg.Store, time.Now) // the TTL is real time, whatever cfg.Now says
	cfg.Store = newTokenStateCache(cfg.Store, time.Now)
	sealer, err := factor.NewSealer(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	if err := EnsureKeys(ctx, cfg.Store, sealer, now()); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	if err := ensureAccountClient(ctx, cfg.Store, cfg.Issuer, now()); err != nil {
		return nil, fmt.Errorf("account client: %w", err)
	}
	// The server's own policy is version 0; the active stored version, if
	// any, replaces it now and whenever another is activated (Follow).
	base, err := policy.Complete(policy.Snapshot{Doc: cfg.PolicyDocument, Levels: cfg.Policy, ScopeMinACR: cfg.ScopeMinACR, Risk: cfg.Risk,
		AdminACR: cfg.AdminACR, AdminMaxAge: cfg.AdminMaxAge, Details: cfg.Details, Clients: cfg.ClientPolicies})
	if err != nil {
		return nil, err
	}
	if reflect.ValueOf(cfg.PolicyDocument).IsZero() {
		// Configured with compiled values: version 0's document says
		// what they decide, so the first version edited from it keeps it.
		base.Doc = policy.SpellOut(base)
	}
	// A stored document may name only the locations file the server's own
	// configuration names: a version saved from the console is data.
	pols := policy.NewLive(cfg.Store, base, policy.Options{RiskWindow: base.Risk.Window, LocationsCSV: policy.LocationsOf(cfg.PolicyDocument)},
		cfg.PolicyReadOnly, cfg.Logger)
	if err := pols.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("stored policy: %w", err)
	}
	s := &Server{cfg: cfg, sealer: sealer, log: cfg.Logger, metrics: newMetrics(cfg.Registry), pols: pols}
	s.keys = &keyring{store: cfg.Store, sealer: sealer, now: now, tracer: tracer}
	if _, err := s.keys.load(ctx); err != nil {
		return nil, err
	}

	secure := strings.HasPrefix(cfg.Issuer, "https://")
	cookies := web.Cookies{Secure: secure}
	auditKey, err := storage.NewAuditKey(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	onEvent := s.metrics.audited
	if sink := cfg.AuditSink; sink != nil {
		onEvent = func(e storage.AuditEvent) { s.metrics.audited(e); sink(e) }
	}
	auditor := &web.Auditor{Store: cfg.Store, Key: auditKey, Log: cfg.Logger, Now: now, OnEvent: onEvent,
		SignCheckpoint: s.keys.signCheckpoint, CheckpointEvery: cfg.AuditCheckpointEvery, CheckpointInterval: cfg.AuditCheckpointInterval}
	// A log from before the keyed chain is sealed now; one whose last
	// checkpoint is overdue gets one.
	if err := auditor.Checkpoint(ctx); err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	s.audit = auditor
	if s.outbox, err = newOutbox(cfg.Outbox, s); err != nil {
		return nil, err
	}
	store := &opStorage{store: cfg.Store, keys: s.keys, refresh: newRefreshMinter(cfg.MasterKey), now: now, loginURL: "/login", audit: auditor, log: cfg.Logger, pols: pols}

	// The OP's own encryption key (codes, opaque access tokens) is derived
	// from the master key, so it survives restarts without another file.
	opKey := sha256.Sum256(append([]byte("keystep op crypto v1\x00"), cfg.MasterKey...))
	opts := []op.Option{
		op.WithIDTokenHintVerifierOpts(op.WithSupportedIDTokenHintSigningAlgorithms("RS256", "ES256", "EdDSA")),
		op.WithAccessTokenVerifierOpts(op.WithSupportedAccessTokenSigningAlgorithms("RS256", "ES256", "EdDSA"),
			newVerifiedCache(time.Now).option()),
	}
	if !secure {
		opts = append(opts, op.WithAllowInsecure())
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                opKey,
		CryptoKeyId:              "op1",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		AuthMethodPrivateKeyJWT:  true,
		GrantTypeRefreshToken:    true,
		RequestObjectSupported:   false, // request objects are verified before the library reads the request (resolveFront)
		DefaultLogoutRedirectURI: "/logged-out",
		SupportedScopes:          supportedScopes,
	}, store, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, err
	}
	endpoints := provider.Endpoints()
	endpoints.DeviceAuthorization = nil // not supported; keeps it out of routes and discovery
	guard, err := newDPoPGuard(cfg.Issuer, cfg.Store, cfg.MasterKey, now, !cfg.DPoPNonceNotRequired)
	if err != nil {
		return nil, err
	}
	cats, err := i18n.Load(i18n.Options{Pseudo: cfg.PseudoLocales})
	if err != nil {
		return nil, err
	}
	opsrv := &opServer{LegacyServer: op.NewLegacyServer(provider, endpoints), pols: pols, store: cfg.Store, audit: auditor,
		ops: store, keys: s.keys, dpop: guard,
		issuer: cfg.Issuer, now: now, log: cfg.Logger, requirePAR: cfg.RequirePAR}
	callback := op.AuthCallbackURL(provider)

	tmpl := fs.FS(templates.FS)
	if cfg.TemplatesDir != "" {
		tmpl = dirFS(cfg.TemplatesDir)
	}
	wa, err := factor.NewWebAuthn(cfg.Issuer, cfg.ProductName)
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	if wa == nil {
		cfg.Logger.Warn("passkeys are off: WebAuthn needs a host name in the issuer, not an IP address", "issuer", cfg.Issuer)
	}
	ui, err := login.New(login.Config{
		Store: cfg.Store, Templates: tmpl, Policies: pols,
		Hasher: cfg.Hasher, Sealer: sealer, Audit: auditor, Log: cfg.Logger, Now: now,
		Cookies: cookies, Callback: callback, Issuer: cfg.Issuer, AccountClientID: AccountClientID, Tracer: tracer,
		ProductName: cfg.ProductName, Dev: cfg.TemplatesDir != "", WebAuthn: wa, Mail: cfg.Mail, Catalogs: cats,
		Limits:             cfg.Limits,
		SessionIdleTimeout: cfg.SessionIdleTimeout, SessionMaxAge: cfg.SessionMaxAge,
		PasskeyCoolingOff:     cfg.PasskeyCoolingOff,
		RecoveryCoolingOff:    cfg.RecoveryCoolingOff,
		PasskeysTrustedAtOnce: cfg.PasskeysTrustedAtOnce,
		RotateKeys: func(ctx context.Context, activateIn time.Duration) ([]storage.SigningKey, error) {
			added, err := RotateKeys(ctx, cfg.Store, sealer, now(), activateIn)
			s.keys.invalidate()
			return added, err
		},
	})
	if err != nil {
		return nil, err
	}

	s.ui = ui
	mw := &opMiddleware{cookies: cookies, store: cfg.Store, now: now, ui: ui, metrics: s.metrics, op: opsrv, issuer: cfg.Issuer, log: cfg.Logger, dpop: guard}
	corsOpts := &cors.Options{
		// Public endpoints for browser apps; never with credentials. Not
		// the authorization endpoint and its callback, which a browser
		// visits and no script may read (FAPI 2.0 Security Profile §5.3.2.2).
		AllowOriginVaryRequestFunc: func(r *http.Request, _ string) (bool, []string) {
			return r.URL.Path != "/authorize" && r.URL.Path != "/authorize/callback", nil
		},
		AllowedMethods: []string{http.MethodGet, http.MethodPost},
		AllowedHeaders: []string{"Authorization", "Content-Type", dpop.HeaderProof},
		// RFC 9449 §8: a browser client reads the nonce, and the
		// DPoP challenge of a refused token.
		ExposedHeaders: []string{dpop.HeaderNonce, "WWW-Authenticate"},
	}
	opHandler := op.RegisterLegacyServer(opsrv,
		mw.callback(op.AuthorizeCallbackHandler(provider)),
		op.WithHTTPMiddleware(mw.state),
		op.WithServerCORSOptions(corsOpts),
	)

	uiMux := http.NewServeMux()
	ui.Register(uiMux)
	csrf := http.NewCrossOriginProtection()

	mux := http.NewServeMux()
	mux.Handle("/", mw.wrapOP(opHandler))
	// A public client may push from the browser (RFC 9126 §2), like it
	// calls the token endpoint.
	mux.Handle(parPath, cors.New(*corsOpts).Handler(http.HandlerFunc(opsrv.pushAuthorization)))
	for _, p := range []string{"/account", "/account/", "/admin", "/admin/", "/setup", "/logged-out", "/logout", "/recover", "/recover/"} {
		mux.Handle(p, csrf.Handler(uiMux))
	}
	// The login UI ends a request it refuses with an error redirect to
	// the client, an authorization response like any other (RFC 9207).
	for _, p := range []string{"/login", "/login/"} {
		mux.Handle(p, mw.withIss(csrf.Handler(uiMux)))
	}
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static.FS)))
	// Health and metrics are for operators, not the world: OpsHandler
	// serves them, on a listener of their own (cmd: --ops-addr).
	ops := http.NewServeMux()
	ops.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	ops.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := cfg.Store.Ping(ctx); err != nil {
			http.Error(w, "storage unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	ops.Handle("GET /metrics", s.metrics.handler(cfg.Registry))
	s.ops = ops
	// The OP library answers its own probes; not on the public handler.
	for _, p := range []string{"/healthz", "/ready"} {
		mux.Handle(p, http.NotFoundHandler())
	}
	// OpenID Shared Signals: the transmitter (ssf.go) and the receiver
	// (ssfreceive.go).
	(&ssfTransmitter{s: s, op: opsrv}).register(mux)
	rcv := &ssfReceiver{s: s, admin: &admin.Service{Store: cfg.Store, Policies: pols, Audit: auditor, Hasher: cfg.Hasher, Limits: cfg.Limits}}
	mux.HandleFunc("POST "+ssfReceivePath, rcv.receive)
	// The admin API (idp/adminapi): bearer calls from automation with a
	// client's own access token. It reads no cookies, so it needs no
	// cross-origin protection (a cross-site page cannot set the
	// Authorization header), and it is more specific than the console's
	// /admin/, which keeps its own.
	api := adminapi.New(adminapi.Config{
		Service: &admin.Service{Store: cfg.Store, Policies: pols, Audit: auditor, Hasher: cfg.Hasher, Limits: cfg.Limits,
			BuiltIn: AccountClientID},
		Authenticate: opsrv.adminCaller, Now: now, Log: cfg.Logger,
	})
	mux.Handle(adminapi.Prefix, api)
	mux.Handle(adminapi.Prefix+"/", api)

	if cfg.RateLimits == nil {
		cfg.RateLimits = DefaultRateLimits
	}
	var h http.Handler = newLimiter(cfg.RateLimits, now, cfg.Store.ClientByID).middleware(mux)
	h = web.WithRequestInfo(cfg.TrustedProxies, h)
	h = s.metrics.instrument(h)
	h = securityHeaders(secure, h)
	h = limitBody(h)
	if cfg.TracerProvider != nil {
		h = traceHTTP(tracer, cfg.Issuer, h)
	}
	s.handler = h
	return s, nil
}

// ensureAccountClient keeps the portal's built-in client in step with the issuer.
func ensureAccountClient(ctx context.Context, st storage.Clients, issuer string, now time.Time) error {
	want := storage.Client{
		ID: AccountClientID, Name: "your account", RedirectURIs: []string{issuer + "/account/callback"},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"},
		FirstParty: true, CreatedAt: now, UpdatedAt: now,
	}
	c, err := st.ClientByID(ctx, AccountClientID)
	if errors.Is(err, storage.ErrNotFound) {
		return st.CreateClient(ctx, want)
	}
	if err != nil {
		return err
	}
	if !slices.Equal(c.RedirectURIs, want.RedirectURIs) || c.SecretHash != "" {
		want.CreatedAt = c.CreatedAt
		return st.UpdateClient(ctx, want)
	}
	return nil
}

// Maintain deletes expired rows and writes an overdue audit checkpoint
// until ctx ends.
func (s *Server) Maintain(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.audit.Checkpoint(ctx); err != nil {
			s.log.WarnContext(ctx, "audit checkpoint failed", "err", err)
		}
		now := s.cfg.Now().UTC()
		for name, f := range map[string]func(context.Context, time.Time) (int, error){
			"auth_requests":   s.cfg.Store.DeleteExpiredAuthRequests,
			"tokens":          s.cfg.Store.DeleteExpiredTokens,
			"signing_keys":    s.cfg.Store.DeleteExpiredSigningKeys,
			"password_resets": s.cfg.Store.DeleteExpiredPasswordResets,
			"sessions":        s.sweepSessions, // ended, so their apps are told
			"outbox":          s.sweepGivenUp,
			"throttle":        func(ctx context.Context, _ time.Time) (int, error) { return s.ui.SweepThrottle(ctx) },
		} {
			if n, err := f(ctx, now); err != nil {
				s.log.WarnContext(ctx, "cleanup failed", "table", name, "err", err)
			} else if n > 0 {
				s.log.DebugContext(ctx, "cleanup", "table", name, "deleted", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// InvalidateKeys makes the next token use reread the signing keys.
func (s *Server) InvalidateKeys() { s.keys.invalidate() }
