// Package login is Keystep's hosted UI: the sign-in flow dispatcher, factor
// pages, consent, the account portal and first-run setup. It does not import
// the OP library; the composition root (package idp) hands it what it needs.
package login

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// Cookie names. Under https the session cookie takes the __Host- prefix so
// it cannot be set by a subdomain or sent over http (RFC 6265bis §4.1.3.2).
const (
	sessionCookie = "ks_session"
	browserCookie = "ks_browser"
)

// Cookies names and writes Keystep's cookies with the right flags.
type Cookies struct{ Secure bool }

func (c Cookies) name(base string) string {
	if c.Secure {
		return "__Host-" + base
	}
	return base
}

func (c Cookies) value(r *http.Request, base string) string {
	ck, err := r.Cookie(c.name(base))
	if err != nil {
		return ""
	}
	return ck.Value
}

func (c Cookies) set(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: c.name(base), Value: value, Path: "/",
		MaxAge: int(maxAge / time.Second), HttpOnly: true,
		Secure: c.Secure, SameSite: http.SameSiteLaxMode,
	})
}

func (c Cookies) clear(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{Name: c.name(base), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode})
}

// SessionID is the storage ID of the request's session cookie, or "".
func (c Cookies) SessionID(r *http.Request) string {
	if v := c.value(r, sessionCookie); v != "" {
		return factor.HashToken(v)
	}
	return ""
}

// BrowserBinding is the hash of the browser cookie, creating the cookie when
// absent. Auth requests are bound to it so that a flow started in one
// browser cannot be completed, or its code collected, in another.
func (c Cookies) BrowserBinding(w http.ResponseWriter, r *http.Request) (string, error) {
	v := c.value(r, browserCookie)
	if v == "" {
		var err error
		if v, err = factor.NewToken(); err != nil {
			return "", err
		}
		c.set(w, browserCookie, v, 400*24*time.Hour)
	}
	return factor.HashToken(v), nil
}

// ExistingBrowserBinding is the hash of the browser cookie, or "" without one.
func (c Cookies) ExistingBrowserBinding(r *http.Request) string {
	if v := c.value(r, browserCookie); v != "" {
		return factor.HashToken(v)
	}
	return ""
}

// ClearSession removes the session cookie.
func (c Cookies) ClearSession(w http.ResponseWriter) { c.clear(w, sessionCookie) }

// RequestInfo is what we know about the caller, for audit and risk.
type RequestInfo struct {
	IP        string
	UserAgent string
}

type infoKey struct{}

// WithRequestInfo stores the caller's IP and user agent in the request
// context. The IP is the connection's unless the peer is a trusted proxy, in
// which case the right-most untrusted X-Forwarded-For entry is used.
func WithRequestInfo(trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := RequestInfo{IP: ClientIP(r, trusted), UserAgent: r.UserAgent()}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
	})
}

// Info returns the request info stored by WithRequestInfo.
func Info(ctx context.Context) RequestInfo {
	info, _ := ctx.Value(infoKey{}).(RequestInfo)
	return info
}

// ClientIP returns the client address: the connection's peer, or, when the
// peer is a trusted proxy, the right-most X-Forwarded-For entry that is not.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr.String()
		}
		a = a.Unmap()
		if !isTrusted(a) {
			return a.String()
		}
		addr = a
	}
	return addr.String()
}

// Auditor writes audit events and mirrors them to the structured log.
type Auditor struct {
	Store storage.Audit
	// Key keys the chain (storage.NewAuditKey from the master key).
	Key storage.AuditKey
	Log *slog.Logger
	Now func() time.Time
	// OnEvent, if set, sees every event written (metrics).
	OnEvent func(storage.AuditEvent)
	// SignCheckpoint, if set, signs a checkpoint of the chain's head, and
	// Record writes one every CheckpointEvery events or CheckpointInterval,
	// whichever comes first (see checkpoint.go). login does not sign: the
	// composition root hands it the server's signing key this way.
	SignCheckpoint     func(ctx context.Context, c storage.AuditCheckpoint) (string, error)
	CheckpointEvery    int           // 0 means DefaultCheckpointEvery
	CheckpointInterval time.Duration // 0 means DefaultCheckpointInterval

	cp checkpointState
}

