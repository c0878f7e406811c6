package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage/sqlite"
)

// asKeystep makes the test binary act as keystep: bench starts its server
// by running its own executable, which in a test is this binary.
const asKeystep = "GO_TEST_RUN_AS_KEYSTEP" // not KEYSTEP_*: bench clears those for its server

func TestMain(m *testing.M) {
	if os.Getenv(asKeystep) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

// serveFromTestBinary makes bench start this test binary as its server,
// which TestMain turns into keystep, until the test ends.
func serveFromTestBinary(t *testing.T) {
	t.Helper()
	old := benchServerCommand
	t.Cleanup(func() { benchServerCommand = old })
	benchServerCommand = func(args ...string) (*exec.Cmd, error) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), asKeystep+"=1")
		return cmd, nil
	}
}

// benchReportOf runs bench with args and decodes its --json report.
func benchReportOf(t *testing.T, args ...string) benchReport {
	t.Helper()
	r := keystep(t, "", append([]string{"bench", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("keystep bench %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench --json output is not JSON: %v\n%s", err, r.stdout)
	}
	return rep
}

func wantScenarios(t *testing.T, rep benchReport, names ...string) {
	t.Helper()
	if len(rep.Scenarios) != len(names) {
		t.Fatalf("got %d scenarios, want %v", len(rep.Scenarios), names)
	}
	for i, s := range rep.Scenarios {
		if s.Name != names[i] {
			t.Errorf("scenario %d is %s, want %s", i, s.Name, names[i])
		}
		if s.Ops == 0 || s.OpsPerSecond <= 0 || s.Errors != 0 {
			t.Errorf("%s: %d ops at %.1f/s with %d errors (%s)", s.Name, s.Ops, s.OpsPerSecond, s.Errors, s.FirstError)
		}
		if s.P50ms <= 0 || s.P99ms < s.P50ms {
			t.Errorf("%s: p50 %.3f ms, p99 %.3f ms", s.Name, s.P50ms, s.P99ms)
		}
	}
}

// The default mode: a child `keystep serve` on a fresh folder, measured
// from /proc, stopped and cleaned up at the end.
func TestBenchStartsAndMeasuresAChildServer(t *testing.T) {
	serveFromTestBinary(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where bench makes the server's data folder

	rep := benchReportOf(t, "--duration", "300ms", "--workers", "2", "--scenario", "client_credentials,jwks")
	wantScenarios(t, rep, "jwks", "client_credentials")
	if !rep.Server.Child || rep.Server.PID == 0 || !strings.HasPrefix(rep.Server.URL, "http://127.0.0.1:") || rep.Server.Database != "sqlite" {
		t.Errorf("server %+v, want a child on 127.0.0.1", rep.Server)
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		for _, s := range rep.Scenarios {
			if s.ServerCPUSeconds == nil || s.OpsPerServerCPUSecond == nil || *s.OpsPerServerCPUSecond <= 0 || s.PeakRSSBytes == nil || *s.PeakRSSBytes <= 0 {
				t.Errorf("%s: no server CPU or memory figures", s.Name)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "keystep-bench-*")); len(left) > 0 {
		t.Errorf("data folder left behind: %v", left)
	}
}

// --url: a running server and its data folder; every scenario end to end,
// by count.
func TestBenchDrivesEveryScenarioAgainstAURL(t *testing.T) {
	data := t.TempDir()
	key := make([]byte, factor.MasterKeySize)
	_, _ = rand.Read(key)
	if err := os.WriteFile(filepath.Join(data, "master.key"), fmt.Appendf(nil, "%x\n", key), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the OP library logs its routes there
	t.Cleanup(func() { slog.SetDefault(prev) })
	var h http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	srv, err := idp.NewServer(t.Context(), idp.Config{
		Issuer: ts.URL, Store: st, MasterKey: key, Policy: stepup.DefaultPolicy(),
		Logger:         slog.New(slog.DiscardHandler),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		RateLimits:     map[string]idp.RateLimit{}, // capacity, not flood protection
	})
	if err != nil {
		t.Fatal(err)
	}
	h = srv

	rep := benchReportOf(t, "--url", ts.URL, "--data", data, "--count", "4", "--workers", "2")
	wantScenarios(t, rep, benchScenarioNames()...)
	if rep.Server.Child || rep.Server.PID != 0 {
		t.Errorf("server %+v, want the given URL and no process", rep.Server)
	}
	for _, s := range rep.Scenarios {
		if s.Ops != 4 {
			t.Errorf("%s: %d ops, want --count 4", s.Name, s.Ops)
		}
		if s.ServerCPUSeconds != nil {
			t.Errorf("%s: server CPU reported without --pid", s.Name)
		}
		hasCeiling := s.Argon2idCeiling != nil && *s.Argon2idCeiling > 0 && s.PercentOfCeiling != nil && *s.PercentOfCeiling > 0
		if hasCeiling != (s.Name == "password") {
			t.Errorf("%s: argon2id ceiling %v, percent %v; want them for password only", s.Name, s.Argon2idCeiling, s.PercentOfCeiling)
		}
	}
}

func TestBenchCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error; "" for none
	}{
		{"the defaults are valid", nil, ""},
		{"a remote URL is refused", []string{"--url", "http://id.example.com", "--data", "x"}, "not a loopback address"},
		{"a remote IP is refused", []string{"--url", "http://192.0.2.1:8080", "--data", "x"}, "not a loopback address"},
		{"a remote URL may be allowed", []string{"--url", "https://id.example.com", "--data", "x", "--allow-remote"}, ""},
		{"localhost and ::1 are loopback", []string{"--url", "http://[::1]:8080", "--scenario", "jwks"}, ""},
		{"a URL with a path is refused", []string{"--url", "http://127.0.0.1:8080/oauth", "--data", "x"}, "without a path"},
		{"provisioning needs the data folder", []string{"--url", "http://localhost:8080"}, "--url needs --data"},
		{"--data alone is refused", []string{"--data", "x"}, "only for --url"},
		{"unknown scenarios are named", []string{"--scenario", "jwks,nope"}, `unknown scenario "nope"`},
		{"no duration and no count", []string{"--duration", "0"}, "--duration 0s"},
		{"no workers", []string{"--workers", "0"}, "--workers 0"},
		{"a loopback database is accepted", []string{"--database", "postgres://bench@127.0.0.1:5432/bench?sslmode=disable"}, ""},
		{"a database on a Unix socket is local", []string{"--database", "postgres:///bench?host=/var/run/postgresql"}, ""},
		{"a remote database is refused", []string{"--database", "postgres://bench@db.example.com/bench"}, `"db.example.com" is not a loopback address`},
		{"every host of a multi-host URL is checked", []string{"--database", "postgres://bench@127.0.0.1:5432,192.0.2.7:5432/bench"}, `"192.0.2.7" is not a loopback address`},
		{"a remote database may be allowed", []string{"--database", "postgres://bench@db.example.com/bench", "--allow-remote"}, ""},
		{"only PostgreSQL is a --database", []string{"--database", "mysql://127.0.0.1/bench"}, "want a postgres:// URL"},
		{"a --database with --url needs its data folder", []string{"--url", "http://127.0.0.1:8080", "--scenario", "jwks", "--database", "postgres://127.0.0.1/bench"}, "needs --data too"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseBench(tc.args)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("parseBench(%q) = %v", tc.args, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("parseBench(%q) = %v, want an error about %q", tc.args, err, tc.want)
			}
		})
	}
	o, err := parseBench([]string{"--scenario", "password,jwks,jwks"})
	if err != nil || strings.Join(o.scenarios, ",") != "jwks,password" {
		t.Errorf("scenarios %v (%v), want jwks,password: the documented order, once each", o.scenarios, err)
	}
}

func TestBenchTableNamesEveryFigure(t *testing.T) {
	one, rss, ceiling, pct := 1.5, int64(64<<20), 80.0, 75.0
	rep := benchReport{Workers: 4, DurationSeconds: 5, Scenarios: []benchResult{{
		Name: "refresh_es256", Operation: "refresh", Ops: 3000, OpsPerSecond: 600, P50ms: 3, P95ms: 9, P99ms: 20,
		ServerCPUSeconds: &one, OpsPerServerCPUSecond: &one, PeakRSSBytes: &rss,
	}, {
		Name: "password", Operation: "sign-in", Ops: 300, OpsPerSecond: 60, Argon2idCeiling: &ceiling, PercentOfCeiling: &pct,
	}}}
	rep.Machine.GOMAXPROCS = 2
	var buf bytes.Buffer
	rep.table(io.Writer(&buf))
	for _, want := range []string{"refresh_es256", "600.0", "3.00ms", "20.0ms", "64.0 MiB", "ops/CPU-s", "4 workers; 5s per scenario",
		"password: 60.0 sign-ins/s is 75% of the argon2id ceiling (80.0 hashes/s on 2 CPUs"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}
