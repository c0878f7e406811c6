// Package web is the hosted UI's request plumbing, shared by the sign-in
// pages, the account portal and the admin console: Keystep's cookies, the
// caller's address and user agent, and the audit writer. It renders no
// pages and never imports package login.
package web

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
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

// Value is the value of the cookie named base, or "".
func (c Cookies) Value(r *http.Request, base string) string {
	ck, err := r.Cookie(c.name(base))
	if err != nil {
		return ""
	}
	return ck.Value
}

// Set writes the cookie named base: HttpOnly, SameSite=Lax, Secure (and
// __Host-) under https, for the whole site.
func (c Cookies) Set(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: c.name(base), Value: value, Path: "/",
		MaxAge: int(maxAge / time.Second), HttpOnly: true,
		Secure: c.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// Clear removes the cookie named base.
func (c Cookies) Clear(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{Name: c.name(base), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode})
}

// SetSession writes the session cookie; only its hash is stored (SessionID).
func (c Cookies) SetSession(w http.ResponseWriter, token string, maxAge time.Duration) {
	c.Set(w, sessionCookie, token, maxAge)
}

// SessionID is the storage ID of the request's session cookie, or "".
func (c Cookies) SessionID(r *http.Request) string {
	if v := c.Value(r, sessionCookie); v != "" {
		return factor.HashToken(v)
	}
	return ""
}

// BrowserBinding is the hash of the browser cookie, creating the cookie when
// absent. Auth requests are bound to it so that a flow started in one
// browser cannot be completed, or its code collected, in another.
func (c Cookies) BrowserBinding(w http.ResponseWriter, r *http.Request) (string, error) {
	v := c.Value(r, browserCookie)
	if v == "" {
		var err error
		if v, err = factor.NewToken(); err != nil {
			return "", err
		}
		c.Set(w, browserCookie, v, 400*24*time.Hour)
	}
	return factor.HashToken(v), nil
}

// ExistingBrowserBinding is the hash of the browser cookie, or "" without one.
func (c Cookies) ExistingBrowserBinding(r *http.Request) string {
	if v := c.Value(r, browserCookie); v != "" {
		return factor.HashToken(v)
	}
	return ""
}

// ClearSession removes the session cookie.
func (c Cookies) ClearSession(w http.ResponseWriter) { c.Clear(w, sessionCookie) }

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
// peer is a trusted proxy, the right-most forwarded address that is not:
// from the Forwarded header's for= parameters (RFC 7239) when the request
// has one, else from X-Forwarded-For. An entry that is not an address (an
// obfuscated or "unknown" node) stops the walk at the last trusted hop.
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
	hops := forwardedFor(r.Header.Values("Forwarded"))
	if hops == nil {
		hops = strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	}
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

// forwardedFor lists the for= nodes of Forwarded headers (RFC 7239 §4),
// first hop first, as addresses without brackets or ports; nil when there
// is no Forwarded header. A node that is not an address is kept as it is,
// so the walk in ClientIP stops there.
func forwardedFor(values []string) []string {
	if len(values) == 0 {
		return nil
	}
	out := []string{}
	for _, elem := range strings.Split(strings.Join(values, ","), ",") {
		for _, pair := range strings.Split(elem, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "for") {
				continue
			}
			v = strings.Trim(strings.TrimSpace(v), `"`)
			if strings.HasPrefix(v, "[") { // [2001:db8::1]:4711
				if end := strings.Index(v, "]"); end > 0 {
					v = v[1:end]
				}
			} else if host, _, err := net.SplitHostPort(v); err == nil { // 192.0.2.1:4711
				v = host
			}
			out = append(out, v)
		}
	}
	return out
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
	// whichever comes first (see checkpoint.go). web does not sign: the
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
