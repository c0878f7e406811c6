// Command keystep runs the Keystep OpenID provider and administers it.
//
//	keystep [serve] [--addr :8080] [--issuer URL] [--data DIR] [--config FILE] [--dev]
//	keystep users create|list|show|disable|enable|unlock|reset-factors|signout|confirm-passkey …
//	keystep clients create|list|show|update|rotate-secret|delete …
//	keystep apply -f FILE | export
//	keystep policy [check] | history | show [N] | rollback N --reason R | preview -f FILE
//	keystep keys rotate|list
//	keystep audit verify|checkpoint|export
//	keystep backup --to FILE | restore --from FILE | systemd-unit
//	keystep migrate --to postgres://…
//
// Every flag has a KEYSTEP_* environment variable (KEYSTEP_ADDR, …).
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/postgres"
	"github.com/keystep/keystep/storage/sqlite"
)

// clock is the commands' time: the wall clock in UTC. Tests set a fixed
// one (fixClock), so what a command judges by time (a live session, a
// cooling-off, a sign-in history) does not depend on when they run.
var clock = func() time.Time { return time.Now().UTC() }

// newServer builds the server serve runs; tests replace it to read the
// configuration the flags and the config file made.
var newServer = idp.NewServer

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a problem with the command line: run prints the usage and
// exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError is an error with its own exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stdout, stderr)
	case "users":
		err = users(ctx, args, stdin, stdout)
	case "clients":
		err = clients(ctx, args, stdout)
	case "keys":
		err = keys(ctx, args, stdout)
	case "audit":
		err = audit(ctx, args, stdout)
	case "explain":
		err = explain(ctx, args, stdout)
	case "ssf":
		err = ssf(ctx, args, stdout)
	case "apply":
		err = apply(ctx, args, stdout)
	case "export":
		err = export(ctx, args, stdout)
	case "policy":
		err = policyCmd(ctx, args, stdout)
	case "backup":
		err = backup(ctx, args, stdout)
	case "restore":
		err = restore(ctx, args, stdout)
	case "migrate":
		err = migrateCmd(ctx, args, stdout)
	case "systemd-unit":
		err = systemdUnit(args, stdout)
	case "bench":
		err = benchCmd(ctx, args, stdout, stderr)
	case "simulate":
		err = simulate(ctx, args, stdout, stderr)
	case "demo":
		err = demo(ctx, args, stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintln(stderr, "keystep:", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprint(stderr, "\n"+usage)
		return 2
	}
	if ee := (exitError{}); errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

const usage = `Usage:
  keystep [serve] [--addr :8080] [--issuer http://localhost:8080] [--data ./keystep-data]
                  [--master-key-file FILE] [--config FILE] [--dev] [--log-level info]
                  [--tls-cert FILE --tls-key FILE] (https; reloaded on SIGHUP and file change)
                  [--ops-addr 127.0.0.1:9090|off] (/metrics, /healthz, /readyz) [--public-metrics]
                  [--pprof on] (Go's profiler on the loopback --ops-addr)
                  [--audit-log FILE|-] (every audit event as a JSON line; reopened on SIGHUP)
                  [--otlp-endpoint http://collector:4318] (OpenTelemetry traces over OTLP/HTTP; off by default)
                  [--require-par] (every client must push its authorization requests, RFC 9126)
                  [--outbox-allow-private] [--outbox-lease 1m] (back-channel logout delivery)
                  [--recovery-cooling-off 72h] (before a request to replace lost factors can be used)
                  [--policy-read-only] (the --config file's policy decides; nothing is stored,
                  the console and the API refuse edits; otherwise --config seeds the stored policy)
                  [--smtp-host H [--smtp-port P] [--smtp-tls starttls|implicit|none]
                   [--smtp-user U --smtp-password-file F] | --mail-dir DIR] [--mail-from ADDR]
  keystep users create --username NAME [--email E [--email-verified]] --password-stdin [--admin]
  keystep users list | show NAME | disable NAME | enable NAME | unlock NAME | signout NAME
  keystep users reset-factors NAME --reason TEXT
  keystep users confirm-passkey NAME --credential ID [--reason TEXT]
                  (the ID is in users show; the key counts as phishing-resistant at once)
  keystep clients create --id ID --redirect-uri URI [--redirect-uri URI …] [--name N]
                  [--public] [--native] [--min-acr ACR] [--strict] [--first-party]
                  [--id-token-alg RS256|ES256|EdDSA] [--post-logout-redirect-uri URI …]
                  [--grant authorization_code,refresh_token,client_credentials]
                  [--rate-limit N] (token-endpoint requests/s once authenticated; 0: the server's default)
                  [--config FILE] (--min-acr is checked against its levels)
  keystep clients list | show ID | rotate-secret ID | delete ID
  keystep clients update ID [any create flag; only the flags given change]
                  [--auth-method M] [--access-token-format jwt|opaque] [--require-pkce]
                  [--refresh-reuse-interval 10s] (0s: a rotated refresh token is never retried)
                  [--require-par] [--dpop] [--profile fapi2|none] (fapi2 implies PAR, DPoP, PKCE)
                  [--backchannel-logout-uri URL] [--backchannel-logout-session-required]
  keystep keys rotate [--activate-in DURATION] | list
  keystep ssf receivers add --issuer URL (--jwks-uri URL | --jwks-file FILE) --audience AUD
  keystep ssf receivers list | delete ISSUER
                  (transmitters whose Shared Signals Keystep accepts at /ssf/receive)
  keystep audit verify [--checkpoint CHECKPOINT|FILE] (exit 1: log broken or cut; 3: checkpoint refused)
  keystep audit verify --transaction SEQ [--issuer URL] (a stepup.transaction row; exit 1: fails; 4: a code approval, not verifiable)
  keystep audit checkpoint   (the head as a signed checkpoint, to keep elsewhere)
  keystep audit export [--since RFC3339] [--until RFC3339] [--user NAME]
                  [--client ID] [--event TYPE] [--outcome success|failure|denied|challenged]
  keystep apply -f keystep.yaml [--prune] [--dry-run] [--reason TEXT] [--policy-read-only]
                  (clients as in the file, and its policy as a new version, idempotently;
                  the whole file is checked first; --dry-run prints the changes and the policy diff)
  keystep backup --to FILE   (a consistent copy of the SQLite database, while serving)
  keystep restore --from FILE [--force] (the master key must fit; never over a database in use)
  keystep migrate --to postgres://… (copy the SQLite database into an empty PostgreSQL one; server stopped)
  keystep systemd-unit [--binary PATH] [--issuer URL] [--addr ADDR] [--master-key FILE] [--tls]
  keystep export [--config FILE] [-o FILE] [--format yaml|json]
                  (the active policy version, else the --config file's, and the clients)
  keystep policy [check] [--config FILE]   (the policy in force, and checks against the clients)
  keystep policy history [--limit 50]   (the stored versions, newest first)
  keystep policy show [N] [--config FILE]   (version N's policy as YAML; default: the active one)
  keystep policy rollback N --reason TEXT   (version N's policy again, as a new version)
  keystep policy preview -f NEW.yaml [--days 30] [--current FILE] [--config FILE]
                  (the recorded sign-ins of the last days, decided under the current and the proposed policy)
  keystep explain --user NAME --client ID [--acr ACR] [--ip IP] [--device new|known] [--scope S] [--config FILE]
  keystep bench [--workers N] [--duration 10s | --count N] [--scenario a,b,…] [--json]
                  [--url http://127.0.0.1:8080 --data DIR [--pid PID]] [--database postgres://…]
                  [--allow-remote] [--keep] [--pprof 127.0.0.1:6060]
  keystep simulate [--seed N] [--users N] [--days N] [--stuffing-pairs N] [--config FILE] [--compare FILE] [--json]
                  (a seeded population of users and attackers against Keystep on loopback;
                  --compare replays its sign-ins under a proposed policy, as policy preview does)
  keystep demo [--addr localhost:8080] [--rp-addr localhost:9090] [--data DIR]
                  (Keystep plus the "Acme Payroll" step-up demo app; temporary data by default)
Every command takes --data DIR (KEYSTEP_DATA) and --json for machine-readable output.
`

// common are the flags every command takes.
type common struct {
	data, masterKeyFile string
	database            string
	json                bool
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("KEYSTEP_" + name); ok {
		return v
	}
	return def
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", env("DATA", "./keystep-data"), "data folder (database, master key)")
	fs.StringVar(&c.masterKeyFile, "master-key-file", env("MASTER_KEY_FILE", ""), "master key file (default DATA/master.key, generated on first start)")
	fs.StringVar(&c.database, "database", env("DATABASE", ""), "postgres://… to share state between instances (default: SQLite in the data folder); put the password in PGPASSFILE, not here")
	fs.BoolVar(&c.json, "json", false, "machine-readable JSON output")
}

// open opens the data folder: the database and the master key.
func (c *common) open(ctx context.Context) (storage.Store, []byte, error) {
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data folder: %w", err)
	}
	db := filepath.Join(c.data, "keystep.db")
	key, err := masterKey(c.masterKeyFile, filepath.Join(c.data, "master.key"), db)
	if err != nil {
		return nil, nil, err
	}
	var st storage.Store
	switch {
	case c.database == "":
		st, err = sqlite.Open(ctx, db)
	case strings.HasPrefix(c.database, "postgres://"), strings.HasPrefix(c.database, "postgresql://"):
		st, err = postgres.Open(ctx, c.database)
	default:
		return nil, nil, usageError{"--database: want a postgres:// URL (or nothing for SQLite)"}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("database: %w", err)
	}
	return st, key, nil
}

