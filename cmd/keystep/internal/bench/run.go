package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// runner is one `keystep bench`: the data folder, the server and the
// provisioned users and clients.
type runner struct {
	opts    Options
	stderr  io.Writer
	open    func(ctx context.Context, data, database string) (storage.Store, []byte, error) // Config.Open
	keystep func(args ...string) (*exec.Cmd, error)                                         // Config.Keystep

	dir     string // data folder
	tempDir bool   // dir is ours to delete
	store   storage.Store
	sealer  *factor.Sealer
	audit   storage.AuditKey // keys the audit chain
	child   *childServer
	pid     int       // server process; 0 when unknown
	pg      *pgx.Conn // with --database: measures the database's size
	pgLocal bool      // and, on this machine, its processes' CPU
	target  *target
	runID   string

	clients             map[string]client // rs256, es256, dpop, service
	password            string            // every bench user's
	sso, pw             []*user           // one per worker
	mfa                 []*user           // the step-up pool; grows as needed
	mfaNext, ipNext     int
	cheapHash, prodHash string
	workers             []*worker
	idleWAL             *int64 // the WAL file after the run and a pause
}

// sizer is the SQLite store's Size (storage/sqlite).
type sizer interface {
	Size(ctx context.Context) (dbBytes, walBytes int64, err error)
}

// user is a provisioned user.
type user struct {
	id, name string
	ip       string // its X-Forwarded-For address
	totp     string // TOTP secret (step-up users)
	lastStep int64  // the last TOTP step it used (step-up users)
}

// worker is what one worker keeps between operations. Only that
// worker touches it once its setup is done.
type worker struct {
	sso *browser          // signed in as sso[w]
	rt  map[string]string // refresh token by client
	at  string            // access token of the es256 client
	key *dpop.Prover      // the worker's DPoP key, for the dpop client
}

// stepupBatch is how many step-ups each worker is given per round: the
// password sessions they start from are made, untimed, between rounds.
const stepupBatch = 25

func (r *runner) needs(names ...string) bool {
	return slices.ContainsFunc(r.opts.Scenarios, func(s string) bool { return slices.Contains(names, s) })
}

func (r *runner) start(ctx context.Context) error {
	o := r.opts
	var config string
	switch {
	case o.URL == "":
		dir, err := os.MkdirTemp("", "keystep-bench-")
		if err != nil {
			return fmt.Errorf("bench: data folder: %w", err)
		}
		r.dir, r.tempDir = dir, !o.Keep
		if config, err = writeServerConfig(dir); err != nil {
			return err
		}
	case o.Data != "":
		// An existing server's folder: refuse to create a new database (or
		// master key) next to a typo.
		have := "keystep.db"
		if o.Database != "" {
			have = "master.key"
		}
		if _, err := os.Stat(filepath.Join(o.Data, have)); err != nil {
			return fmt.Errorf("bench: --data %s: %w", o.Data, err)
		}
		r.dir = o.Data
	}
	if r.dir != "" {
		st, key, err := r.open(ctx, r.dir, o.Database)
		if err != nil {
			return err
		}
		r.store = st
		if r.sealer, err = factor.NewSealer(key); err != nil {
			return err
		}
		if r.audit, err = storage.NewAuditKey(key); err != nil {
			return err
		}
		if o.URL == "" && o.Database != "" {
			if err := databaseEmpty(ctx, st); err != nil {
				return err
			}
		}
		if o.Database != "" {
			if r.pg, err = pgx.Connect(ctx, o.Database); err != nil {
				return fmt.Errorf("bench: --database: connect to measure its size: %w", err)
			}
			// The PIDs PostgreSQL reports are its machine's.
			r.pgLocal = checkDatabase(o.Database, false) == nil
		}
		if err := r.provision(ctx); err != nil {
			return fmt.Errorf("bench: provision: %w", err)
		}
	}
	base := o.URL
	if o.URL == "" {
		child, err := startChild(ctx, childConfig{keystep: r.keystep, data: r.dir, config: config, database: o.Database, pprof: o.Pprof})
		if err != nil {
			return err
		}
		r.child, r.pid, base = child, child.cmd.Process.Pid, child.url
	} else {
		r.pid = o.PID
	}
	t, err := newTarget(ctx, base, o.Workers)
	if err != nil {
		return err
	}
	r.target = t
	r.workers = make([]*worker, o.Workers)
	for i := range r.workers {
		r.workers[i] = &worker{rt: map[string]string{}}
	}
	return nil
}

