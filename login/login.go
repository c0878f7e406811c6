// Package login is Keystep's hosted UI: the sign-in flow dispatcher, factor
// pages, consent, the account portal, the admin console and first-run setup.
// It does not import the OP library; the composition root (package idp)
// hands it what it needs.
package login

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// Config is everything the hosted UI needs.
type Config struct {
	Store     storage.Store
	Templates fs.FS
	// Policies is the policy in force (levels, scope minimums, risk, the
	// console's level, authorization details types, per-client policy),
	// live: a new sign-in is decided under the active version, a sign-in
	// in flight under the version it began with.
	Policies *policy.Live
	Hasher   *factor.PasswordHasher
	Sealer   *factor.Sealer
	Audit    *web.Auditor
	Log      *slog.Logger
	Now      func() time.Time
	Cookies  web.Cookies
	// Callback is the OP's authorization callback URL for an auth request.
	Callback func(ctx context.Context, authRequestID string) string
	Issuer   string
	// AccountClientID is the built-in client the account portal signs in with.
	AccountClientID string
	ProductName     string
	// Catalogs are the UI's languages (i18n.Load); nil loads the
	// built-in ones.
	Catalogs *i18n.Catalogs
	Dev      bool
	// Limits are the throttle rules; nil means throttle.DefaultLimits.
	Limits throttle.Limits
	// StuffingLimit is how many different accounts may fail from one
	// address in an hour before new usernames from it are refused; 0 means
	// DefaultStuffingLimit, negative turns it off.
	StuffingLimit int
	// Mail is the configured email sender; nil: email is not set up, and
	// nothing is queued for it. Handlers only queue messages (notify.go);
	// the outbox worker sends them through it.
	Mail mail.Sender
	// WebAuthn is the passkey relying party; nil turns passkeys off.
	WebAuthn *webauthn.WebAuthn
	// SessionIdleTimeout ends a browser session unused for that long (0
	// means DefaultSessionIdleTimeout); SessionMaxAge ends it that long
	// after its first sign-in, used or not (0 means DefaultSessionMaxAge).
	SessionIdleTimeout time.Duration
	SessionMaxAge      time.Duration
	// PasskeyCoolingOff is how long a passkey added from a session below
	// phr waits before a use from a known device and network makes it
	// phishing-resistant (DESIGN §3.3); 0 means DefaultPasskeyCoolingOff.
	PasskeyCoolingOff time.Duration
	// PasskeysTrustedAtOnce trusts every passkey as it is added: for the
	// demo's throwaway server only (idp.Config.PasskeysTrustedAtOnce).
	PasskeysTrustedAtOnce bool
	// RecoveryCoolingOff is how long a request to replace lost second
	// factors waits before it can be used, unless an admin approves it
	// sooner; 0 means DefaultRecoveryCoolingOff.
	RecoveryCoolingOff time.Duration
	// Tracer spans each step-up decision; nil traces nothing.
	Tracer trace.Tracer
	// RotateKeys makes new signing keys for the admin console; nil hides
	// the button.
	RotateKeys func(ctx context.Context, activateIn time.Duration) ([]storage.SigningKey, error)
}

// Handler serves the hosted UI.
type Handler struct {
	cfg   Config
	r     *renderer
	admin *admin.Service
}

// DefaultStuffingLimit: distinct failing accounts per address per hour.
const DefaultStuffingLimit = 10

// Session and challenge limits.
const (
	reauthForChanges = 10 * time.Minute // NIST SP 800-63B §6.1.2.1 via DESIGN §3.3
)

