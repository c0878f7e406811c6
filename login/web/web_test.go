package web_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name      string
		remote    string
		xff       []string
		trusted   []netip.Prefix
		want      string
		forwarded []string // Forwarded headers (RFC 7239)
	}{
		{"the peer's address without proxies", "203.0.113.7:5555", nil, nil, "203.0.113.7", nil},
		{"a forwarded-for header from an untrusted peer is ignored", "203.0.113.7:5555", []string{"198.51.100.1"}, proxies, "203.0.113.7", nil},
		{"a trusted proxy's forwarded-for names the client", "10.0.0.2:80", []string{"198.51.100.1"}, proxies, "198.51.100.1", nil},
		{"the right-most untrusted entry wins over a spoofed left one", "10.0.0.2:80", []string{"192.0.2.66, 198.51.100.1, 10.0.0.3"}, proxies, "198.51.100.1", nil},
		{"entries in several headers are read as one list", "10.0.0.2:80", []string{"192.0.2.66", "198.51.100.1"}, proxies, "198.51.100.1", nil},
		{"a malformed entry stops at the last trusted hop", "10.0.0.2:80", []string{"garbage, 10.0.0.3"}, proxies, "10.0.0.3", nil},
		{"a trusted proxy with no header is the client", "10.0.0.2:80", nil, proxies, "10.0.0.2", nil},
		{"an IPv4-mapped peer is unmapped", "[::ffff:203.0.113.7]:5555", nil, nil, "203.0.113.7", nil},
		{"a trusted proxy's Forwarded for= names the client", "10.0.0.2:80", nil, proxies, "198.51.100.1", []string{"for=198.51.100.1;proto=https"}},
		{"Forwarded: quoted IPv6 with a port, right-most untrusted", "10.0.0.2:80", nil, proxies, "2001:db8::17", []string{`for=192.0.2.66, for="[2001:db8::17]:4711", for=10.0.0.3`}},
		{"Forwarded: an IPv4 node with a port", "10.0.0.2:80", nil, proxies, "198.51.100.1", []string{`For="198.51.100.1:4711"`}},
		{"Forwarded wins over X-Forwarded-For", "10.0.0.2:80", []string{"192.0.2.66"}, proxies, "198.51.100.1", []string{"for=198.51.100.1"}},
		{"an obfuscated Forwarded node stops at the last trusted hop", "10.0.0.2:80", nil, proxies, "10.0.0.3", []string{"for=_hidden, for=10.0.0.3"}},
		{"Forwarded from an untrusted peer is ignored", "203.0.113.7:5555", nil, proxies, "203.0.113.7", []string{"for=198.51.100.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.forwarded {
				r.Header.Add("Forwarded", v)
			}
			if got := web.ClientIP(r, tt.trusted); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCookies(t *testing.T) {
	for _, tt := range []struct {
		name   string
		secure bool
		want   string
	}{
		{"under https the name takes the __Host- prefix", true, "__Host-ks_x"},
		{"under http it does not", false, "ks_x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := web.Cookies{Secure: tt.secure}
			w := httptest.NewRecorder()
			c.Set(w, "ks_x", "v1", time.Minute)
			got := w.Result().Cookies()
			if len(got) != 1 {
				t.Fatalf("%d cookies set", len(got))
			}
			ck := got[0]
			if ck.Name != tt.want || ck.Value != "v1" || ck.Path != "/" || ck.MaxAge != 60 || !ck.HttpOnly || ck.Secure != tt.secure || ck.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie %+v", ck)
			}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.AddCookie(ck)
			if v := c.Value(r, "ks_x"); v != "v1" {
				t.Errorf("Value = %q, want v1", v)
			}
			w = httptest.NewRecorder()
			c.Clear(w, "ks_x")
			if ck := w.Result().Cookies()[0]; ck.Name != tt.want || ck.MaxAge != -1 {
				t.Errorf("Clear set %+v", ck)
			}
		})
	}
}

// The session and browser cookies hold tokens; only their hashes are ever
// looked up (DESIGN §6).
func TestSessionAndBrowserCookiesAreLookedUpByHash(t *testing.T) {
	c := web.Cookies{}
	w := httptest.NewRecorder()
	c.SetSession(w, "token", time.Hour)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, ck := range w.Result().Cookies() {
		r.AddCookie(ck)
	}
	if got := c.SessionID(r); got != factor.HashToken("token") {
		t.Errorf("SessionID = %q, want the token's hash", got)
	}
	if got := c.SessionID(httptest.NewRequest(http.MethodGet, "/", nil)); got != "" {
		t.Errorf("SessionID without a cookie = %q", got)
	}

	bare := httptest.NewRequest(http.MethodGet, "/", nil)
	if got := c.ExistingBrowserBinding(bare); got != "" {
		t.Errorf("ExistingBrowserBinding without a cookie = %q", got)
	}
	w = httptest.NewRecorder()
	bind, err := c.BrowserBinding(w, bare)
	if err != nil {
		t.Fatal(err)
	}
	set := w.Result().Cookies()
	if len(set) != 1 || factor.HashToken(set[0].Value) != bind {
		t.Fatalf("BrowserBinding set %+v for binding %q", set, bind)
	}
	again := httptest.NewRequest(http.MethodGet, "/", nil)
	again.AddCookie(set[0])
	w = httptest.NewRecorder()
	if b, _ := c.BrowserBinding(w, again); b != bind || len(w.Result().Cookies()) != 0 {
		t.Errorf("a browser with the cookie got binding %q and %d new cookies; want %q and none", b, len(w.Result().Cookies()), bind)
	}
	if got := c.ExistingBrowserBinding(again); got != bind {
		t.Errorf("ExistingBrowserBinding = %q, want %q", got, bind)
	}
}

// Record fills the time from its clock and the address and user agent from
// the request (WithRequestInfo), keeping what the event already says.
func TestRecordFillsRequestInfo(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := storage.NewAuditKey([]byte("web test master key, 32 bytes!!"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a := &web.Auditor{Store: st, Key: key, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }}
	h := web.WithRequestInfo(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, e := range []storage.AuditEvent{
			{Type: "login.completed", UserID: "u1", Outcome: "success"},
			{Type: "admin.denied", Outcome: "denied", IP: "192.0.2.1", Time: t0.Add(-time.Hour)},
		} {
			if err := a.Record(r.Context(), e); err != nil {
				t.Error(err)
			}
		}
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr, r.Header["User-Agent"] = "203.0.113.7:5555", []string{"test-agent"}
	h.ServeHTTP(httptest.NewRecorder(), r)

	rows, err := st.ListAudit(t.Context(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Type, IP, UserAgent string
		Time                time.Time
	}
	var got []row
	for _, e := range rows {
		got = append(got, row{string(e.Type), e.IP, e.UserAgent, e.Time.UTC()})
	}
	want := []row{
		{"login.completed", "203.0.113.7", "test-agent", t0},
		{"admin.denied", "192.0.2.1", "test-agent", t0.Add(-time.Hour)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit rows (-want +got):\n%s", diff)
	}
}