func (r *runner) close() {
	if r.target != nil {
		r.target.close()
	}
	if r.child != nil {
		if err := r.child.stop(); err != nil {
			fmt.Fprintf(r.stderr, "keystep bench: server: %v\n", err)
		}
	}
	if r.store != nil {
		r.store.Close()
	}
	if r.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.pg.Close(ctx)
		cancel()
	}
	switch {
	case r.tempDir:
		os.RemoveAll(r.dir)
	case r.opts.Keep && r.dir != "":
		fmt.Fprintf(r.stderr, "keystep bench: data folder kept at %s\n", r.dir)
	}
}

// databaseEmpty refuses a --database that already holds Keystep
// state: the child server would seal new signing keys with its throwaway
// master key and point the account portal's client at itself, taking the
// database over from whatever server it belongs to.
func databaseEmpty(ctx context.Context, st storage.Store) error {
	users, err := st.CountUsers(ctx)
	if err != nil {
		return err
	}
	clients, err := st.ListClients(ctx)
	if err != nil {
		return err
	}
	keys, err := st.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	if users == 0 && len(clients) == 0 && len(keys) == 0 {
		return nil
	}
	return fmt.Errorf("bench: --database already holds Keystep state (%d users, %d clients, %d signing keys), "+
		"and the server bench starts would take it over: give it an empty database or schema "+
		"(CREATE SCHEMA bench, then …?search_path=bench), or benchmark the server it belongs to with --url, --data and --database",
		users, len(clients), len(keys))
}

// ---- provisioning ----

// provision creates the clients and users the chosen scenarios need,
// directly in storage. Names carry a run ID, so runs against one --data
// folder do not collide.
func (r *runner) provision(ctx context.Context) error {
	r.runID = strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(randomToken()))[:6]
	r.password = randomToken()
	now := time.Now().UTC()
	r.clients = map[string]client{}
	for _, c := range []struct {
		key, alg string
		grants   []string
	}{
		{"rs256", "RS256", []string{"authorization_code", "refresh_token"}},
		{"es256", "ES256", []string{"authorization_code", "refresh_token"}},
		{"dpop", "ES256", []string{"authorization_code", "refresh_token"}},
		{"service", "ES256", []string{"client_credentials"}},
	} {
		bc := client{id: "bench-" + r.runID + "-" + c.key, secret: randomToken()}
		sc := storage.Client{
			ID: bc.id, Name: "Keystep bench (" + c.key + ")", SecretHash: factor.HashToken(bc.secret),
			AuthMethod: "client_secret_basic", GrantTypes: c.grants, IDTokenAlg: c.alg,
			AccessTokenFormat: "jwt", FirstParty: true, CreatedAt: now, UpdatedAt: now,
			// Bench measures throughput, not the per-client limit, which
			// would otherwise cap these clients at 1,000/s (idp.DefaultRateLimits).
			RateLimit: 1_000_000,
		}
		if c.key != "service" {
			sc.RedirectURIs = []string{redirectURI}
		}
		// Like es256 in all but this: every token request needs a DPoP
		// proof, and the tokens are bound to its key (RFC 9449 §5.2).
		sc.DPoPBoundAccessTokens = c.key == "dpop"
		if err := r.store.CreateClient(ctx, sc); err != nil {
			return err
		}
		r.clients[c.key] = bc
	}

	// Users whose password is not what is measured get cheap argon2
	// parameters: their sign-in is untimed setup.
	var err error
	if r.cheapHash, err = factor.NewTestPasswordHasher().Hash(r.password); err != nil {
		return err
	}
	if r.needs("refresh_rs256", "refresh_es256", "refresh_dpop", "userinfo", "introspection", "code_sso") {
		for i := range r.opts.Workers {
			u, err := r.addUser(ctx, fmt.Sprintf("sso-%d", i), r.cheapHash, now)
			if err != nil {
				return err
			}
			r.sso = append(r.sso, u)
		}
	}
	if r.needs("password") {
		// The password scenario measures the production hash; one hash
		// serves every worker's user, since verifying costs the same.
		if r.prodHash, err = factor.NewPasswordHasher().Hash(r.password); err != nil {
			return err
		}
		for i := range r.opts.Workers {
			u, err := r.addUser(ctx, fmt.Sprintf("pw-%d", i), r.prodHash, now)
			if err != nil {
				return err
			}
			r.pw = append(r.pw, u)
		}
	}
	if r.needs("stepup") {
		if err := r.addStepupUsers(ctx, 2*r.opts.Workers*stepupBatch); err != nil {
			return err
		}
	}
	_, err = r.store.AppendAudit(ctx, r.audit, storage.AuditEvent{
		Time: now, Type: storage.EventAdminBenchProvisioned, ActorID: "cli", Outcome: "success",
		Details: map[string]string{"run": r.runID, "users": fmt.Sprint(len(r.sso) + len(r.pw) + len(r.mfa))},
	})
	return err
}

