package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage/sqlite"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keystep-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keystepBin.path = filepath.Join(dir, "keystep")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// keystepBin is keystep built from this module, once per test binary, for
// the tests that need a real `keystep serve` process (bench's child
// server) or the whole command line.
var keystepBin struct {
	once sync.Once
	path string
	err  error
}

// keystepCommand builds keystep if need be and returns what Config.Keystep
// is in the command: a command that runs it.
func keystepCommand(t *testing.T) func(args ...string) (*exec.Cmd, error) {
	t.Helper()
	keystepBin.once.Do(func() {
		out, err := exec.Command("go", "build", "-o", keystepBin.path, "github.com/keystep/keystep/cmd/keystep").CombinedOutput()
		if err != nil {
			keystepBin.err = fmt.Errorf("go build ./cmd/keystep: %v\n%s", err, out)
		}
	})
	if keystepBin.err != nil {
		t.Fatal(keystepBin.err)
	}
	return func(args ...string) (*exec.Cmd, error) { return exec.Command(keystepBin.path, args...), nil }
}

// result is what one run of keystep left behind.
type result struct {
	code           int
	stdout, stderr string
}

// keystep runs the keystep command with args, in this process's
// environment.
func keystep(t *testing.T, args ...string) result {
	t.Helper()
	cmd, _ := keystepCommand(t)(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("keystep %s: %v", strings.Join(args, " "), err)
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

// wantExit fails the test unless r exited with code and stderr names every
// one of want.
func wantExit(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
		}
	}
}

// reportOf runs keystep bench with args and decodes its --json report.
func reportOf(t *testing.T, args ...string) Report {
	t.Helper()
	r := keystep(t, append([]string{"bench", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("keystep bench %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	var rep Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench --json output is not JSON: %v\n%s", err, r.stdout)
	}
	return rep
}

func wantScenarios(t *testing.T, rep Report, names ...string) {
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
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where bench makes the server's data folder

	rep := reportOf(t, "--duration", "300ms", "--workers", "2", "--scenario", "client_credentials,jwks")
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
	// The issuer is the listener's address, known before the server starts,
	// so the handler is in place before the first request: bench drives it
	// from this process, and the race detector sees no order through TCP.
	ts := httptest.NewUnstartedServer(nil)
	t.Cleanup(ts.Close)
	issuer := "http://" + ts.Listener.Addr().String()
	srv, err := idp.NewServer(t.Context(), idp.Config{
		Issuer: issuer, Store: st, MasterKey: key, Policy: stepup.DefaultPolicy(),
		Logger:         slog.New(slog.DiscardHandler),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		RateLimits:     map[string]idp.RateLimit{}, // capacity, not flood protection
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()

	rep := reportOf(t, "--url", ts.URL, "--data", data, "--count", "4", "--workers", "2")
	wantScenarios(t, rep, ScenarioNames()...)
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

func TestScenariosRunInTheDocumentedOrderOnceEach(t *testing.T) {
	got := strings.Join(inOrder([]string{"password", "jwks", "jwks"}), ",")
	if got != "jwks,password" {
		t.Errorf("scenarios %s, want jwks,password: the documented order, once each", got)
	}
}

func TestBenchTableNamesEveryFigure(t *testing.T) {
	one, rss, ceiling, pct := 1.5, int64(64<<20), 80.0, 75.0
	rep := Report{Workers: 4, DurationSeconds: 5, Scenarios: []Result{{
		Name: "refresh_es256", Operation: "refresh", Ops: 3000, OpsPerSecond: 600, P50ms: 3, P95ms: 9, P99ms: 20,
		ServerCPUSeconds: &one, OpsPerServerCPUSecond: &one, PeakRSSBytes: &rss,
	}, {
		Name: "password", Operation: "sign-in", Ops: 300, OpsPerSecond: 60, Argon2idCeiling: &ceiling, PercentOfCeiling: &pct,
	}}}
	rep.Machine.GOMAXPROCS = 2
	var buf bytes.Buffer
	rep.Table(io.Writer(&buf))
	for _, want := range []string{"refresh_es256", "600.0", "3.00ms", "20.0ms", "64.0 MiB", "ops/CPU-s", "4 workers; 5s per scenario",
		"password: 60.0 sign-ins/s is 75% of the argon2id ceiling (80.0 hashes/s on 2 CPUs"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}
