package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// policyT0 is the commands' clock in these tests.
var policyT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// threeLevels is a policy without the phrh level: discovery's
// acr_values_supported shows which policy a server decides with.
const threeLevels = `levels:
  - {acr: urn:keystep:acr:sfa, requires: any}
  - {acr: urn:keystep:acr:mfa, requires: mfa}
  - {acr: phr, requires: phr, freshness: 1h}
scope_min_acr:
  payroll:write: phr
`

// policyFile is a whole file: clients, authorization details types and
// per-client policy.
const policyFile = detailsYAML + `  - id: spa
    public: true
    redirect_uris: [http://localhost:3000/cb]
admin:
  acr: phr
  max_age: 10m
scope_min_acr:
  reports:read: urn:keystep:acr:mfa
client_policies:
  payroll:
    scope_min_acr:
      payroll:write: phr
    access_token_lifetime: 5m
    refresh_token_lifetime: 8h
    factors: [webauthn, totp]
    preferred_factor: webauthn
    enroll_during_step_up: true
`

// withPhrh is threeLevels with the phrh level added.
func withPhrh() string {
	return strings.Replace(threeLevels, "scope_min_acr:", "  - {acr: phrh, requires: phrh, freshness: 1h}\nscope_min_acr:", 1)
}

// history is `keystep policy history --json`.
func history(t *testing.T, data string) []versionJSON {
	t.Helper()
	r := mustKeystep(t, "", "policy", "history", "--json", "--data", data)
	var out []versionJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("policy history --json: %v\n%s", err, r.stdout)
	}
	return out
}

// shown is `keystep policy show N --json`.
func shown(t *testing.T, data string, n ...string) versionJSON {
	t.Helper()
	r := mustKeystep(t, "", append([]string{"policy", "show", "--json", "--data", data}, n...)...)
	var out versionJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Document == nil {
		t.Fatalf("policy show --json: %v\n%s", err, r.stdout)
	}
	return out
}

// acrs is the server's acr_values_supported: its levels in force.
func (s *server) acrs(t *testing.T) []string {
	t.Helper()
	var disc struct {
		ACRs []string `json:"acr_values_supported"`
	}
	if err := json.Unmarshal(s.get(t, "/.well-known/openid-configuration"), &disc); err != nil {
		t.Fatal(err)
	}
	return disc.ACRs
}

