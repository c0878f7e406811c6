// Package bench is `keystep bench` (issue 9). It measures a Keystep server
// so operators can size a deployment: it provisions clients and users,
// drives each scenario with N concurrent workers and reports rate,
// latency, errors, the server's CPU seconds (rate per server CPU-second is
// the fair per-core figure), peak RSS and database growth.
//
// By default it starts `keystep serve` as a child process on a fresh data
// folder on loopback, so the numbers are the server's alone and nothing of
// a real deployment is touched. --url targets a running server instead;
// provisioning then needs that server's --data folder.
//
// cmd/keystep parses the command line into [Options] and calls [Run].
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keystep/keystep/storage"
)

// scenarios are the scenarios in the order they run: reads first, then the writers, so
// every scenario sees the rows the ones before it left, as a server would.
var scenarios = []struct{ name, op string }{
	{"jwks", "GET jwks_uri"},
	{"client_credentials", "client_credentials grant (ES256 JWT access token)"},
	{"refresh_rs256", "refresh grant with rotation, RS256 ID token"},
	{"refresh_es256", "refresh grant with rotation, ES256 ID token"},
	{"refresh_dpop", "refresh_es256 with a DPoP proof (ES256) per request, tokens bound to the worker's key"},
	{"userinfo", "GET userinfo with a JWT access token"},
	{"introspection", "RFC 7662 introspection of a JWT access token"},
	{"code_sso", "authorize → login (SSO session) → callback → token, RS256 (4 requests)"},
	{"stepup", "sfa session asks mfa: authorize → TOTP page → POST code → callback → token, RS256 (5 requests)"},
	{"password", "authorize → page → POST password (argon2id, production cost) → callback → token, RS256 (5 requests)"},
}

// ScenarioNames are the scenarios, in the order they run.
func ScenarioNames() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

// Options are a run's settings, from the command line.
type Options struct {
	Workers     int
	Duration    time.Duration
	Count       int      // run each scenario for this many operations instead of Duration
	Scenarios   []string // run in the documented order whatever order they are named in, each once
	URL         string   // "" starts a child server
	AllowRemote bool
	Data        string // with URL: the server's data folder, for provisioning
	Database    string // postgres://… instead of SQLite in the data folder
	PID         int    // with URL: the server's process, for CPU and RSS
	Pprof       string // the child server's profiler address
	Keep        bool   // keep the child's data folder
}

// DefaultWorkers is the default of Options.Workers: issue 9's budgets are
// for 8 workers on 2 CPUs.
func DefaultWorkers() int { return max(8, 4*runtime.GOMAXPROCS(0)) }

// Validate reports every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	if o.Workers < 1 || o.Workers > 10000 {
		errs = append(errs, fmt.Errorf("--workers %d: want 1 to 10000", o.Workers))
	}
	if o.Count < 0 {
		errs = append(errs, fmt.Errorf("--count %d is negative", o.Count))
	}
	if o.Count == 0 && o.Duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration %s: want a positive duration (or --count)", o.Duration))
	}
	known := ScenarioNames()
	for _, s := range o.Scenarios {
		if !slices.Contains(known, s) {
			errs = append(errs, fmt.Errorf("--scenario: unknown scenario %q (want %s)", s, strings.Join(known, ", ")))
		}
	}
	if o.Database != "" {
		if err := checkDatabase(o.Database, o.AllowRemote); err != nil {
			errs = append(errs, err)
		}
	}
	if o.URL == "" {
		if o.Data != "" {
			errs = append(errs, errors.New("--data is only for --url: without it bench starts a server on a fresh folder"))
		}
		if o.PID != 0 {
			errs = append(errs, errors.New("--pid is only for --url"))
		}
	} else {
		if err := checkURL(o.URL, o.AllowRemote); err != nil {
			errs = append(errs, err)
		}
		if o.Data == "" && slices.ContainsFunc(o.Scenarios, func(s string) bool { return s != "jwks" }) {
			errs = append(errs, errors.New("--url needs --data (the server's data folder) to create the bench users and clients; only --scenario jwks runs without"))
		}
		if o.Database != "" && o.Data == "" {
			errs = append(errs, errors.New("--database with --url needs --data too: its master key seals the bench users' authenticator apps"))
		}
		if o.Keep {
			errs = append(errs, errors.New("--keep is only for the child server"))
		}
	}
	return errors.Join(errs...)
}

// inOrder is names in the order the scenarios run, each once.
func inOrder(names []string) []string {
	var out []string
	for _, s := range ScenarioNames() {
		if slices.Contains(names, s) {
			out = append(out, s)
		}
	}
	return out
}

// checkURL refuses a target that is not on this machine unless
// allowed: a benchmark is a load test, and pointed at someone else's
// server by mistake it is an attack.
func checkURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want http(s)://HOST[:PORT]", raw)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--url %q: want the issuer's origin, without a path or query", raw)
	}
	if allowRemote {
		return nil
	}
	if !isLoopbackTarget(u.Hostname()) {
		return fmt.Errorf("--url %q is not a loopback address; pass --allow-remote to load-test another machine", raw)
	}
	return nil
}