// New checks the templates and builds the handler. It does no I/O beyond
// reading the template file system.
func New(cfg Config) (*Handler, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("login: no store"))
	}
	if cfg.Policies == nil {
		errs = append(errs, errors.New("login: no policy"))
	}
	if cfg.Hasher == nil || cfg.Sealer == nil || cfg.Audit == nil || cfg.Callback == nil {
		errs = append(errs, errors.New("login: hasher, sealer, audit and callback are required"))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if cfg.ProductName == "" {
		cfg.ProductName = "Keystep"
	}
	if cfg.Limits == nil {
		cfg.Limits = throttle.DefaultLimits()
	}
	if cfg.StuffingLimit == 0 {
		cfg.StuffingLimit = DefaultStuffingLimit
	}
	if err := cfg.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("login limits: %w", err))
	}
	if cfg.SessionIdleTimeout == 0 {
		cfg.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if cfg.SessionMaxAge == 0 {
		cfg.SessionMaxAge = DefaultSessionMaxAge
	}
	if err := CheckSessionLifetimes(cfg.SessionIdleTimeout, cfg.SessionMaxAge); err != nil {
		errs = append(errs, err)
	}
	if cfg.PasskeyCoolingOff <= 0 {
		cfg.PasskeyCoolingOff = DefaultPasskeyCoolingOff
	}
	if cfg.RecoveryCoolingOff <= 0 {
		cfg.RecoveryCoolingOff = DefaultRecoveryCoolingOff
	}
	if cfg.Catalogs == nil {
		cats, err := i18n.Load(i18n.Options{})
		if err != nil {
			return nil, err
		}
		cfg.Catalogs = cats
	}
	r, err := newRenderer(cfg.Templates, cfg.Dev, cfg.Catalogs)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, r: r}
	h.admin = &admin.Service{Store: cfg.Store, Policies: cfg.Policies, Audit: cfg.Audit, Hasher: cfg.Hasher, Limits: cfg.Limits,
		BuiltIn: cfg.AccountClientID, RotateKeys: cfg.RotateKeys, RecoveryApproved: h.recoveryApproved}
	return h, nil
}

// pol is the active policy: what a page outside a sign-in (the portal,
// the console) is decided under.
func (h *Handler) pol() *policy.Snapshot { return h.cfg.Policies.Current() }

// assessor assesses risk under p's rules.
func (h *Handler) assessor(p *policy.Snapshot) *signin.Assessor {
	return &signin.Assessor{Store: h.cfg.Store, Risk: p.Risk, Limits: h.cfg.Limits, Now: h.cfg.Now}
}

// Register mounts the UI routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET /login", h.handle(h.flow))
	mux.Handle("POST /login/password", h.handle(h.postPassword))
	mux.Handle("POST /login/otp", h.handle(h.postOTP))
	mux.Handle("POST /login/recovery", h.handle(h.postRecovery))
	mux.Handle("POST /login/consent", h.handle(h.postConsent))
	mux.Handle("POST /login/cancel", h.handle(h.postCancel))
	mux.Handle("POST /login/switch", h.handle(h.postSwitch))
	mux.Handle("POST /login/select", h.handle(h.postSelect))
	mux.Handle("POST /login/webauthn/options", h.handleJSON(h.loginOptions))
	mux.Handle("POST /login/webauthn/verify", h.handleJSON(h.loginVerify))
	mux.Handle("GET /logged-out", h.handle(h.loggedOut))
	mux.Handle("POST /logout", h.handle(h.postSignOut))
	mux.Handle("GET /setup", h.handle(h.setupPage))
	mux.Handle("POST /setup", h.handle(h.postSetup))
	h.registerEnroll(mux)
	h.registerRecover(mux)
	h.registerAccount(mux)
	h.registerAdmin(mux)
}

// pageError is an error with a message fit for the person in front of the page.
type pageError struct {
	status int
	title  string
	msg    string
	args   []any // msg's fmt verbs
	err    error // logged, never shown
}

func (e *pageError) Error() string {
	msg := e.msg
	if len(e.args) > 0 {
		msg = fmt.Sprintf(msg, e.args...)
	}
	if e.err != nil {
		return msg + ": " + e.err.Error()
	}
	return msg
}

// userError is an error page: title and msg are message keys (shown in
// the page's language), args fill msg's fmt verbs.
func userError(status int, title, msg string, args ...any) error {
	return &pageError{status: status, title: title, msg: msg, args: args}
}

type errorPage struct {
	Page
	Title, Message, Ref string
	// Detail is the protocol's own words for a refused request (an OAuth
	// error description, in English), shown as they are for the app's
	// developers; "" for none.
	Detail string
}

