package conformance

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/storage"
)

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/login?id=x", "/.well-known/openid-configuration", "/keys", "/account", "/static/style.css", "/healthz", "/nope"} {
		resp, err := http.Get(e.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
}

// failingAudit makes audit writes fail on demand.
type failingAudit struct {
	storage.Store
	fail atomic.Bool
}

func (f *failingAudit) AppendAudit(ctx context.Context, key storage.AuditKey, e storage.AuditEvent) (storage.AuditEvent, error) {
	if f.fail.Load() {
		return storage.AuditEvent{}, errors.New("disk full")
	}
	return f.Store.AppendAudit(ctx, key, e)
}

// DESIGN §6: a security event whose audit write fails does not succeed.
func TestSignInFailsWhenAuditFails(t *testing.T) {
	var fa *failingAudit
	e := newEnv(t, func(c *idp.Config) { fa = &failingAudit{Store: c.Store}; c.Store = fa })
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	p := b.get(a.url)
	fa.fail.Store(true)
	p = b.signIn(p, alice, alicePass)
	if p.redirect != nil || p.status != http.StatusInternalServerError {
		t.Fatalf("sign-in went through without its audit row: %d %v", p.status, p.redirect)
	}
	if c := sessionCookie(b, e); c != "" {
		t.Fatal("a session was created without its audit row")
	}
	sessions, _ := e.store.ListUserSessions(context.Background(), "u-alice", e.clock.Now())
	if len(sessions) != 0 {
		t.Fatalf("%d sessions stored", len(sessions))
	}
}

// Under https the cookies are Secure, HttpOnly, SameSite=Lax and the
// session cookie has the __Host- prefix.
func TestCookieFlagsUnderHTTPS(t *testing.T) {
	e := newTLSEnv(t)
	rec := &cookieRecorder{next: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	jar, _ := cookiejar.New(nil)
	b := &browser{e: e, client: &http.Client{Jar: jar, Transport: rec, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	r := e.rp(rpClient, e.rpSecret)
	r.http = b.client
	a := r.authURL(nil)
	p := b.signIn(b.get(a.url), alice, alicePass)
	r.code(p, a)
	if !rec.hsts {
		t.Error("no HSTS under https")
	}
	joined := strings.Join(rec.cookies, "\n")
	if !strings.Contains(joined, "__Host-ks_session=") || !strings.Contains(joined, "__Host-ks_browser=") {
		t.Fatalf("no __Host- cookies in:\n%s", joined)
	}
	for _, raw := range rec.cookies {
		low := strings.ToLower(raw)
		if !strings.Contains(low, "; secure") || !strings.Contains(low, "; httponly") || !strings.Contains(low, "samesite=lax") || !strings.Contains(low, "path=/") {
			t.Errorf("cookie flags: %s", raw)
		}
	}
}

// cookieRecorder keeps every Set-Cookie header and whether HSTS was sent.
type cookieRecorder struct {
	next    http.RoundTripper
	cookies []string
	hsts    bool
}

func (c *cookieRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil {
		c.cookies = append(c.cookies, resp.Header.Values("Set-Cookie")...)
		c.hsts = c.hsts || resp.Header.Get("Strict-Transport-Security") != ""
	}
	return resp, err
}

// Secrets at rest (DESIGN §6): no password, client secret, refresh token,
// authorization code, TOTP seed or recovery code appears in the database.
func TestNoSecretsInTheDatabase(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	codes := e.recoveryCodes("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	code := r.code(b.signIn(b.get(a.url), alice, alicePass), a)
	tok := r.mustExchange(code, a)
	cookie := sessionCookie(b, e)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dbDir, "keystep.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dump := dumpDB(t, db)
	for name, s := range map[string]string{
		"password": alicePass, "client secret": e.rpSecret, "refresh token": tok.token.RefreshToken,
		"authorization code": code, "TOTP seed": secret, "recovery code": codes[0], "session cookie": cookie,
	} {
		if s != "" && strings.Contains(dump, s) {
			t.Errorf("the %s is stored in the clear", name)
		}
	}
	if !strings.Contains(dump, "$argon2id$") {
		t.Error("no argon2id password hash found")
	}
}

func dumpDB(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type='table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var sb strings.Builder
	for _, tbl := range tables {
		rs, err := db.Query(`SELECT * FROM "` + tbl + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rs.Columns()
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = rs.Scan(ptrs...)
			for _, v := range vals {
				fmt.Fprintf(&sb, "%s\n", v)
			}
		}
		rs.Close()
	}
	return sb.String()
}