func TestServeSeedsThePolicyFromConfigOnceAndStoresItAgainOnlyWhenChanged(t *testing.T) {
	fixClock(t, policyT0)
	d := t.TempDir()
	cfg := writeFile(t, "keystep.yaml", threeLevels)

	s := startServe(t, "--data", d, "--config", cfg)
	if slices.Contains(s.acrs(t), "phrh") {
		t.Errorf("the server offers phrh; the file's levels do not have it: %v", s.acrs(t))
	}
	s.stop()
	vs := history(t, d)
	if len(vs) != 1 || vs[0].Version != 1 || vs[0].Author != "config "+cfg || vs[0].Reason != "seeded from --config" || !vs[0].Active || vs[0].Parent != 0 {
		t.Fatalf("after the first start: %+v", vs)
	}
	if got := shown(t, d); policy.Canonical(*got.Document) != policy.Canonical(mustDecode(t, threeLevels)) {
		t.Errorf("version 1 is not the file's policy: %s", policy.Canonical(*got.Document))
	}

	// A restart with the same file stores nothing.
	startServe(t, "--data", d, "--config", cfg).stop()
	if vs := history(t, d); len(vs) != 1 {
		t.Fatalf("a restart with the unchanged file stored a version: %+v", vs)
	}

	// An edit made elsewhere survives a restart with the unchanged file.
	mustKeystep(t, "", "apply", "-f", writeFile(t, "edit.yaml", withPhrh()), "--data", d)
	s = startServe(t, "--data", d, "--config", cfg)
	if !slices.Contains(s.acrs(t), "phrh") {
		t.Errorf("the restart undid the stored edit: %v", s.acrs(t))
	}
	s.stop()
	if vs := history(t, d); len(vs) != 2 || vs[0].Author != "cli" {
		t.Fatalf("after the edit and a restart: %+v", vs)
	}

	// The file changes: stored from the active version, logged, in force.
	changed := strings.Replace(threeLevels, "freshness: 1h", "freshness: 30m", 1)
	if err := os.WriteFile(cfg, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	s = startServe(t, "--data", d, "--config", cfg)
	if slices.Contains(s.acrs(t), "phrh") {
		t.Errorf("the changed file's levels are not in force: %v", s.acrs(t))
	}
	s.stop()
	vs = history(t, d)
	if len(vs) != 3 || vs[0].Version != 3 || vs[0].Parent != 2 || vs[0].Author != "config "+cfg || vs[0].Reason != "the --config file changed" || !vs[0].Active {
		t.Fatalf("after the file changed: %+v", vs)
	}
	if !strings.Contains(vs[0].Diff, `~ levels[2].freshness: "1h" → "30m"`) || !strings.Contains(vs[0].Diff, `- levels[3].acr: "phrh"`) {
		t.Errorf("version 3's diff:\n%s", vs[0].Diff)
	}
	if !strings.Contains(s.stderr.String(), "policy version stored from --config") {
		t.Errorf("no log line for the stored version:\n%s", s.stderr)
	}
	// The file has been stored: applying it again is not a change either.
	startServe(t, "--data", d, "--config", cfg).stop()
	if vs := history(t, d); len(vs) != 3 {
		t.Errorf("a restart stored the same file again: %+v", vs)
	}
}

// A file that was applied before serve first ran with it is not stored a
// second time, and the console's later edits survive restarts.
func TestServeDoesNotStoreAFileAlreadyApplied(t *testing.T) {
	fixClock(t, policyT0)
	d := t.TempDir()
	cfg := writeFile(t, "keystep.yaml", threeLevels)
	mustKeystep(t, "", "apply", "-f", cfg, "--data", d)
	startServe(t, "--data", d, "--config", cfg).stop()
	mustKeystep(t, "", "apply", "-f", writeFile(t, "edit.yaml", withPhrh()), "--data", d)
	startServe(t, "--data", d, "--config", cfg).stop()
	if vs := history(t, d); len(vs) != 2 || vs[0].Author != "cli" || vs[1].Author != "cli" {
		t.Errorf("versions: %+v", vs)
	}
}

func TestServeWithoutConfigOrReadOnlyStoresNothing(t *testing.T) {
	d := t.TempDir()
	startServe(t, "--data", d).stop()
	if vs := history(t, d); len(vs) != 0 {
		t.Errorf("serve without --config stored %+v", vs)
	}
	cfg := writeFile(t, "keystep.yaml", threeLevels)
	s := startServe(t, "--data", d, "--config", cfg, "--policy-read-only")
	s.stop()
	if vs := history(t, d); len(vs) != 0 {
		t.Errorf("serve --policy-read-only stored %+v", vs)
	}
	// Read-only, the file decides even when a version is stored.
	mustKeystep(t, "", "apply", "-f", writeFile(t, "edit.yaml", withPhrh()), "--data", d)
	t.Setenv("KEYSTEP_POLICY_READ_ONLY", "1")
	s = startServe(t, "--data", d, "--config", cfg)
	if slices.Contains(s.acrs(t), "phrh") {
		t.Errorf("read-only, the server decides with the stored version: %v", s.acrs(t))
	}
	s.stop()
	if vs := history(t, d); len(vs) != 1 {
		t.Errorf("read-only serve stored a version: %+v", vs)
	}
}

// A version stored while a server runs decides there within seconds
// (serve runs FollowPolicy).
func TestServeFollowsVersionsStoredElsewhere(t *testing.T) {
	d := t.TempDir()
	s := startServe(t, "--data", d)
	if !slices.Contains(s.acrs(t), "phrh") {
		t.Fatalf("the built-in levels lack phrh: %v", s.acrs(t))
	}
	mustKeystep(t, "", "apply", "-f", writeFile(t, "keystep.yaml", threeLevels), "--data", d)
	deadline := time.Now().Add(20 * time.Second)
	for slices.Contains(s.acrs(t), "phrh") {
		if time.Now().After(deadline) {
			t.Fatal("the running server never picked up version 1")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustDecode(t *testing.T, raw string) policy.Document {
	t.Helper()
	var fc fileConfig
	if _, err := policy.Decode([]byte(raw), &fc); err != nil {
		t.Fatal(err)
	}
	return fc.Document
}

// dbSum is a checksum of the database files: a dry run must not change
// them.
func dbSum(t *testing.T, data string) [32]byte {
	t.Helper()
	h := sha256.New()
	for _, name := range []string{"keystep.db", "keystep.db-wal"} {
		raw, err := os.ReadFile(filepath.Join(data, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		h.Write(raw)
	}
	return [32]byte(h.Sum(nil))
}

func TestApplyStoresThePolicyOnceAndDryRunWritesNothing(t *testing.T) {
	fixClock(t, policyT0)
	d := t.TempDir()
	f := writeFile(t, "keystep.yaml", policyFile)
	history(t, d) // creates the database
	before := dbSum(t, d)

	r := mustKeystep(t, "", "apply", "-f", f, "--dry-run", "--data", d)
	for _, want := range []string{"would create payroll", "would create spa",
		"policy: would store version 1 (the first; changes from the built-in policy):",
		`  + client_policies.payroll.scope_min_acr.payroll:write: "phr"`,
		`  + authorization_details_types.types[0].name: "payment_initiation"`,
		`  + admin.max_age: "10m"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "- : {}") {
		t.Errorf("the first version's diff removes the empty document:\n%s", r.stdout)
	}
	if dbSum(t, d) != before {
		t.Error("the dry run changed the database")
	}
	if vs, cs, rows := history(t, d), listClients(t, d), auditLog(t, d); len(vs) != 0 || len(cs) != 0 || len(rows) != 0 {
		t.Errorf("after a dry run: versions %+v, clients %+v, audit %+v", vs, cs, rows)
	}

	r = mustKeystep(t, "", "apply", "-f", f, "--data", d)
	if !strings.Contains(r.stdout, "policy: stored version 1 (the first") || !strings.Contains(r.stdout, "created payroll") {
		t.Errorf("apply:\n%s", r.stdout)
	}
	vs := history(t, d)
	if len(vs) != 1 || vs[0].Author != "cli" || vs[0].Reason != "keystep apply -f keystep.yaml" || !vs[0].Time.Equal(policyT0) {
		t.Fatalf("versions after apply: %+v", vs)
	}
	if got, want := policy.Canonical(*shown(t, d).Document), policy.Canonical(mustDecode(t, policyFile)); got != want {
		t.Errorf("stored document\n%s\nwant the file's\n%s", got, want)
	}
	var changed []auditJSON
	for _, e := range auditLog(t, d) {
		if e.Type == storage.EventAdminPolicyChanged {
			changed = append(changed, e)
		}
	}
	if len(changed) != 1 || changed[0].ActorID != "cli" || changed[0].Details["version"] != "1" {
		t.Errorf("policy audit events: %+v", changed)
	}
	rows := len(auditLog(t, d))

	// Twice: nothing stored, and it says so.
	r = mustKeystep(t, "", "apply", "-f", f, "--data", d)
	if !strings.Contains(r.stdout, "policy: unchanged (version 1)") || !strings.Contains(r.stdout, "no changes: 2 clients") {
		t.Errorf("second apply:\n%s", r.stdout)
	}
	if out := applyRun(t, d, f); out.Changed {
		t.Errorf("third apply --json says changed: %+v", out)
	}
	if vs := history(t, d); len(vs) != 1 {
		t.Errorf("applying the same file again stored a version: %+v", vs)
	}
	if n := len(auditLog(t, d)); n != rows {
		t.Errorf("applying the same file again wrote %d audit rows", n-rows)
	}

	// A change: the dry run prints the diff from the active version and
	// writes nothing; apply stores it with the reason given.
	f2 := writeFile(t, "keystep.yaml", strings.Replace(policyFile, "max_age: 10m", "max_age: 5m", 1))
	before = dbSum(t, d)
	r = mustKeystep(t, "", "apply", "-f", f2, "--dry-run", "--data", d)
	if !strings.Contains(r.stdout, "policy: would store version 2 (from version 1):\n  ~ admin.max_age: \"10m\" → \"5m\"\n") {
		t.Errorf("dry run of a change:\n%s", r.stdout)
	}
	if dbSum(t, d) != before {
		t.Error("the dry run changed the database")
	}
	r = mustKeystep(t, "", "apply", "-f", f2, "--reason", "tighten the console", "--data", d)
	if !strings.Contains(r.stdout, "policy: stored version 2 (from version 1):") {
		t.Errorf("apply of a change:\n%s", r.stdout)
	}
	if vs := history(t, d); len(vs) != 2 || vs[0].Reason != "tighten the console" || vs[0].Parent != 1 || vs[0].Diff != `~ admin.max_age: "10m" → "5m"` {
		t.Errorf("versions: %+v", vs)
	}
	// A file without a policy part leaves the stored policy alone.
	r = mustKeystep(t, "", "apply", "-f", writeFile(t, "clients.yaml", "clients:\n  - id: other\n    redirect_uris: [https://other.example/cb]\n"), "--data", d)
	if !strings.Contains(r.stdout, "policy: not in the file; version 2 stays active") {
		t.Errorf("apply of clients only:\n%s", r.stdout)
	}
	if vs := history(t, d); len(vs) != 2 {
		t.Errorf("a clients-only file stored a version: %+v", vs)
	}
}

func TestApplyRefusesThePolicyPartWhenReadOnlyOrNamingUnknownClients(t *testing.T) {
	fixClock(t, policyT0)
	f := writeFile(t, "keystep.yaml", policyFile)
	for _, tt := range []struct {
		name string
		env  string
		args []string
		want []string
	}{
		{"--policy-read-only", "", []string{"--policy-read-only"}, []string{"read-only", "nothing was changed"}},
		{"KEYSTEP_POLICY_READ_ONLY", "1", nil, []string{"read-only", "nothing was changed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KEYSTEP_POLICY_READ_ONLY", tt.env)
			d := filepath.Join(t.TempDir(), "data")
			wantExit(t, keystep(t, "", append([]string{"apply", "-f", f, "--data", d}, tt.args...)...), 1, tt.want...)
			noFile(t, d)
			// Clients only are applied.
			mustKeystep(t, "", append([]string{"apply", "-f", writeFile(t, "c.yaml", "clients:\n  - id: spa\n    public: true\n    redirect_uris: [http://localhost:3000/cb]\n"), "--data", d}, tt.args...)...)
			if vs := history(t, d); len(vs) != 0 {
				t.Errorf("versions: %+v", vs)
			}
		})
	}

	d := t.TempDir()
	mustKeystep(t, "", "apply", "-f", f, "--data", d)
	rows := len(auditLog(t, d))
	// The file's own problems first (before the database is opened), then
	// the clients it names, against the clients there will be.
	wantExit(t, keystep(t, "", "apply", "-f", writeFile(t, "sms.yaml", policyFile+"  spa:\n    factors: [sms]\n"), "--data", d), 1,
		`client_policies.spa.factors[0]: unknown factor "sms"`)
	ghost := writeFile(t, "ghost.yaml", policyFile+"  ghost:\n    factors: [totp]\n  phantom: {}\n")
	wantExit(t, keystep(t, "", "apply", "-f", ghost, "--data", d), 1,
		`client_policies.ghost: no client "ghost" is registered`, `client_policies.phantom: no client "phantom" is registered`)
	// --prune would delete spa: a policy for it names no client then.
	noSpa := writeFile(t, "nospa.yaml", strings.Replace(strings.Replace(policyFile, "  - id: spa\n    public: true\n    redirect_uris: [http://localhost:3000/cb]\n", "", 1),
		"client_policies:\n", "client_policies:\n  spa:\n    factors: [totp]\n", 1))
	wantExit(t, keystep(t, "", "apply", "-f", noSpa, "--prune", "--data", d), 1, `client_policies.spa: no client "spa" is registered`)
	if n := len(auditLog(t, d)); n != rows {
		t.Errorf("a refused file wrote %d audit rows", n-rows)
	}
	if vs, cs := history(t, d), listClients(t, d); len(vs) != 1 || len(cs) != 2 {
		t.Errorf("after refused files: versions %+v, clients %+v", vs, cs)
	}
	// Without --prune, spa stays registered and may have a policy.
	mustKeystep(t, "", "apply", "-f", noSpa, "--data", d)
}

// export → apply on a new data folder → export gives the same bytes, the
// per-client policy and authorization details types included.
func TestExportApplyExportRoundTripsByteForByte(t *testing.T) {
	fixClock(t, policyT0)
	first := t.TempDir()
	mustKeystep(t, "", "apply", "-f", writeFile(t, "keystep.yaml", policyFile), "--data", first)
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			x1 := mustKeystep(t, "", "export", "--format", format, "--data", first).stdout
			for _, want := range []string{"client_policies", "enroll_during_step_up", "preferred_factor", "authorization_details_types", "payment_initiation", "reports:read"} {
				if !strings.Contains(x1, want) {
					t.Errorf("export lacks %q:\n%s", want, x1)
				}
			}
			second := t.TempDir()
			mustKeystep(t, "", "apply", "-f", writeFile(t, "exported."+format, x1), "--data", second)
			x2 := mustKeystep(t, "", "export", "--format", format, "--data", second).stdout
			if x1 != x2 {
				t.Errorf("the round trip changed the export:\n%s\nthen\n%s", x1, x2)
			}
			// Applied where it came from, it changes nothing.
			if out := applyRun(t, first, writeFile(t, "exported."+format, x1)); out.Changed || out.Policy.Action != "unchanged" {
				t.Errorf("applying the export where it came from: %+v", out)
			}
		})
	}
}

func TestPolicyHistoryShowAndRollback(t *testing.T) {
	fixClock(t, policyT0)
	d := t.TempDir()
	if r := mustKeystep(t, "", "policy", "history", "--data", d); !strings.Contains(r.stdout, "no policy version is stored") {
		t.Errorf("history of nothing:\n%s", r.stdout)
	}
	for _, age := range []string{"10m", "5m", "2m"} {
		mustKeystep(t, "", "apply", "-f", writeFile(t, "keystep.yaml", "admin:\n  max_age: "+age+"\n"), "--reason", "console within "+age, "--data", d)
	}
	vs := history(t, d)
	if len(vs) != 3 || vs[0].Version != 3 || vs[1].Version != 2 || vs[2].Version != 1 || !vs[0].Active || vs[1].Active {
		t.Fatalf("history is not newest first: %+v", vs)
	}
	r := mustKeystep(t, "", "policy", "history", "--data", d)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "3 (active)") || !strings.Contains(lines[1], "console within 2m") ||
		!strings.Contains(lines[1], `~ admin.max_age: "5m" → "2m"`) || !strings.Contains(lines[1], "2026-03-02T09:00:00Z") || !strings.HasPrefix(lines[3], "1 ") {
		t.Errorf("history:\n%s", r.stdout)
	}

	r = mustKeystep(t, "", "policy", "show", "--data", d)
	if !strings.Contains(r.stdout, "# Policy version 3, active:") || !strings.Contains(r.stdout, "max_age: 2m") {
		t.Errorf("show:\n%s", r.stdout)
	}
	if r := mustKeystep(t, "", "policy", "show", "1", "--data", d); !strings.Contains(r.stdout, "max_age: 10m") || strings.Contains(r.stdout, "active") {
		t.Errorf("show 1:\n%s", r.stdout)
	}
	wantExit(t, keystep(t, "", "policy", "show", "9", "--data", d), 1, "no policy version 9")
	wantExit(t, keystep(t, "", "policy", "show", "x", "--data", d), 2, `"x" is not a version number`)

	wantExit(t, keystep(t, "", "policy", "rollback", "1", "--data", d), 2, "--reason is required")
	wantExit(t, keystep(t, "", "policy", "rollback", "1", "--reason", " ", "--data", d), 2, "--reason is required")
	wantExit(t, keystep(t, "", "policy", "rollback", "9", "--reason", "oops", "--data", d), 1, "no policy version 9")
	wantExit(t, keystep(t, "", "policy", "rollback", "1", "--reason", "oops", "--policy-read-only", "--data", d), 1, "read-only")
	if vs := history(t, d); len(vs) != 3 {
		t.Fatalf("refused rollbacks stored versions: %+v", vs)
	}

	r = mustKeystep(t, "", "policy", "rollback", "1", "--reason", "2m locks people out", "--data", d)
	if !strings.Contains(r.stdout, "policy: version 4 is active, with version 1's policy:\n  ~ admin.max_age: \"2m\" → \"10m\"") {
		t.Errorf("rollback:\n%s", r.stdout)
	}
	v4 := shown(t, d, "4")
	if policy.Canonical(*v4.Document) != policy.Canonical(*shown(t, d, "1").Document) || v4.Parent != 3 || !v4.Active ||
		v4.Reason != "rollback to version 1: 2m locks people out" || v4.Author != "cli" {
		t.Errorf("version 4: %+v", v4)
	}
	// Again: version 1's policy is already active.
	if r := mustKeystep(t, "", "policy", "rollback", "1", "--reason", "again", "--data", d); !strings.Contains(r.stdout, "nothing stored") {
		t.Errorf("second rollback:\n%s", r.stdout)
	}
	if vs := history(t, d); len(vs) != 4 {
		t.Errorf("versions: %+v", vs)
	}
	// What show prints applies back as it is.
	shownFile := writeFile(t, "v2.yaml", mustKeystep(t, "", "policy", "show", "2", "--data", d).stdout)
	r = mustKeystep(t, "", "apply", "-f", shownFile, "--data", d)
	if !strings.Contains(r.stdout, "policy: stored version 5 (from version 4):\n  ~ admin.max_age: \"10m\" → \"5m\"") {
		t.Errorf("apply of show's output:\n%s", r.stdout)
	}
	if !bytes.Contains([]byte(mustKeystep(t, "", "policy", "--data", d).stdout), []byte("admin console: phr within 5m")) {
		t.Error("keystep policy does not show the active version")
	}
}

// readmeBlock is the body of the n-th fenced block of kind ("yaml", or ""
// for a plain one) in the README's section under heading.
func readmeBlock(t *testing.T, heading, kind string, n int) string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("the README has no %q", heading)
	}
	section, _, _ = strings.Cut(section, "\n#")
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case !in && line == "```"+kind:
			in, cur = true, nil
		case !in && strings.HasPrefix(line, "```"):
			in, cur = true, []string{"\x00"} // another kind: skipped
		case in && line == "```":
			in = false
			if len(cur) == 0 || cur[0] != "\x00" {
				blocks = append(blocks, strings.Join(cur, "\n")+"\n")
			}
		case in:
			cur = append(cur, line)
		}
	}
	if n >= len(blocks) {
		t.Fatalf("%q has %d blocks of kind %q", heading, len(blocks), kind)
	}
	return blocks[n]
}

// The README's "Policy as data" example applies as shown, and its dry run
// prints what the README says.
func TestREADMEPolicyExample(t *testing.T) {
	fixClock(t, policyT0)
	d := t.TempDir()
	example := readmeBlock(t, "### Policy as data", "yaml", 0)
	f := writeFile(t, "keystep.yaml", example)
	mustKeystep(t, "", "apply", "-f", f, "--data", d)
	got := shown(t, d).Document
	if cp := got.ClientPolicies["payroll"]; cp.ScopeMinACR["payroll:write"] != "phr" || !cp.EnrollDuringStepUp || cp.PreferredFactor != "webauthn" {
		t.Errorf("the example's client policy: %+v", cp)
	}
	if err := os.WriteFile(f, []byte(strings.Replace(example, "max_age: 15m", "max_age: 10m", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustKeystep(t, "", "apply", "-f", f, "--dry-run", "--data", d)
	want := strings.TrimPrefix(readmeBlock(t, "### Policy as data", "", 1), "$ keystep apply -f keystep.yaml --dry-run\n")
	if r.stdout != want {
		t.Errorf("dry run prints\n%s\nthe README says\n%s", r.stdout, want)
	}
}

// Instances starting at once with the same file store it once: the others
// find it stored (or lose the race to the active pointer and look again).
func TestSeedingFromSeveralInstancesAtOnceStoresOneVersion(t *testing.T) {
	d := t.TempDir()
	mustKeystep(t, "", "keys", "list", "--data", d) // the database and the master key
	cfg := writeFile(t, "keystep.yaml", threeLevels)
	set, err := loadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(d, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := readMasterKey(t, d)
	errs := make(chan error, 4)
	for range 4 {
		adm := newAdmin(st, key, set)
		adm.Policies = policy.NewLive(st, set.snap, policy.Options{}, false, nil) // each instance its own
		go func() {
			errs <- seedPolicy(t.Context(), adm, cfg, set.file.Document, policyT0, slog.New(slog.DiscardHandler))
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if vs := history(t, d); len(vs) != 1 || vs[0].Reason != "seeded from --config" {
		t.Errorf("versions: %+v", vs)
	}
}

// A --config policy for clients not registered is not stored: serve stops
// and says what to do; once they are, it is.
func TestServeRefusesToSeedAPolicyForUnregisteredClients(t *testing.T) {
	d := t.TempDir()
	cfg := writeFile(t, "keystep.yaml", threeLevels+"client_policies:\n  payroll:\n    factors: [totp]\n")
	r := keystep(t, "", "serve", "--addr", "127.0.0.1:0", "--data", d, "--config", cfg)
	wantExit(t, r, 1, `client_policies.payroll: no client "payroll" is registered`, "keystep apply -f "+cfg)
	if strings.Contains(r.stdout, "serving") {
		t.Errorf("stdout claims to serve:\n%s", r.stdout)
	}
	if vs := history(t, d); len(vs) != 0 {
		t.Errorf("versions: %+v", vs)
	}
	createClient(t, d, "--id", "payroll", "--redirect-uri", "https://payroll.example/cb")
	startServe(t, "--data", d, "--config", cfg).stop()
	if vs := history(t, d); len(vs) != 1 || vs[0].Author != "config "+cfg {
		t.Errorf("versions: %+v", vs)
	}
}