func (r *runner) addUser(ctx context.Context, suffix, hash string, now time.Time) (*user, error) {
	r.ipNext++
	// 198.18.0.0/15 (RFC 2544) holds 131072 addresses; past that they repeat.
	ip := netip.AddrFrom4([4]byte{198, 18 + byte(r.ipNext>>16&1), byte(r.ipNext >> 8), byte(r.ipNext)})
	u := &user{id: "bench-" + r.runID + "-" + suffix, name: "bench-" + r.runID + "-" + suffix, ip: ip.String(), lastStep: -1}
	err := r.store.CreateUser(ctx, storage.User{ID: u.id, Username: u.name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now})
	return u, err
}

// addStepupUsers adds n users with an authenticator app, sealed and
// stored the way the account portal stores one.
func (r *runner) addStepupUsers(ctx context.Context, n int) error {
	now := time.Now().UTC()
	for range n {
		u, err := r.addUser(ctx, fmt.Sprintf("mfa-%d", len(r.mfa)), r.cheapHash, now)
		if err != nil {
			return err
		}
		key, err := factor.NewTOTPKey("Keystep", u.id)
		if err != nil {
			return err
		}
		u.totp = key.Secret
		f := storage.Factor{ID: "f-" + u.id, UserID: u.id, Kind: storage.FactorTOTP, Name: "bench",
			Secret: r.sealer.Seal([]byte(key.Secret), []byte("totp:"+u.id)), CreatedAt: now}
		if err := r.store.CreateFactor(ctx, f); err != nil {
			return err
		}
		r.mfa = append(r.mfa, u)
	}
	return nil
}

// ---- running ----

// meter collects one scenario's measurements. Only timed phases count:
// their wall time, their operations and the server CPU spent in them.
type meter struct {
	ok, errs   atomic.Int64
	phaseStart atomic.Int64 // unix nanoseconds; 0 outside a phase

	mu         sync.Mutex
	firstErr   string
	lat        []time.Duration
	timed      time.Duration
	srvCPU     time.Duration
	cliCPU     time.Duration
	otherCPU   time.Duration // the rest of the machine's busy time
	dbCPU      time.Duration // PostgreSQL's processes, when on this machine
	dbCPUKnown bool
	cpuKnown   bool
	dbGrowth   int64
	dbKnown    bool
	wal        int64 // the WAL file at the end of the last phase (SQLite)
	walKnown   bool
	peakRSS    int64
	rssKnown   bool
	rssWhole   bool // the peak could not be reset: it is the process's
	setupTime  time.Duration
}

func (m *meter) fail(err error) {
	m.errs.Add(1)
	m.mu.Lock()
	if m.firstErr == "" {
		m.firstErr = err.Error()
	}
	m.mu.Unlock()
}

// elapsed is the timed wall time so far, for the progress line.
func (m *meter) elapsed() time.Duration {
	m.mu.Lock()
	d := m.timed
	m.mu.Unlock()
	if s := m.phaseStart.Load(); s != 0 {
		d += time.Since(time.Unix(0, s))
	}
	return d
}

// sample is the state of the server and this process at an instant.
type sample struct {
	srvCPU, cliCPU, machine time.Duration
	cpuOK                   bool
	db, wal                 int64 // wal: SQLite's WAL file, apart from db
	dbOK, walOK             bool
	pgCPU                   map[int]time.Duration // by PID; nil when unknown
}