// checkDatabase applies --url's rule to --database: bench fills the
// database with users, tokens and audit rows as fast as it can, which
// pointed at a shared server by mistake is an outage. Every host pgx would
// try is checked, fallbacks included; a Unix socket is on this machine.
func checkDatabase(dsn string, allowRemote bool) error {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return errors.New("--database: want a postgres:// URL")
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		// Not err: its text may quote the password.
		return errors.New("--database: the connection URL does not parse")
	}
	if allowRemote {
		return nil
	}
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if !strings.HasPrefix(h, "/") && !isLoopbackTarget(h) {
			return fmt.Errorf("--database host %q is not a loopback address; pass --allow-remote to load-test a database on another machine", h)
		}
	}
	return nil
}

// isLoopbackTarget accepts localhost and loopback IP literals. Other names
// are refused without a DNS lookup: what a name resolves to can change.
func isLoopbackTarget(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Config is a run: its options, and what only cmd provides.
type Config struct {
	Options
	// Open opens a data folder as keystep's commands do: the database in
	// it (database when not ""), and its master key, made when missing.
	Open func(ctx context.Context, data, database string) (storage.Store, []byte, error)
	// Keystep is the command that runs `keystep ARGS`: bench starts
	// `keystep serve` as its child server.
	Keystep func(args ...string) (*exec.Cmd, error)
	// Print prints the report, before the child server stops.
	Print func(Report) error
	// Progress gets a line per scenario as it runs, and what bench has
	// to say about its child server.
	Progress io.Writer
}

// Run provisions, runs c's scenarios and prints their report. It fails
// when an operation failed; an interrupted run (ctx done) prints the
// scenarios that ran and returns ctx.Err().
func Run(ctx context.Context, c Config) error {
	c.Scenarios = inOrder(c.Scenarios)
	run := &runner{opts: c.Options, stderr: c.Progress, open: c.Open, keystep: c.Keystep}
	defer run.close()
	if err := run.start(ctx); err != nil {
		return err
	}
	results, err := run.all(ctx)
	if err != nil {
		return err
	}
	if err := c.Print(run.report(results)); err != nil {
		return err
	}
	var failed []string
	for _, r := range results {
		if r.Errors > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d errors, first: %s", r.Name, r.Errors, r.FirstError))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("bench: some operations failed:\n  %s", strings.Join(failed, "\n  "))
	}
	return ctx.Err()
}

// childServer is `keystep serve` in a child process.
type childServer struct {
	cmd    *exec.Cmd
	url    string
	stderr *tailBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// childConfig is how the child server is started.
type childConfig struct {
	keystep  func(args ...string) (*exec.Cmd, error) // runs keystep (Config.Keystep)
	addr     string                                  // listen address; "" is 127.0.0.1 on a free port
	data     string                                  // data folder: the master key, and the SQLite database without database
	config   string                                  // config file
	database string                                  // postgres://…; "" for SQLite in data
	pprof    string                                  // the child's --pprof address, if any
}

// startChild starts the server and waits until it serves.
func startChild(ctx context.Context, cc childConfig) (*childServer, error) {
	if cc.addr == "" {
		cc.addr = "127.0.0.1:0"
	}
	args := []string{"serve", "--addr", cc.addr, "--data", cc.data, "--config", cc.config, "--log-level", "warn"}
	if cc.pprof != "" {
		args = append(args, "--pprof", cc.pprof)
	}
	cmd, err := cc.keystep(args...)
	if err != nil {
		return nil, err
	}
	// The operator's KEYSTEP_* settings are for their server, not this one:
	// another issuer or master key would break the flows and provisioning.
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "KEYSTEP_") })
	if cc.database != "" {
		// Serve's --database, in its environment rather than on its command
		// line, where any user of the machine could read a password in it.
		cmd.Env = append(cmd.Env, "KEYSTEP_DATABASE="+cc.database)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &childServer{cmd: cmd, stderr: &tailBuffer{max: 64 << 10}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start server: %w", err)
	}
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Keystep is serving "); ok {
				serving <- strings.TrimSpace(u)
				break
			}
		}
		// Keep draining, so the child never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { c.err = cmd.Wait(); close(c.exited) }()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	select {
	case c.url = <-serving:
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("bench: server exited before serving (%v):\n%s", c.err, c.stderr)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	case <-timeout.C:
		c.stop()
		return nil, fmt.Errorf("bench: server did not start within 60 s:\n%s", c.stderr)
	}
}

// stop asks the server to shut down (SIGTERM, as serve expects) and waits;
// one that does not end in 15 s is killed.
func (c *childServer) stop() error {
	select {
	case <-c.exited:
		return c.err
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return errors.New("bench: server did not stop within 15 s; killed")
	}
	return c.err
}

// tailBuffer keeps the last max bytes written to it: the child's log, for
// the error message when it dies.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// serverConfig is the child server's config file. All bench traffic comes
// from 127.0.0.1; trusting it as a proxy lets each bench user send its own
// address (X-Forwarded-For, from 198.18.0.0/15, RFC 2544's benchmarking
// range), so the default risk rules see ordinary traffic rather than one
// address trying thousands of usernames (credential_stuffing).
// The endpoint rate limits are off: the bench measures capacity, and its
// workers would otherwise be throttled as floods.
const serverConfig = `{"trusted_proxies": ["127.0.0.1/32", "::1/128"], "rate_limits": {"token": {"per_second": 0}, "authorize": {"per_second": 0}}}` + "\n"

func writeServerConfig(dir string) (string, error) {
	path := filepath.Join(dir, "bench-config.json")
	if err := os.WriteFile(path, []byte(serverConfig), 0o600); err != nil {
		return "", fmt.Errorf("bench: write config: %w", err)
	}
	return path, nil
}
