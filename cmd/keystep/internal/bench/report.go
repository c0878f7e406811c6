package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one scenario's figures. Unknown figures (no /proc, no
// server process) are omitted from the JSON.
type Result struct {
	Name                  string   `json:"name"`
	Operation             string   `json:"operation"`
	Ops                   int64    `json:"ops"`
	Errors                int64    `json:"errors"`
	FirstError            string   `json:"first_error,omitempty"`
	Seconds               float64  `json:"seconds"`
	OpsPerSecond          float64  `json:"ops_per_second"`
	P50ms                 float64  `json:"p50_ms"`
	P95ms                 float64  `json:"p95_ms"`
	P99ms                 float64  `json:"p99_ms"`
	ServerCPUSeconds      *float64 `json:"server_cpu_seconds,omitempty"`
	OpsPerServerCPUSecond *float64 `json:"ops_per_server_cpu_second,omitempty"`
	ClientCPUSeconds      *float64 `json:"client_cpu_seconds,omitempty"`
	// OtherCPUSeconds is what the rest of the machine used meanwhile: a
	// busy neighbour lowers ops/s, not ops per server CPU-second.
	OtherCPUSeconds *float64 `json:"other_cpu_seconds,omitempty"`
	// DatabaseCPUSeconds is PostgreSQL's processes' CPU time, when it runs
	// on this machine: with SQLite that work is in server_cpu_seconds.
	DatabaseCPUSeconds *float64 `json:"database_cpu_seconds,omitempty"`
	PeakRSSBytes       *int64   `json:"peak_rss_bytes,omitempty"`
	// PeakRSSSinceStart: the kernel did not let the peak be reset, so it is
	// the server's peak since it started, not this scenario's.
	PeakRSSSinceStart bool `json:"peak_rss_since_start,omitempty"`
	// DBGrowthBytes is how much the database grew over the timed part:
	// SQLite's pages (page_count × page_size, the WAL apart), PostgreSQL's
	// tables with their indexes and TOAST. DBGrowthPer10kOps is that per
	// 10,000 operations.
	DBGrowthBytes     *int64   `json:"db_growth_bytes,omitempty"`
	DBGrowthPer10kOps *float64 `json:"db_growth_bytes_per_10000_ops,omitempty"`
	// WALBytes is SQLite's WAL file at the end of the scenario: its size
	// under that load.
	WALBytes *int64 `json:"wal_bytes,omitempty"`
	// SetupSeconds is untimed preparation inside the scenario (step-up's
	// password sessions).
	SetupSeconds float64 `json:"setup_seconds,omitempty"`
	// Argon2idCeiling (password only) is how many production-cost hashes
	// per second this machine's CPUs do with nothing else running, measured
	// right after the scenario; PercentOfCeiling is ops/s as a share of it.
	Argon2idCeiling  *float64 `json:"argon2id_ceiling_per_second,omitempty"`
	PercentOfCeiling *float64 `json:"percent_of_ceiling,omitempty"`
}

func (m *meter) result(name string) Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := Result{Name: name, Ops: m.ok.Load(), Errors: m.errs.Load(), FirstError: m.firstErr,
		Seconds: m.timed.Seconds(), SetupSeconds: m.setupTime.Seconds()}
	for _, s := range scenarios {
		if s.name == name {
			res.Operation = s.op
		}
	}
	if m.timed > 0 {
		res.OpsPerSecond = float64(res.Ops) / m.timed.Seconds()
	}
	slices.Sort(m.lat)
	res.P50ms, res.P95ms, res.P99ms = percentile(m.lat, 50), percentile(m.lat, 95), percentile(m.lat, 99)
	if m.cpuKnown {
		srv, cli, other := m.srvCPU.Seconds(), m.cliCPU.Seconds(), m.otherCPU.Seconds()
		res.ServerCPUSeconds, res.ClientCPUSeconds, res.OtherCPUSeconds = &srv, &cli, &other
		if srv > 0 {
			per := float64(res.Ops) / srv
			res.OpsPerServerCPUSecond = &per
		}
	}
	if m.dbCPUKnown {
		db := m.dbCPU.Seconds()
		res.DatabaseCPUSeconds = &db
	}
	if m.rssKnown {
		rss := m.peakRSS
		res.PeakRSSBytes, res.PeakRSSSinceStart = &rss, m.rssWhole
	}
	if m.dbKnown {
		db := m.dbGrowth
		res.DBGrowthBytes = &db
		if res.Ops > 0 {
			per := float64(db) / float64(res.Ops) * 10_000
			res.DBGrowthPer10kOps = &per
		}
	}
	if m.walKnown {
		wal := m.wal
		res.WALBytes = &wal
	}
	return res
}