func (r *runner) sample(ctx context.Context) sample {
	var s sample
	var ok1, ok2 bool
	if r.pid != 0 {
		s.srvCPU, ok1 = procCPU(fmt.Sprint(r.pid))
	}
	s.cliCPU, ok2 = procCPU("self")
	var ok3 bool
	s.machine, ok3 = machineCPU()
	s.cpuOK = ok1 && ok2 && ok3
	switch {
	case r.pg != nil:
		s.db, s.dbOK = r.pgSize(ctx)
		if r.pgLocal {
			s.pgCPU = r.pgCPU(ctx)
		}
	default:
		if sz, ok := r.store.(sizer); ok {
			var err error
			s.db, s.wal, err = sz.Size(ctx)
			s.dbOK, s.walOK = err == nil, err == nil
		}
	}
	return s
}

// pgCPU is the CPU time of the database's PostgreSQL processes by PID, or
// nil when they are not on this machine (or not visible from it): its
// backends, the child server's connections among them, and its background
// processes (WAL writer, checkpointer, …). bench's own connection is left
// out.
func (r *runner) pgCPU(ctx context.Context) map[int]time.Duration {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := r.pg.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND (datname = current_database() OR datname IS NULL)`)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		// A PID of another machine or PID namespace may name some other
		// process here.
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if d, ok := procCPU(fmt.Sprint(pid)); ok {
			out[int(pid)] = d
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// pgSize is the size of the schema Keystep's tables are in (the first of
// the search_path, as storage/postgres puts them): tables, their indexes
// and TOAST.
func (r *runner) pgSize(ctx context.Context) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var n int64
	err := r.pg.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'`).Scan(&n)
	return n, err == nil
}