// masterKey reads the key file, or generates the default one (mode 0600) in
// a new data folder. An explicit --master-key-file is never generated: a
// missing one is an error. Neither is the default one next to an existing
// database: a new key cannot open what the lost one sealed.
func masterKey(explicit, def, db string) ([]byte, error) {
	path := explicit
	if path == "" {
		path = def
		if err := generateMasterKey(path, db); err != nil {
			return nil, err
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != factor.MasterKeySize {
		return nil, fmt.Errorf("master key %s: want %d bytes as %d hex digits", path, factor.MasterKeySize, 2*factor.MasterKeySize)
	}
	return key, nil
}

// generateMasterKey writes a new key to path unless it exists. O_EXCL makes
// a concurrent first start use the winner's key instead of overwriting it.
func generateMasterKey(path, db string) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil // present (or unreadable: ReadFile says why)
	}
	if _, err := os.Stat(db); err == nil {
		return fmt.Errorf("master key %s is missing but the database %s exists: restore the key file or pass --master-key-file", path, db)
	}
	k, err := factor.NewMasterKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write master key: %w", err)
	}
	_, werr := fmt.Fprintf(f, "%x\n", k)
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(path)
		return fmt.Errorf("write master key %s: %w", path, err)
	}
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints the usage
	var c common
	c.register(fs)
	addr := fs.String("addr", env("ADDR", "localhost:8080"), "listen address")
	issuer := fs.String("issuer", env("ISSUER", ""), "issuer URL (default http://ADDR)")
	configFile := fs.String("config", env("CONFIG", ""), "config file (levels, scope minimums, trusted proxies)")
	dev := fs.Bool("dev", env("DEV", "") != "", "development: read templates from ./templates on every request")
	pseudoLocales := fs.Bool("pseudo-locales", env("PSEUDO_LOCALES", "") != "", "offer the pseudo-locales en-XA (accented, longer) and ar-XB (right to left) as ui_locales, to test the pages' layout")
	logLevel := fs.String("log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error")
	dpopNonce := fs.Bool("dpop-nonce", env("DPOP_NONCE", "true") != "false", "require a server nonce in DPoP proofs at the token endpoint (RFC 9449 §8)")
	pprofFlag := fs.String("pprof", env("PPROF", ""), "on: serve Go's profiler (/debug/pprof/) on the loopback --ops-addr (a loopback HOST:PORT, its own listener, is deprecated)")
	opsAddr := fs.String("ops-addr", env("OPS_ADDR", defaultOpsAddr), "serve /metrics, /healthz and /readyz on this address (off: nowhere)")
	publicMetrics := fs.Bool("public-metrics", env("PUBLIC_METRICS", "") != "", "serve /metrics, /healthz and /readyz on the public listener too")
	tlsCert := fs.String("tls-cert", env("TLS_CERT", ""), "serve https with this PEM certificate (chain), reloaded on SIGHUP and when the file changes")
	tlsKey := fs.String("tls-key", env("TLS_KEY", ""), "the PEM private key of --tls-cert")
	auditLogPath := fs.String("audit-log", env("AUDIT_LOG", ""), "append every audit event as a JSON line to this file (- for stdout); reopened on SIGHUP")
	otlp := fs.String("otlp-endpoint", env("OTLP_ENDPOINT", ""), "export OpenTelemetry traces to this OTLP/HTTP collector URL (a URL without a path gets /v1/traces); OTEL_EXPORTER_OTLP_* set headers, timeout and TLS (off: no tracing)")
	requirePAR := fs.Bool("require-par", env("REQUIRE_PAR", "") != "", "accept only pushed authorization requests (RFC 9126) from every client; the config file's require_pushed_authorization_requests says the same")
	outboxPrivate := fs.Bool("outbox-allow-private", env("OUTBOX_ALLOW_PRIVATE", "") != "", "let back-channel logouts go to private, loopback and link-local addresses (off: SSRF guard)")
	lease, err := time.ParseDuration(env("OUTBOX_LEASE", "1m"))
	if err != nil {
		return usageError{fmt.Sprintf("KEYSTEP_OUTBOX_LEASE: %v", err)}
	}
	outboxLease := fs.Duration("outbox-lease", lease, "how long a notification being delivered is one instance's before another may retry it (after a crash); longer than 5s")
	coolingOff, err := time.ParseDuration(env("RECOVERY_COOLING_OFF", login.DefaultRecoveryCoolingOff.String()))
	if err != nil {
		return usageError{fmt.Sprintf("KEYSTEP_RECOVERY_COOLING_OFF: %v", err)}
	}
	recoveryCoolingOff := fs.Duration("recovery-cooling-off", coolingOff, "how long a request to replace lost second factors waits before it can be used, unless an admin approves it sooner")
	var readOnly bool
	registerReadOnly(fs, &readOnly)
	var mf mailFlags
	mf.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{"serve: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0))}
	}
	ops, err := parseOps(*opsAddr, *pprofFlag, *publicMetrics)
	if err != nil {
		return err
	}
	if err := tlsFlags(*tlsCert, *tlsKey, *issuer); err != nil {
		return err
	}
	if *otlp != "" {
		if *otlp, err = otlpEndpoint(*otlp); err != nil {
			return err
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level: %v", err)}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log) // the OP library logs to the default logger
	set, err := loadConfig(*configFile)
	if err != nil {
		return err
	}
	set.requirePAR = set.requirePAR || *requirePAR
	set.policyReadOnly = readOnly
	sender, err := mf.sender()
	if err != nil {
		return usageError{"serve: " + err.Error()}
	}
	// Listen before building the server: a taken port fails before anything
	// is printed, and --addr HOST:0 gets its real port into the issuer.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	if *issuer == "" {
		host, port, err := net.SplitHostPort(*addr)
		if err != nil {
			return usageError{fmt.Sprintf("--addr %q: %v", *addr, err)}
		}
		if host == "" {
			host = "localhost"
		}
		if port == "0" {
			port = fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
		}
		scheme := "http://"
		if *tlsCert != "" {
			scheme = "https://"
		}
		*issuer = scheme + net.JoinHostPort(host, port)
	}
	var certs *certReloader
	if *tlsCert != "" {
		if certs, err = newCertReloader(*tlsCert, *tlsKey, log); err != nil {
			return err
		}
	}
	var opsLn net.Listener
	if ops.addr != "" {
		opsLn, err = net.Listen("tcp", ops.addr)
		_, named := os.LookupEnv("KEYSTEP_OPS_ADDR")
		fs.Visit(func(f *flag.Flag) { named = named || f.Name == "ops-addr" })
		switch {
		case err != nil && !named && ops.addr == defaultOpsAddr && !ops.pprof:
			// The default port is taken (by Prometheus, say): the first
			// `go run ./cmd/keystep` still starts, without the listener.
			log.Warn("the operations listener is off: its default address is taken; set --ops-addr", "addr", ops.addr, "err", err)
			opsLn, ops.addr = nil, ""
		case err != nil:
			return fmt.Errorf("--ops-addr: %w", err)
		default:
			defer opsLn.Close()
		}
	}
	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	tuneGC()
	cfg := set.serverConfig(*issuer, st, key, log)
	cfg.DPoPNonceNotRequired = !*dpopNonce
	cfg.Outbox = idp.OutboxConfig{AllowPrivate: *outboxPrivate, Lease: *outboxLease}
	cfg.RecoveryCoolingOff = *recoveryCoolingOff
	cfg.PseudoLocales = *pseudoLocales
	cfg.Mail = sender
	if *otlp != "" {
		tp, shutdown, err := newTracing(ctx, *otlp, log)
		if err != nil {
			return err
		}
		// Deferred before the store closes: spans of the last requests
		// and statements are flushed first.
		defer shutdown()
		cfg.TracerProvider = tp
		log.Info("traces are exported", "endpoint", *otlp)
	}
	if *dev {
		cfg.TemplatesDir = "templates"
	}
	var alog *auditOut
	if *auditLogPath != "" {
		if alog, err = openAuditOut(ctx, *auditLogPath, stdout, st, log); err != nil {
			return err
		}
		defer alog.Close()
		cfg.AuditSink = alog.event
	}
	srv, err := newServer(ctx, cfg)
	if err != nil {
		return err
	}
	// The --config file seeds the stored policy, and stores it again when
	// it changed; read-only, it decides alone and nothing is stored.
	if *configFile != "" && !readOnly && hasPolicy(set.file.Document) {
		adm := newAdmin(st, key, set)
		adm.Policies = srv.Policies()
		if err := seedPolicy(ctx, adm, *configFile, set.file.Document, clock(), log); err != nil {
			return err
		}
	}
	if link, err := admin.NewSetupLink(ctx, st, *issuer, clock()); err != nil {
		return err
	} else if link != "" {
		fmt.Fprintf(stdout, "\nNo users yet. Create the first administrator here (valid for 24 h, works once):\n\n  %s\n\n", link)
	}
	// The store closes only after Maintain has returned.
	mctx, stopMaintain := context.WithCancel(ctx)
	maintained := make(chan struct{})
	go func() { defer close(maintained); srv.Maintain(mctx, 10*time.Minute) }()
	defer func() { stopMaintain(); <-maintained }()
	// The outbox worker delivers back-channel logouts; like Maintain it
	// stops before the store closes.
	delivered := make(chan struct{})
	go func() { defer close(delivered); srv.DeliverOutbox(mctx) }()
	defer func() { stopMaintain(); <-delivered }()
	// Policy versions activated on any instance decide here within
	// seconds; like the others it stops before the store closes.
	followed := make(chan struct{})
	go func() { defer close(followed); srv.FollowPolicy(mctx, 0) }()
	defer func() { stopMaintain(); <-followed }()

	var public http.Handler = srv
	if ops.public {
		public = publicWithOps(srv)
	}
	hs := &http.Server{
		Handler:           public,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
	return serveListeners(ctx, listeners{public: hs, ln: ln, certs: certs, opsLn: opsLn, ops: ops, srv: srv, audit: alog, issuer: *issuer}, log, stdout)
}

// tuneGC sets the collector for a server whose live heap is small (a few MB)
// and whose garbage is almost all per request. The default GOGC=100 then
// collects every few MB allocated, about a seventh of a token grant's CPU
// time; GOGC=400 collects a quarter as often (issue 9). The soft memory limit
// keeps the bigger heap in check: the password hasher's buffers (at most
// MaxMemory at once) plus 128 MiB. GOGC and GOMEMLIMIT in the environment win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(128<<20 + factor.NewPasswordHasher().MaxMemory())
	}
}

// pprofMux serves Go's profiler, for `go tool pprof
// http://127.0.0.1:6060/debug/pprof/profile?seconds=10` against a running
// server.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