// percentile is the nearest-rank percentile of sorted, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// Report is the whole output.
type Report struct {
	Machine struct {
		CPUs       int    `json:"cpus"`
		GOMAXPROCS int    `json:"gomaxprocs"`
		CPUModel   string `json:"cpu_model,omitempty"`
		OS         string `json:"os"`
		Arch       string `json:"arch"`
		Go         string `json:"go"`
	} `json:"machine"`
	Server struct {
		URL   string `json:"url"`
		Child bool   `json:"child"` // started by bench on a fresh data folder
		PID   int    `json:"pid,omitempty"`
		// Database is "sqlite" or "postgresql"; "" when bench does not know
		// (--url without --data).
		Database string `json:"database,omitempty"`
	} `json:"server"`
	Workers         int      `json:"workers"`
	DurationSeconds float64  `json:"duration_seconds,omitempty"`
	Count           int      `json:"count,omitempty"`
	Scenarios       []Result `json:"scenarios"`
	// IdleWALBytes is SQLite's WAL file a second after the last scenario.
	IdleWALBytes *int64   `json:"idle_wal_bytes,omitempty"`
	Notes        []string `json:"notes"`
}

func (r *runner) report(results []Result) Report {
	var rep Report
	rep.Machine.CPUs, rep.Machine.GOMAXPROCS = runtime.NumCPU(), runtime.GOMAXPROCS(0)
	rep.Machine.CPUModel = cpuModel()
	rep.Machine.OS, rep.Machine.Arch, rep.Machine.Go = runtime.GOOS, runtime.GOARCH, runtime.Version()
	rep.Server.URL, rep.Server.Child, rep.Server.PID = r.target.base.String(), r.child != nil, r.pid
	switch {
	case r.opts.Database != "":
		rep.Server.Database = "postgresql"
	case r.dir != "":
		rep.Server.Database = "sqlite"
	}
	rep.Workers, rep.Count = r.opts.Workers, r.opts.Count
	if r.opts.Count == 0 {
		rep.DurationSeconds = r.opts.Duration.Seconds()
	}
	rep.Scenarios, rep.IdleWALBytes = results, r.idleWAL
	if rep.Scenarios == nil {
		rep.Scenarios = []Result{}
	}
	rep.Notes = []string{
		"ops/s counts successful operations over the timed wall time; latencies are of successful operations.",
		"CPU-s is the server process's utime+stime (/proc/PID/stat) during the timed part; ops/CPU-s is the fair per-core figure.",
		"The load generator runs on the same machine and competes for its CPUs (client_cpu_seconds in --json).",
	}
	if r.child != nil {
		rep.Notes = append(rep.Notes, "The server was a child process on a fresh data folder with the default config, plus 127.0.0.1 as a trusted proxy so each bench user has its own address (X-Forwarded-For from 198.18.0.0/15).")
	}
	if r.opts.Database != "" {
		rep.Notes = append(rep.Notes, "The database was PostgreSQL: server CPU-s is Keystep's process alone; db CPU-s is PostgreSQL's processes (backends and background), when they run on this machine.")
	}
	if slices.Contains(r.opts.Scenarios, "stepup") {
		rep.Notes = append(rep.Notes, "stepup: each step-up starts from a password session made in untimed preparation; those users' hashes use cheap argon2 parameters (m=64 KiB, t=1), which only that preparation verifies. Each user steps up at most once per 30 s TOTP step.")
	}
	if slices.Contains(r.opts.Scenarios, "password") {
		rep.Notes = append(rep.Notes, "password: production argon2id (m=19456 KiB, t=2, p=1); a new browser each time, so no session and a new device.")
	}
	growth := "DB growth is the database's pages (page_count × page_size, free pages included) over the timed part, the WAL apart, and per 10,000 operations; WAL is the WAL file at the scenario's end."
	if r.opts.Database != "" {
		growth = "DB growth is the size of the schema's tables with their indexes and TOAST (pg_total_relation_size) over the timed part, and per 10,000 operations; PostgreSQL's WAL is apart."
	}
	rep.Notes = append(rep.Notes, "Peak RSS is VmHWM, reset before each scenario; "+growth)
	return rep
}