// phase runs operations on every worker until next says stop, timing each,
// and adds the phase's wall time, server CPU and database growth to m.
func (r *runner) phase(ctx context.Context, m *meter, next func(w int) (func(context.Context) error, bool)) {
	before := r.sample(ctx)
	start := time.Now()
	m.phaseStart.Store(start.UnixNano())
	lats := make([][]time.Duration, r.opts.Workers)
	var wg sync.WaitGroup
	for w := range r.opts.Workers {
		wg.Go(func() {
			for {
				op, ok := next(w)
				if !ok {
					return
				}
				t := time.Now()
				err := op(ctx)
				d := time.Since(t)
				switch {
				case ctx.Err() != nil:
					return // interrupted: not the server's failure
				case err != nil:
					m.fail(err)
				default:
					lats[w] = append(lats[w], d)
					m.ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	after := r.sample(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.timed += wall
	m.phaseStart.Store(0)
	for _, l := range lats {
		m.lat = append(m.lat, l...)
	}
	m.cpuKnown = before.cpuOK && after.cpuOK
	m.srvCPU += after.srvCPU - before.srvCPU
	m.cliCPU += after.cliCPU - before.cliCPU
	var db time.Duration
	if before.pgCPU != nil && after.pgCPU != nil {
		// A backend that started during the phase counts in full; one
		// that ended during it is lost, but the server's pool keeps its.
		for pid, d := range after.pgCPU {
			db += max(0, d-before.pgCPU[pid])
		}
		m.dbCPU += db
		m.dbCPUKnown = true
	}
	m.otherCPU += max(0, (after.machine-before.machine)-(after.srvCPU-before.srvCPU)-(after.cliCPU-before.cliCPU)-db)
	m.dbGrowth += after.db - before.db
	m.dbKnown = before.dbOK && after.dbOK
	m.wal, m.walKnown = after.wal, after.walOK
}

// forEach runs fn for every worker in parallel (untimed setup).
func (r *runner) forEach(ctx context.Context, fn func(ctx context.Context, w int) error) error {
	errs := make([]error, r.opts.Workers)
	var wg sync.WaitGroup
	for w := range r.opts.Workers {
		wg.Go(func() { errs[w] = fn(ctx, w) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// steady runs op for --duration or --count in one timed phase.
func (r *runner) steady(ctx context.Context, m *meter, op func(ctx context.Context, w int) error) {
	var claimed atomic.Int64
	deadline := time.Now().Add(r.opts.Duration)
	r.phase(ctx, m, func(w int) (func(context.Context) error, bool) {
		switch {
		case ctx.Err() != nil:
			return nil, false
		case r.opts.Count > 0:
			if claimed.Add(1) > int64(r.opts.Count) {
				return nil, false
			}
		case !time.Now().Before(deadline):
			return nil, false
		}
		return func(ctx context.Context) error { return op(ctx, w) }, true
	})
}

// all runs the chosen scenarios in order.
func (r *runner) all(ctx context.Context) ([]Result, error) {
	var out []Result
	for _, name := range r.opts.Scenarios {
		if ctx.Err() != nil {
			break
		}
		res, err := r.scenario(ctx, name)
		if err != nil {
			return out, fmt.Errorf("bench: %s: %w", name, err)
		}
		out = append(out, res)
	}
	if sz, ok := r.store.(sizer); ok && ctx.Err() == nil {
		// The server's checkpointer empties a large WAL once it has been
		// idle for a tick (storage/sqlite).
		time.Sleep(time.Second)
		if _, wal, err := sz.Size(ctx); err == nil {
			r.idleWAL = &wal
		}
	}
	return out, nil
}

func (r *runner) scenario(ctx context.Context, name string) (Result, error) {
	m := &meter{}
	rssReset := r.pid != 0 && resetPeakRSS(r.pid)
	stop := r.progress(name, m)
	err := r.drive(ctx, name, m)
	stop()
	if r.pid != 0 {
		m.peakRSS, m.rssKnown = peakRSS(r.pid)
		m.rssWhole = !rssReset
	}
	if err != nil {
		return Result{}, err
	}
	res := m.result(name)
	if name == "password" && isLoopbackTarget(r.target.base.Hostname()) { // the server shares these CPUs
		d := min(max(r.opts.Duration, time.Second), 3*time.Second)
		if r.opts.Count > 0 {
			d = 0 // one hash per CPU
		}
		c := argon2Ceiling(d)
		pct := 100 * res.OpsPerSecond / c
		res.Argon2idCeiling, res.PercentOfCeiling = &c, &pct
	}
	fmt.Fprintf(r.stderr, "%-18s %8d ops %6d errors %9.1f/s  p50 %s  p99 %s\n", name, res.Ops, res.Errors,
		res.OpsPerSecond, fmtLatency(res.P50ms), fmtLatency(res.P99ms))
	return res, nil
}

// progress prints a status line on stderr until the returned func is called.
func (r *runner) progress(name string, m *meter) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(r.stderr, "\r%-78s\r", "")
				return
			case <-t.C:
			}
			el := m.elapsed()
			ok, errs := m.ok.Load(), m.errs.Load()
			rate := 0.0
			if el > 0 {
				rate = float64(ok) / el.Seconds()
			}
			goal := r.opts.Duration.Round(time.Second).String()
			if r.opts.Count > 0 {
				goal = fmt.Sprintf("%d ops", r.opts.Count)
			}
			fmt.Fprintf(r.stderr, "\r%-78s", fmt.Sprintf("%-18s %6.1fs of %s  %8d ok  %5d errors  %9.1f/s", name, el.Seconds(), goal, ok, errs, rate))
		}
	})
	return func() { close(done); wg.Wait() }
}

func (r *runner) drive(ctx context.Context, name string, m *meter) error {
	t := r.target
	switch name {
	case "jwks":
		r.steady(ctx, m, func(ctx context.Context, _ int) error { return t.get(ctx, t.endpoints.JWKS, "") })
	case "client_credentials":
		c := r.clients["service"]
		r.steady(ctx, m, func(ctx context.Context, _ int) error { return t.clientCredentials(ctx, c) })
	case "refresh_rs256", "refresh_es256", "refresh_dpop":
		key := strings.TrimPrefix(name, "refresh_")
		if err := r.forEach(ctx, func(ctx context.Context, w int) error { return r.ensureRefresh(ctx, w, key) }); err != nil {
			return err
		}
		r.steady(ctx, m, func(ctx context.Context, w int) error { return r.refreshOp(ctx, w, key) })
	case "userinfo":
		if err := r.forEach(ctx, r.ensureAccess); err != nil {
			return err
		}
		r.steady(ctx, m, func(ctx context.Context, w int) error { return t.get(ctx, t.endpoints.Userinfo, r.workers[w].at) })
	case "introspection":
		if err := r.forEach(ctx, r.ensureAccess); err != nil {
			return err
		}
		c := r.clients["es256"]
		r.steady(ctx, m, func(ctx context.Context, w int) error { return t.introspect(ctx, c, r.workers[w].at) })
	case "code_sso":
		if err := r.forEach(ctx, r.ensureSSO); err != nil {
			return err
		}
		r.steady(ctx, m, r.codeOp)
	case "stepup":
		return r.stepup(ctx, m)
	case "password":
		r.steady(ctx, m, r.passwordOp)
	default:
		return fmt.Errorf("unknown scenario %q", name)
	}
	return nil
}

// ensureSSO gives worker w a browser signed in (password only) as sso[w].
func (r *runner) ensureSSO(ctx context.Context, w int) error {
	wk := r.workers[w]
	if wk.sso != nil {
		return nil
	}
	u := r.sso[w]
	b := r.target.browser(u.ip)
	c := r.clients["rs256"]
	code, a, err := b.signIn(ctx, c, "openid profile", u, r.password)
	if err != nil {
		return fmt.Errorf("sign in %s: %w", u.name, err)
	}
	if _, err := r.target.exchange(ctx, c, code, a); err != nil {
		return err
	}
	wk.sso = b
	return nil
}

// clientFor is the client key as worker w uses it: the dpop client with
// the worker's own DPoP key, made on first use.
func (r *runner) clientFor(w int, key string) (client, error) {
	c := r.clients[key]
	if key != "dpop" {
		return c, nil
	}
	wk := r.workers[w]
	if wk.key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return c, err
		}
		if wk.key, err = dpop.NewProver(k, jose.ES256); err != nil {
			return c, err
		}
	}
	c.key = wk.key
	return c, nil
}

// ensureRefresh gets worker w a refresh token for the client key through
// the worker's SSO session.
func (r *runner) ensureRefresh(ctx context.Context, w int, key string) error {
	wk := r.workers[w]
	if wk.rt[key] != "" {
		return nil
	}
	c, err := r.clientFor(w, key)
	if err != nil {
		return err
	}
	tr, err := r.codeFlow(ctx, w, c, "openid profile offline_access")
	if err != nil {
		return err
	}
	if tr.RefreshToken == "" {
		return errors.New("the code exchange returned no refresh token")
	}
	wk.rt[key] = tr.RefreshToken
	return nil
}

// ensureAccess gets worker w an access token of the es256 client.
func (r *runner) ensureAccess(ctx context.Context, w int) error {
	if r.workers[w].at != "" {
		return nil
	}
	tr, err := r.codeFlow(ctx, w, r.clients["es256"], "openid profile email")
	if err != nil {
		return err
	}
	r.workers[w].at = tr.AccessToken
	return nil
}

// codeFlow runs authorize → callback → token on worker w's SSO session.
func (r *runner) codeFlow(ctx context.Context, w int, c client, scope string) (tokenResponse, error) {
	if err := r.ensureSSO(ctx, w); err != nil {
		return tokenResponse{}, err
	}
	p, a, err := r.workers[w].sso.authorize(ctx, c, scope, nil)
	if err != nil {
		return tokenResponse{}, err
	}
	code, err := codeOf(p, a)
	if err != nil {
		return tokenResponse{}, err
	}
	return r.target.exchange(ctx, c, code, a)
}

func (r *runner) codeOp(ctx context.Context, w int) error {
	_, err := r.codeFlow(ctx, w, r.clients["rs256"], "openid profile")
	return err
}

func (r *runner) refreshOp(ctx context.Context, w int, key string) error {
	wk := r.workers[w]
	c, err := r.clientFor(w, key)
	if err != nil {
		return err
	}
	tr, err := r.target.refresh(ctx, c, wk.rt[key])
	if err != nil {
		// The chain may be broken; start a new one for the next operation.
		wk.rt[key] = ""
		return errors.Join(err, r.ensureRefresh(ctx, w, key))
	}
	wk.rt[key] = tr.RefreshToken
	return nil
}

func (r *runner) passwordOp(ctx context.Context, w int) error {
	u := r.pw[w]
	b := r.target.browser(u.ip) // a new browser: no session, a new device
	c := r.clients["rs256"]
	code, a, err := b.signIn(ctx, c, "openid profile", u, r.password)
	if err != nil {
		return err
	}
	_, err = r.target.exchange(ctx, c, code, a)
	return err
}

// stepupSession is a browser with a password-only session, ready to be
// asked for mfa.
type stepupSession struct {
	b *browser
	u *user
}

// stepup runs rounds: untimed, sign in a batch of browsers with the
// password; timed, have each step up with its authenticator app. A TOTP
// step is accepted once per user, so a user steps up at most once per
// 30 s step; the pool of users grows when a round needs more.
func (r *runner) stepup(ctx context.Context, m *meter) error {
	for ctx.Err() == nil {
		k := r.opts.Workers * stepupBatch
		if r.opts.Count > 0 {
			k = min(k, r.opts.Count-int(m.ok.Load()+m.errs.Load()))
		} else if m.elapsed() >= r.opts.Duration {
			break
		}
		if k <= 0 {
			break
		}
		start := time.Now()
		sessions, err := r.prepareStepups(ctx, k, m)
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.setupTime += time.Since(start)
		m.mu.Unlock()
		queue := make(chan stepupSession, len(sessions))
		for _, s := range sessions {
			queue <- s
		}
		close(queue)
		deadline := time.Now().Add(r.opts.Duration - m.elapsed())
		r.phase(ctx, m, func(int) (func(context.Context) error, bool) {
			if ctx.Err() != nil || r.opts.Count == 0 && !time.Now().Before(deadline) {
				return nil, false
			}
			s, ok := <-queue
			if !ok {
				return nil, false
			}
			return func(ctx context.Context) error { return r.stepupOp(ctx, s) }, true
		})
	}
	return nil
}

// prepareStepups signs in k browsers, each as a user that has not used the
// current TOTP step.
func (r *runner) prepareStepups(ctx context.Context, k int, m *meter) ([]stepupSession, error) {
	cur := factor.TOTPStep(time.Now())
	var users []*user
	for i := 0; i < len(r.mfa) && len(users) < k; i++ {
		u := r.mfa[(r.mfaNext+i)%len(r.mfa)]
		if u.lastStep < cur {
			users = append(users, u)
		}
	}
	r.mfaNext = (r.mfaNext + len(users)) % max(1, len(r.mfa))
	if need := k - len(users); need > 0 {
		from := len(r.mfa)
		if err := r.addStepupUsers(ctx, max(need, 4*r.opts.Workers)); err != nil {
			return nil, fmt.Errorf("add step-up users: %w", err)
		}
		users = append(users, r.mfa[from:from+need]...)
	}
	sessions := make([]stepupSession, len(users))
	failed := make([]error, len(users))
	var next atomic.Int64
	var wg sync.WaitGroup
	c := r.clients["rs256"]
	for range r.opts.Workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(users) && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				b := r.target.browser(users[i].ip)
				if _, _, err := b.signIn(ctx, c, "openid profile", users[i], r.password); err != nil {
					failed[i] = fmt.Errorf("preparing a session: %w", err)
					continue
				}
				sessions[i] = stepupSession{b: b, u: users[i]}
			}
		})
	}
	wg.Wait()
	out := sessions[:0]
	for i, s := range sessions {
		if failed[i] != nil {
			m.fail(failed[i])
		} else if s.b != nil {
			out = append(out, s)
		}
	}
	if len(out) == 0 && ctx.Err() == nil {
		return nil, fmt.Errorf("no session could be prepared: %w", errors.Join(failed...))
	}
	return out, ctx.Err()
}