// handle adapts handlers that return an error: the person sees a plain
// message and a reference; the log gets the detail under the same reference.
func (h *Handler) handle(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = withLangNote(r)
		err := fn(w, r)
		if err == nil {
			return
		}
		ref := newRef()
		pe := &pageError{status: http.StatusInternalServerError, title: i18n.N("Something went wrong"),
			msg: i18n.N("We couldn't finish that. Try again in a moment; if it keeps happening, give your administrator the reference below."), err: err}
		var known *pageError
		if errors.As(err, &known) {
			pe = known
		}
		level := slog.LevelWarn
		if pe.status >= 500 {
			level = slog.LevelError
		}
		h.cfg.Log.Log(r.Context(), level, "request failed", "ref", ref, "path", r.URL.Path, "status", pe.status, "err", err)
		tr := h.tr(r)
		title := tr.T(pe.title)
		if rerr := h.render(w, r, pe.status, "error", errorPage{Page: h.page(r, title), Title: title, Message: tr.T(pe.msg, pe.args...), Ref: ref}); rerr != nil {
			h.cfg.Log.Error("render error page", "err", rerr)
			http.Error(w, tr.T("Something went wrong. Reference %s", ref), pe.status)
		}
	})
}

// RenderError renders the error page for the OP's own failures (bad client,
// bad redirect URI), which must never redirect (RFC 6749 §4.1.2.1). title
// and msg are message keys, shown in the page's language.
func (h *Handler) RenderError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	h.renderRefusal(w, r, status, title, msg, "")
}

// RenderRequestError is RenderError for a request refused in the
// protocol's own words (detail: an OAuth error description, or a
// parameter's problem, in English): the page says in the person's
// language that the app's request can't be accepted, and shows detail as
// it is, for the app's developers.
func (h *Handler) RenderRequestError(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	h.renderRefusal(w, r, status, title, i18n.N("The app that sent you here made a request this sign-in service can't accept. Go back to the app and start again."), detail)
}

func (h *Handler) renderRefusal(w http.ResponseWriter, r *http.Request, status int, title, msg, detail string) {
	ref := newRef()
	h.cfg.Log.WarnContext(r.Context(), "authorization request refused", "ref", ref, "status", status, "message", msg, "detail", detail)
	tr := h.tr(r)
	title = tr.T(title)
	if err := h.render(w, r, status, "error", errorPage{Page: h.page(r, title), Title: title, Message: tr.T(msg), Ref: ref, Detail: detail}); err != nil {
		http.Error(w, tr.T(msg), status)
	}
}

// Page is the data every page shares.
type Page struct {
	Product string
	Title   string
}

// page is the data every page shares; title is a message key (or a
// text already in the page's language).
func (h *Handler) page(r *http.Request, title string) Page {
	return Page{Product: h.cfg.ProductName, Title: h.tr(r).T(title)}
}

// ConfirmLogout asks before ending the session of a logout request that
// names no id_token_hint: RP-Initiated Logout 1.0 §2 — without one, the
// request may come from any site. The form posts under CSRF protection.
func (h *Handler) ConfirmLogout(w http.ResponseWriter, r *http.Request) {
	if err := h.render(w, r, http.StatusOK, "logout_confirm", struct{ Page }{h.page(r, "Sign out?")}); err != nil {
		h.cfg.Log.Error("render logout confirmation", "err", err)
		http.Error(w, h.tr(r).T("Sign out?"), http.StatusInternalServerError)
	}
}

func (h *Handler) loggedOut(w http.ResponseWriter, r *http.Request) error {
	return h.render(w, r, http.StatusOK, "logged_out", struct{ Page }{h.page(r, "Signed out")})
}

// ---- sessions ----

// loadSession returns the request's session, or a zero session and false.
func (h *Handler) loadSession(ctx context.Context, r *http.Request) (storage.Session, storage.User, bool, error) {
	id := h.cfg.Cookies.SessionID(r)
	if id == "" {
		return storage.Session{}, storage.User{}, false, nil
	}
	now := h.cfg.Now()
	s, err := h.cfg.Store.SessionByID(ctx, id, now)
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrExpired) {
		return storage.Session{}, storage.User{}, false, nil
	}
	if err != nil {
		return storage.Session{}, storage.User{}, false, err
	}
	if h.idleOut(s, now) {
		if err := admin.EndSessions(ctx, h.cfg.Store, now, s.End()); err != nil {
			return storage.Session{}, storage.User{}, false, err
		}
		return storage.Session{}, storage.User{}, false, nil
	}
	u, err := h.cfg.Store.UserByID(ctx, s.UserID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && u.Disabled {
		return storage.Session{}, storage.User{}, false, nil
	}
	if err != nil {
		return storage.Session{}, storage.User{}, false, err
	}
	h.touch(ctx, &s, now)
	noteSaved(ctx, u.Locale)
	return s, u, true, nil
}

