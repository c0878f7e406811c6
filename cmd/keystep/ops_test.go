package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// Every serve in these tests (and the binaries they start) gets its
	// own ops port instead of the default 127.0.0.1:9090.
	os.Setenv("KEYSTEP_OPS_ADDR", "127.0.0.1:0")
	os.Exit(m.Run())
}

var (
	servingAnyRE = regexp.MustCompile(`Keystep is serving (https?://\S+)`)
	opsRE        = regexp.MustCompile(`Operations endpoints \(/metrics, /healthz, /readyz\) on (http://\S+)`)
)

// liveServe is a `keystep serve` in the test, http or https.
type liveServe struct {
	url, ops       string // ops is "" when the ops listener is off
	stdout, stderr *syncBuffer
	done           chan int
	cancel         context.CancelFunc
	stop           func() int
}

// startLive runs serve with args (after --addr 127.0.0.1:0) until it
// prints its URL.
func startLive(t *testing.T, args ...string) *liveServe {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &liveServe{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1), cancel: cancel}
	go func() {
		s.done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), s.stdout, s.stderr)
	}()
	var once sync.Once
	var code int
	s.stop = func() int {
		once.Do(func() { cancel(); code = <-s.done })
		return code
	}
	t.Cleanup(func() { s.stop() })
	for {
		if m := servingAnyRE.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			if m := opsRE.FindStringSubmatch(s.stdout.String()); m != nil {
				s.ops = m[1]
			}
			return s
		}
		select {
		case code := <-s.done:
			t.Fatalf("serve exited %d before serving\nstdout: %s\nstderr: %s", code, s.stdout, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fetch GETs u and returns the status and body.
func fetch(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOpsListenerServesWhatThePublicOneDoesNot(t *testing.T) {
	s := startLive(t, "--data", t.TempDir(), "--pprof", "on")
	if s.ops == "" {
		t.Fatalf("no ops listener announced:\n%s", s.stdout)
	}
	c := http.DefaultClient
	// One public request first, so the request counter has a sample
	// whichever endpoint is checked first.
	if code, _ := fetch(t, c, s.url+"/.well-known/openid-configuration"); code != 200 {
		t.Fatalf("discovery: %d", code)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "keystep_http_requests_total", "/debug/pprof/": "goroutine"} {
		if code, body := fetch(t, c, s.ops+path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("ops %s: %d %.200q, want %q", path, code, body, want)
		}
		if code, body := fetch(t, c, s.url+path); code != http.StatusNotFound {
			t.Errorf("public %s: %d %.200q, want 404", path, code, body)
		}
	}
	resp, err := c.Get(s.url + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("public discovery: %d, HSTS %q on an http issuer", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}

	// No profiler unless asked; --public-metrics puts the endpoints on
	// the public listener too; off means no ops listener.
	p := startLive(t, "--data", t.TempDir(), "--public-metrics")
	if code, _ := fetch(t, c, p.ops+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("profiler without --pprof: %d", code)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := fetch(t, c, p.url+path); code != 200 {
			t.Errorf("--public-metrics: public %s: %d", path, code)
		}
	}
	// --pprof HOST:PORT still works (TestServeProfiler), and says it is
	// deprecated.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr := ln.Addr().String()
	ln.Close()
	old := startLive(t, "--data", t.TempDir(), "--pprof", pprofAddr)
	if !strings.Contains(old.stderr.String(), "deprecated") {
		t.Errorf("--pprof HOST:PORT not called deprecated:\n%s", old.stderr)
	}
	off := startLive(t, "--data", t.TempDir(), "--ops-addr", "off")
	if off.ops != "" || strings.Contains(off.stderr.String(), "operations endpoints serving") {
		t.Errorf("--ops-addr off still serves: %s", off.stdout)
	}
}

func TestOpsFlagsRefused(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--pprof", "on", "--ops-addr", "off"}, "--ops-addr, which is off"},
		{[]string{"--pprof", "on", "--ops-addr", "0.0.0.0:9090"}, "must not be reachable"},
		{[]string{"--pprof", "0.0.0.0:6060"}, "loopback"},
		{[]string{"--ops-addr", "9090"}, "--ops-addr"},
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--issuer", "http://localhost:8080"}, "https://"},
	} {
		d := t.TempDir()
		r := keystep(t, "", append([]string{"serve", "--data", d}, tt.args...)...)
		wantExit(t, r, 2, tt.want)
		noFile(t, d+"/keystep.db")
	}
}

// A request in flight when serve is told to stop is answered before serve
// returns: here one whose body is still arriving.
func TestServeDrainsInFlightRequestOnShutdown(t *testing.T) {
	s := startLive(t, "--data", t.TempDir())
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "grant_type=client_credentials&client_id=nobody&client_secret=x"
	fmt.Fprintf(conn, "POST /oauth/token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		strings.TrimPrefix(s.url, "http://"), len(body), body[:10])
	time.Sleep(100 * time.Millisecond) // the server has read the headers: the connection is active
	s.cancel()                         // SIGTERM
	select {
	case code := <-s.done:
		t.Fatalf("serve exited %d with a request in flight", code)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("in-flight request: %d", resp.StatusCode)
	}
	select {
	case code := <-s.done:
		if code != 0 {
			t.Errorf("serve exited %d after draining\nstderr: %s", code, s.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the last request")
	}
	s.done <- 0 // for the cleanup's stop
}

// An https issuer without --tls-cert is TLS at a proxy: plain http on the
// listener, the issuer as given (never from request headers), and HSTS,
// which the proxy passes on to browsers.
func TestServeHTTPSIssuerBehindProxy(t *testing.T) {
	cfg := writeFile(t, "keystep.json", `{"trusted_proxies": ["127.0.0.1/32"]}`)
	s := startLive(t, "--data", t.TempDir(), "--issuer", "https://id.example.com", "--config", cfg)
	m := regexp.MustCompile(`"msg":"keystep serving","addr":"([^"]+)"`).FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no listen address logged:\n%s", s.stderr)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+m[1]+"/.well-known/openid-configuration", nil)
	req.Host = "evil.example"
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "http")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"issuer":"https://id.example.com"`) || strings.Contains(string(body), "evil") {
		t.Errorf("discovery behind a proxy: %d\n%.500s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=63072000; includeSubDomains" {
		t.Errorf("HSTS %q", got)
	}
}

// The first `go run ./cmd/keystep` starts even when the default operations
// port is taken (a Prometheus on 9090, say): the listener is off and the
// log says so. An address named on purpose that cannot be had is an error.
func TestServeStartsWhenTheDefaultOpsPortIsTaken(t *testing.T) {
	was, had := os.LookupEnv("KEYSTEP_OPS_ADDR")
	os.Unsetenv("KEYSTEP_OPS_ADDR")
	t.Cleanup(func() {
		if had {
			os.Setenv("KEYSTEP_OPS_ADDR", was)
		}
	})
	if ln, err := net.Listen("tcp", defaultOpsAddr); err == nil {
		t.Cleanup(func() { ln.Close() })
	} // else someone else has it: taken all the same
	s := startLive(t, "--data", t.TempDir())
	if s.ops != "" {
		t.Fatalf("an ops listener on a taken port: %s", s.ops)
	}
	if !strings.Contains(s.stderr.String(), "operations listener is off") {
		t.Errorf("no word of the ops listener being off:\n%s", s.stderr)
	}
	code := run(t.Context(), []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--ops-addr", defaultOpsAddr}, strings.NewReader(""), io.Discard, io.Discard)
	if code == 0 {
		t.Errorf("serve with --ops-addr on a taken port exited 0")
	}
}