// Table prints the report for people.
func (rep Report) Table(w io.Writer) {
	m := rep.Machine
	cpu := m.CPUModel
	if cpu == "" {
		cpu = m.Arch
	}
	fmt.Fprintf(w, "Keystep bench: %d CPUs (%s), GOMAXPROCS %d, %s\n", m.CPUs, cpu, m.GOMAXPROCS, m.Go)
	run := fmt.Sprintf("%s per scenario", time.Duration(rep.DurationSeconds*float64(time.Second)))
	if rep.Count > 0 {
		run = fmt.Sprintf("%d operations per scenario", rep.Count)
	}
	where := rep.Server.URL
	switch {
	case rep.Server.Child && rep.Server.Database == "postgresql":
		where += " (child process, fresh data folder, PostgreSQL)"
	case rep.Server.Child:
		where += " (child process, fresh data folder)"
	case rep.Server.Database == "postgresql":
		where += " (PostgreSQL)"
	}
	fmt.Fprintf(w, "server %s; %d workers; %s\n\n", where, rep.Workers, run)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	// PostgreSQL does part of the work in its own processes; with SQLite it
	// is in the server's CPU-s.
	pg := rep.Server.Database == "postgresql"
	head := "scenario\tops\terrors\tops/s\tp50\tp95\tp99\tsrv CPU-s\tops/CPU-s\t"
	if pg {
		head += "db CPU-s\t"
	}
	sqlite := rep.Server.Database == "sqlite"
	head += "peak RSS\tDB growth\tper 10k ops\t"
	if sqlite {
		head += "WAL\t"
	}
	fmt.Fprintln(tw, head)
	for _, s := range rep.Scenarios {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t", s.Name, s.Ops, s.Errors, s.OpsPerSecond,
			fmtLatency(s.P50ms), fmtLatency(s.P95ms), fmtLatency(s.P99ms),
			fmtOptFloat(s.ServerCPUSeconds, "%.2f"), fmtOptFloat(s.OpsPerServerCPUSecond, "%.0f"))
		if pg {
			fmt.Fprintf(tw, "%s\t", fmtOptFloat(s.DatabaseCPUSeconds, "%.2f"))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t", fmtOptBytes(s.PeakRSSBytes, s.PeakRSSSinceStart), fmtOptBytes(s.DBGrowthBytes, false), fmtOptSize(s.DBGrowthPer10kOps))
		if sqlite {
			fmt.Fprintf(tw, "%s\t", fmtOptBytes(s.WALBytes, false))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	var busy []string
	for _, s := range rep.Scenarios {
		// More than a tenth of the machine's capacity went elsewhere.
		if o := s.OtherCPUSeconds; o != nil && *o > 0.1*s.Seconds*float64(m.CPUs) {
			busy = append(busy, fmt.Sprintf("%s %.1f CPU-s", s.Name, *o))
		}
	}
	if len(busy) > 0 {
		fmt.Fprintf(w, "\nOther processes were busy during: %s. Their load lowers ops/s and raises latency; ops/CPU-s stays fair.\n", strings.Join(busy, ", "))
	}
	if rep.IdleWALBytes != nil {
		fmt.Fprintf(w, "\nWAL a second after the last scenario: %s.\n", fmtOptBytes(rep.IdleWALBytes, false))
	}
	for _, s := range rep.Scenarios {
		if s.Argon2idCeiling != nil && s.PercentOfCeiling != nil {
			fmt.Fprintf(w, "\n%s: %.1f sign-ins/s is %.0f%% of the argon2id ceiling (%.1f hashes/s on %d CPUs, measured alone).\n",
				s.Name, s.OpsPerSecond, *s.PercentOfCeiling, *s.Argon2idCeiling, m.GOMAXPROCS)
		}
	}
	fmt.Fprintln(w)
	for _, s := range rep.Scenarios {
		fmt.Fprintf(w, "  %-18s %s\n", s.Name, s.Operation)
	}
	fmt.Fprintln(w)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

func fmtLatency(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.2fs", ms/1000)
}

func fmtOptFloat(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

// fmtOptSize is a byte count in the unit that suits it.
func fmtOptSize(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case math.Abs(*v) < 1<<10:
		return fmt.Sprintf("%.0f B", *v)
	case math.Abs(*v) < 1<<20:
		return fmt.Sprintf("%.1f KiB", *v/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", *v/(1<<20))
}

func fmtOptBytes(v *int64, sinceStart bool) string {
	if v == nil {
		return "-"
	}
	s := fmt.Sprintf("%.1f MiB", float64(*v)/(1<<20))
	if sinceStart {
		s += "*"
	}
	return s
}

// ---- /proc ----

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user+system CPU time of process pid ("self" for
// this one) from /proc/PID/stat.
func procCPU(pid string) (time.Duration, bool) {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after its closing parenthesis start at field 3 (state).
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// machineCPU returns the machine's busy CPU time since boot: every field of
// /proc/stat's cpu line but idle and iowait.
func machineCPU() (time.Duration, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) < 9 || fields[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, v := range fields[1:9] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, true
}

// peakRSS returns VmHWM of pid in bytes.
func peakRSS(pid int) (int64, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// resetPeakRSS resets VmHWM to the current RSS (Linux 4.0+, the process's
// owner): "5" > /proc/PID/clear_refs.
func resetPeakRSS(pid int) bool {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/clear_refs", pid), os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, err = f.WriteString("5")
	return f.Close() == nil && err == nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}