// addFactor records a completed factor. The session ID (and cookie) rotates
// whenever the set of completed factors changes (DESIGN §6), so a cookie
// captured before a step-up is worth nothing after it. A factor for another
// user than the session's starts a fresh session.
func (h *Handler) addFactor(w http.ResponseWriter, r *http.Request, userID string, ev storage.FactorEvent) (storage.Session, error) {
	ctx := r.Context()
	now := h.cfg.Now()
	token, err := factor.NewToken()
	if err != nil {
		return storage.Session{}, err
	}
	info := web.Info(ctx)
	next := storage.Session{
		ID: factor.HashToken(token), UserID: userID, IP: info.IP, UserAgent: info.UserAgent,
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(h.cfg.SessionMaxAge),
	}
	cur, _, ok, err := h.loadSession(ctx, r)
	if err != nil {
		return storage.Session{}, err
	}
	// A session presented from another network *and* browser than it was
	// issued to (risk: session drift) may be a stolen cookie: proving a
	// factor again starts a new session, so the factors completed before
	// never count for whoever holds it now.
	if ok && cur.UserID == userID && !drifted(cur, info) {
		next.CreatedAt, next.ExpiresAt = cur.CreatedAt, cur.ExpiresAt
		for _, f := range cur.Factors {
			if f.Method != ev.Method {
				next.Factors = append(next.Factors, f)
			}
		}
		next.Factors = append(next.Factors, ev)
		if err := h.cfg.Store.RotateSession(ctx, cur.ID, next); err != nil {
			return storage.Session{}, fmt.Errorf("rotate session: %w", err)
		}
		if err := h.signalRaised(ctx, cur, next, now); err != nil {
			return storage.Session{}, err
		}
	} else {
		if ok {
			// The session it replaces ends everywhere, audited: another
			// person's (a switch of account, or a hint naming someone
			// else), or a drifted one. Nothing of it carries over.
			if err := h.endReplaced(r, cur, userID); err != nil {
				return storage.Session{}, err
			}
		}
		next.Factors = []storage.FactorEvent{ev}
		if err := h.cfg.Store.CreateSession(ctx, next); err != nil {
			return storage.Session{}, err
		}
	}
	h.cfg.Cookies.SetSession(w, token, h.cfg.SessionMaxAge)
	return next, nil
}

// signalRaised queues a CAEP assurance-level-change (Shared Signals) when
// a factor proved in session cur raised its level (step-up): the level is
// the one Keystep issues for it (Policy.Current). A drifted session is not
// lowered in place: it ends (session-revoked) and a new one starts.
func (h *Handler) signalRaised(ctx context.Context, cur, next storage.Session, now time.Time) error {
	levels := h.pol().Levels
	before, _ := levels.Current(stepup.Session{Done: signin.FactorsOf(cur.Factors, ""), Now: now})
	after, ok := levels.Current(stepup.Session{Done: signin.FactorsOf(next.Factors, ""), Now: now})
	if !ok || before == after {
		return nil
	}
	rb, _, okb := levels.Lookup(before)
	ra, _, _ := levels.Lookup(after)
	if okb && ra <= rb {
		return nil
	}
	return admin.Signal(ctx, h.cfg.Store, now, admin.AssuranceChange(next.UserID, next.SID(), before, after, true))
}

// drifted reports whether a request comes from another network and another
// user agent than the session was issued to: the risk engine's drift rule,
// on the same facts the assessor gives it (sessionMoved), and the reason
// stepup.Decide counts none of the session's factors (Input.Drifted).
func drifted(s storage.Session, info web.RequestInfo) bool {
	network, agent := signin.SessionMoved(s, info.IP, info.UserAgent)
	return network && agent
}

// sid is the session identifier put in tokens (storage.Session.SID).
func sid(s storage.Session) string { return s.SID() }