// Record appends e, filling time, IP and user agent from the context. A
// security event whose audit write fails must not succeed, so callers treat
// the error as fatal for the operation.
func (a *Auditor) Record(ctx context.Context, e storage.AuditEvent) error {
	info := Info(ctx)
	if e.Time.IsZero() {
		e.Time = a.Now()
	}
	if e.IP == "" {
		e.IP = info.IP
	}
	if e.UserAgent == "" {
		e.UserAgent = info.UserAgent
	}
	saved, err := a.Store.AppendAudit(ctx, a.Key, e)
	if err != nil {
		a.Log.ErrorContext(ctx, "audit write failed", "event", e.Type, "err", err)
		return fmt.Errorf("audit: %w", err)
	}
	if a.OnEvent != nil {
		a.OnEvent(saved)
	}
	a.Log.InfoContext(ctx, "audit", "seq", saved.Seq, "event", e.Type, "user_id", e.UserID,
		"client_id", e.ClientID, "outcome", e.Outcome, "reason", e.Reason, "ip", e.IP)
	a.checkpointAfter(ctx, saved)
	return nil
}

// renderer parses the page templates once (or on every render in dev mode)
// and renders into a buffer, so a template error never leaves half a page.
type renderer struct {
	fsys fs.FS
	dev  bool

	mu    sync.Mutex
	pages map[string]*template.Template
}

// requiredPages must exist in the templates; New fails at start otherwise.
var requiredPages = []string{
	"signin", "password", "otp", "recovery", "consent", "error", "setup", "logged_out",
	"account", "account_totp", "account_recovery", "account_password",
	"account_passkey", "webauthn", "logout_confirm", "account_help",
}

// adminPages are the admin console's pages: each is parsed with layout.html
// and admin_frame.html (the console's navigation), and is required too.
var adminPages = []string{
	"admin_home", "admin_clients", "admin_client", "admin_secret", "admin_users", "admin_user",
	"admin_policy", "admin_audit", "admin_keys",
}

// adminCardPages are the console's pages shown in the sign-in card, outside
// the console (no access, a factor to add first).
var adminCardPages = []string{"admin_denied"}

var funcs = template.FuncMap{
	"minus1":    func(n int) int { return n - 1 },
	"plus1":     func(n int) int { return n + 1 },
	"eventText": eventText,
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2 Jan 2006 15:04 UTC")
	},
}

func newRenderer(fsys fs.FS, dev bool) (*renderer, error) {
	r := &renderer{fsys: fsys, dev: dev}
	pages, err := r.parse()
	if err != nil {
		return nil, err
	}
	r.pages = pages
	return r, nil
}

func (r *renderer) parse() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	var errs []error
	for _, name := range requiredPages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(r.fsys, "layout.html", name+".html")
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", name, err))
			continue
		}
		pages[name] = t
	}
	for _, name := range slices.Concat(adminPages, adminCardPages) {
		files := []string{"layout.html", "admin_frame.html", name + ".html"}
		if slices.Contains(adminCardPages, name) {
			files = []string{"layout.html", name + ".html"}
		}
		t, err := template.New("layout.html").Funcs(funcs).Funcs(adminFuncs).ParseFS(r.fsys, files...)
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", name, err))
			continue
		}
		pages[name] = t
	}
	return pages, errors.Join(errs...)
}

func (r *renderer) render(w http.ResponseWriter, status int, name string, data any) error {
	pages := r.pages
	if r.dev {
		p, err := r.parse()
		if err != nil {
			return err
		}
		pages = p
	}
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := buf.WriteTo(w)
	return err
}

// newRef makes a short reference shown on error pages and logged with the
// error, so an admin can find what happened.
func newRef() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