func (r *runner) stepupOp(ctx context.Context, s stepupSession) error {
	c := r.clients["rs256"]
	p, a, err := s.b.authorize(ctx, c, "openid profile", map[string][]string{"acr_values": {stepup.ACRMultiFactor}})
	if err != nil {
		return err
	}
	if !p.has("/login/otp") {
		return fmt.Errorf("expected the authenticator-app form, got %s", p)
	}
	now := time.Now()
	code, err := factor.TOTPCode(s.u.totp, now)
	if err != nil {
		return err
	}
	s.u.lastStep = factor.TOTPStep(now)
	p, err = s.b.post(ctx, "/login/otp", map[string][]string{"id": {p.id()}, "code": {code}})
	if err != nil {
		return err
	}
	authCode, err := codeOf(p, a)
	if err != nil {
		return err
	}
	tr, err := r.target.exchange(ctx, c, authCode, a)
	if err != nil {
		return err
	}
	acr, err := idTokenACR(tr.IDToken)
	if err != nil {
		return err
	}
	if acr != stepup.ACRMultiFactor {
		return fmt.Errorf("stepped-up ID token has acr %q", acr)
	}
	return nil
}

// argon2Ceiling runs production-cost argon2id hashes on every CPU for about
// d (at least one each) and returns hashes per second: the most password
// sign-ins per second a server on this machine could verify.
func argon2Ceiling(d time.Duration) float64 {
	h := factor.NewPasswordHasher()
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for first := true; first || time.Now().Before(deadline); first = false {
				if _, err := h.Hash("bench-ceiling"); err == nil {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
