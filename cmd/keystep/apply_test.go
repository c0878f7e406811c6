package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

const applyFile = `# Acme's Keystep
product_name: Acme ID
scope_min_acr:
  payroll.write: phr
admin:
  acr: phr
  max_age: 10m
clients:
  - id: payroll
    name: Acme Payroll
    redirect_uris: [https://payroll.example/cb]
    post_logout_redirect_uris: [https://payroll.example/bye]
    id_token_alg: ES256
    min_acr: urn:keystep:acr:mfa
    first_party: true
  - id: spa
    public: true
    redirect_uris: [http://localhost:3000/cb]
  - id: svc
    grant_types: [client_credentials]
    jwks:
      keys:
        - kty: EC
          crv: P-256
          x: f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU
          y: x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0
`

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type applyJSON struct {
	Changed bool           `json:"changed"`
	Clients []clientChange `json:"clients"`
	Policy  policyChange   `json:"policy"`
}

func applyRun(t *testing.T, data, file string, extra ...string) applyJSON {
	t.Helper()
	r := mustKeystep(t, "", append([]string{"apply", "-f", file, "--json", "--data", data}, extra...)...)
	var out applyJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("apply --json: %v\n%s", err, r.stdout)
	}
	return out
}

func TestApplyTwiceChangesNothingTheSecondTime(t *testing.T) {
	d := t.TempDir()
	f := writeFile(t, "keystep.yaml", applyFile)
	r := mustKeystep(t, "", "apply", "-f", f, "--data", d)
	for _, want := range []string{"created payroll", "created spa", "created svc", "client secret for payroll (shown once"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("first apply does not say %q:\n%s", want, r.stdout)
		}
	}
	secret := r.stdout[strings.Index(r.stdout, "stored hashed): ")+len("stored hashed): "):]
	secret = strings.TrimSpace(strings.SplitN(secret, "\n", 2)[0])
	withStore(t, d, func(st storage.Store) {
		c, err := st.ClientByID(t.Context(), "payroll")
		if err != nil || c.SecretHash != factor.HashToken(secret) || c.MinACR != "urn:keystep:acr:mfa" || !c.FirstParty || c.IDTokenAlg != "ES256" {
			t.Fatalf("payroll %+v %v", c, err)
		}
		svc, _ := st.ClientByID(t.Context(), "svc")
		if svc.AuthMethod != "private_key_jwt" || svc.JWKS == "" || svc.SecretHash != "" {
			t.Fatalf("svc %+v", svc)
		}
		spa, _ := st.ClientByID(t.Context(), "spa")
		if spa.AuthMethod != "none" || !spa.RequirePKCE || spa.SecretHash != "" {
			t.Fatalf("spa %+v", spa)
		}
	})
	rows := len(auditLog(t, d))

	r = mustKeystep(t, "", "apply", "-f", f, "--data", d)
	if !strings.Contains(r.stdout, "no changes: 3 clients already match keystep.yaml") || strings.Contains(r.stdout, "secret") {
		t.Errorf("second apply:\n%s", r.stdout)
	}
	if out := applyRun(t, d, f); out.Changed {
		t.Errorf("third apply --json says changed: %+v", out)
	}
	if n := len(auditLog(t, d)); n != rows {
		t.Errorf("applying an unchanged file wrote %d audit rows", n-rows)
	}
}

func TestApplyUpdatesWithBeforeAndAfterAndPrunesOnlyWhenAsked(t *testing.T) {
	d := t.TempDir()
	f := writeFile(t, "keystep.yaml", applyFile)
	mustKeystep(t, "", "apply", "-f", f, "--data", d)
	createClient(t, d, "--id", "legacy", "--redirect-uri", "https://legacy.example/cb")

	changed := writeFile(t, "keystep.yaml", strings.Replace(applyFile, "min_acr: urn:keystep:acr:mfa", "min_acr: phr", 1))
	r := mustKeystep(t, "", "apply", "-f", changed, "--dry-run", "--data", d)
	if !strings.Contains(r.stdout, "would update payroll: min_acr: urn:keystep:acr:mfa → phr") || !strings.Contains(r.stdout, "legacy") {
		t.Errorf("dry run:\n%s", r.stdout)
	}
	withStore(t, d, func(st storage.Store) {
		if c, _ := st.ClientByID(t.Context(), "payroll"); c.MinACR != "urn:keystep:acr:mfa" {
			t.Error("a dry run changed the client")
		}
	})

	r = mustKeystep(t, "", "apply", "-f", changed, "--data", d)
	if !strings.Contains(r.stdout, "updated payroll: min_acr: urn:keystep:acr:mfa → phr") || !strings.Contains(r.stdout, "not in the file, kept (--prune deletes them): legacy") {
		t.Errorf("apply:\n%s", r.stdout)
	}
	var ev auditJSON
	for _, e := range auditLog(t, d) {
		if e.Type == "admin.client_updated" && e.ClientID == "payroll" {
			ev = e
		}
	}
	if !strings.Contains(ev.Details["before"], `"min_acr":"urn:keystep:acr:mfa"`) || !strings.Contains(ev.Details["after"], `"min_acr":"phr"`) || ev.ActorID != "cli" || !strings.Contains(ev.Reason, "keystep apply") {
		t.Errorf("update audit %+v", ev)
	}
	// The secret survives an update.
	withStore(t, d, func(st storage.Store) {
		if c, _ := st.ClientByID(t.Context(), "payroll"); c.SecretHash == "" {
			t.Error("the update dropped the secret")
		}
	})

	out := applyRun(t, d, changed, "--prune")
	if !out.Changed || len(out.Clients) != 4 || out.Clients[3].ID != "legacy" || out.Clients[3].Action != "deleted" {
		t.Errorf("prune: %+v", out)
	}
	if got := listClients(t, d); len(got) != 3 {
		t.Errorf("clients after prune: %+v", got)
	}
}

// A file with any problem is refused whole, every problem named, and the
// data folder is not touched.
func TestApplyRefusesABrokenFileAndChangesNothing(t *testing.T) {
	d := t.TempDir()
	mustKeystep(t, "", "apply", "-f", writeFile(t, "keystep.yaml", applyFile), "--data", d)
	rows := len(auditLog(t, d))
	broken := writeFile(t, "broken.yaml", `
levels:
  - {acr: basic, requires: any}
  - {acr: strong, requires: mfa, freshness: soon}
scope_min_acr: {payroll.write: gold}
clients:
  - id: payroll
    redirect_uris: [http://payroll.example/cb]
    min_acr: strong
  - id: payroll
    public: true
    grant_types: [client_credentials]
  - id: new-one
    redirect_uris: [https://new.example/cb#x]
    colour: blue
  - id: keystep-account
    redirect_uris: [https://x.example/cb]
`)
	r := keystep(t, "", "apply", "-f", broken, "--data", d)
	wantExit(t, r, 1,
		`clients[2]: unknown field "colour"`,
		`levels[1].freshness`,
		`scope_min_acr.payroll.write: unknown acr "gold"`,
		`clients[0] (payroll).redirect_uris: redirect URI "http://payroll.example/cb" must use https`,
		`public clients cannot use client_credentials`,
		`client ID "payroll" is also clients[0]`,
		`must not have a fragment`,
		`built-in client`,
	)
	if n := len(auditLog(t, d)); n != rows {
		t.Errorf("a refused file wrote %d audit rows", n-rows)
	}
	if got := listClients(t, d); len(got) != 3 {
		t.Errorf("clients after a refused file: %+v", got)
	}
	withStore(t, d, func(st storage.Store) {
		if _, err := st.ClientByID(t.Context(), "new-one"); err == nil {
			t.Error("a client of the refused file was created")
		}
	})
	// A fresh data folder is not even created.
	fresh := filepath.Join(t.TempDir(), "data")
	wantExit(t, keystep(t, "", "apply", "-f", broken, "--data", fresh), 1)
	noFile(t, fresh)
}

func TestApplyRefusesBadYAMLAndBadArguments(t *testing.T) {
	tests := []struct {
		name, body string
		args       []string
		code       int
		want       string
	}{
		{"a key given twice", "clients:\n  - id: a\n    id: b\n", nil, 1, `mapping key "id" already defined`},
		{"not a mapping", "just words\n", nil, 1, "YAML mapping"},
		{"unclosed list", "clients: [\n", nil, 1, "YAML"},
		{"no file", "", []string{"apply", "--data"}, 2, "-f FILE is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "data")
			args := tt.args
			if args == nil {
				args = []string{"apply", "-f", writeFile(t, "k.yaml", tt.body), "--data"}
			}
			wantExit(t, keystep(t, "", append(args, d)...), tt.code, tt.want)
			noFile(t, d)
		})
	}
}

// export writes what apply reads: applying an export changes nothing.
func TestExportRoundTrips(t *testing.T) {
	d := t.TempDir()
	cfg := writeFile(t, "keystep.yaml", applyFile)
	mustKeystep(t, "", "apply", "-f", cfg, "--data", d)
	mustKeystep(t, "", "clients", "create", "--id", "legacy", "--redirect-uri", "https://legacy.example/cb", "--strict", "--data", d)

	for _, name := range []string{"exported.yaml", "exported.json"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), name)
			r := mustKeystep(t, "", "export", "--config", cfg, "-o", out, "--data", d)
			if !strings.Contains(r.stdout, "4 clients") {
				t.Errorf("export: %s", r.stdout)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			body := string(raw)
			// The policy is the stored version apply made of the file.
			for _, want := range []string{"payroll.write", "Acme ID", "10m", "legacy"} {
				if !strings.Contains(body, want) {
					t.Errorf("export lacks %q:\n%s", want, body)
				}
			}
			if strings.Contains(body, "secret:") || strings.Contains(body, `"secret"`) || strings.Contains(body, "keystep-account") {
				t.Errorf("export holds a secret or the built-in client:\n%s", body)
			}
			if name == "exported.json" && !json.Valid(raw) {
				t.Errorf("not JSON:\n%s", body)
			}
			if o := applyRun(t, d, out); o.Changed {
				t.Errorf("applying the export changed something: %+v", o)
			}
		})
	}
	// Without -o it goes to standard output.
	r := mustKeystep(t, "", "export", "--data", d)
	if !strings.HasPrefix(r.stdout, "# Keystep configuration") || !strings.Contains(r.stdout, "clients:") {
		t.Errorf("export to stdout:\n%s", r.stdout)
	}
	// With no version stored and no --config, the built-in policy is
	// spelled out: a starting point to edit.
	r = mustKeystep(t, "", "export", "--data", t.TempDir())
	for _, want := range []string{"levels:", "urn:keystep:acr:mfa", "on_high:", "max_age: 15m"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("export of a new data folder lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestServeReadsAYAMLConfigWithClientsAndAdmin(t *testing.T) {
	p := writeFile(t, "keystep.yaml", applyFile)
	s, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.productName != "Acme ID" || s.adminACR != "phr" || s.adminMaxAge != 10*time.Minute || len(s.clients) != 3 || s.scopeMinACR["payroll.write"] != "phr" {
		t.Errorf("settings %+v", s)
	}
	bad := writeFile(t, "bad.yaml", "admin:\n  acr: gold\n  max_age: -1m\n")
	if _, err := loadConfig(bad); err == nil || !strings.Contains(err.Error(), `admin.acr: unknown acr "gold"`) || !strings.Contains(err.Error(), "admin.max_age") {
		t.Errorf("bad admin section: %v", err)
	}
}

// The console's client actions have subcommands too.
func TestClientsShowUpdateRotate(t *testing.T) {
	d := t.TempDir()
	created := createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")

	r := mustKeystep(t, "", "clients", "update", "rp", "--min-acr", "phr", "--first-party", "--data", d)
	if !strings.Contains(r.stdout, "min_acr: (none) → phr") || !strings.Contains(r.stdout, "first_party: false → true") {
		t.Errorf("update:\n%s", r.stdout)
	}
	r = mustKeystep(t, "", "clients", "update", "rp", "--min-acr", "phr", "--data", d)
	if !strings.Contains(r.stdout, "no changes") {
		t.Errorf("second update:\n%s", r.stdout)
	}
	wantExit(t, keystep(t, "", "clients", "update", "rp", "--redirect-uri", "http://rp.example/cb", "--data", d), 2, "must use https")
	r = mustKeystep(t, "", "clients", "update", "rp", "--rate-limit", "5000", "--data", d)
	if !strings.Contains(r.stdout, "rate_limit: (default) → 5000") {
		t.Errorf("update --rate-limit:\n%s", r.stdout)
	}
	wantExit(t, keystep(t, "", "clients", "update", "rp", "--rate-limit", "-5", "--data", d), 2, "rate limit -5")

	r = mustKeystep(t, "", "clients", "show", "rp", "--json", "--data", d)
	var shown struct {
		ID         string   `json:"id"`
		MinACR     string   `json:"min_acr"`
		FirstParty bool     `json:"first_party"`
		Redirects  []string `json:"redirect_uris"`
		HasSecret  bool     `json:"has_secret"`
		RateLimit  int      `json:"rate_limit"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || shown.MinACR != "phr" || !shown.FirstParty || shown.RateLimit != 5000 || !shown.HasSecret || shown.Redirects[0] != "https://rp.example/cb" {
		t.Errorf("show: %+v %v\n%s", shown, err, r.stdout)
	}
	if strings.Contains(r.stdout, created.Secret) {
		t.Error("show prints the secret")
	}

	r = mustKeystep(t, "", "clients", "rotate-secret", "rp", "--json", "--data", d)
	var rot map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &rot); err != nil || len(rot["secret"]) < 20 || rot["secret"] == created.Secret {
		t.Fatalf("rotate: %v %s", err, r.stdout)
	}
	withStore(t, d, func(st storage.Store) {
		if c, _ := st.ClientByID(t.Context(), "rp"); c.SecretHash != factor.HashToken(rot["secret"]) {
			t.Error("the stored hash is not the new secret's")
		}
	})
	events := auditLog(t, d)
	for _, typ := range []storage.EventType{"admin.client_updated", "admin.client_secret_rotated"} {
		found := false
		for _, e := range events {
			if e.Type == typ && e.ActorID == "cli" && e.Details["before"] != "" && e.Details["after"] != "" && !strings.Contains(e.Details["after"], rot["secret"]) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s event with before and after", typ)
		}
	}
	createClient(t, d, "--id", "spa", "--redirect-uri", "https://spa.example/cb", "--public")
	wantExit(t, keystep(t, "", "clients", "rotate-secret", "spa", "--data", d), 1, "does not authenticate with a secret")
}

func TestUsersShowSignoutAndResetNeedsAReason(t *testing.T) {
	d := t.TempDir()
	alice := createUser(t, d, "alice")
	t0 := fixClock(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) // users show lists the sessions live by its clock
	withStore(t, d, func(st storage.Store) {
		if err := st.CreateSession(t.Context(), storage.Session{ID: "s1", UserID: alice.ID, IP: "192.0.2.7", UserAgent: "Firefox", CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateFactor(t.Context(), storage.Factor{ID: "f1", UserID: alice.ID, Kind: "totp", Name: "Phone", Secret: []byte("sealed"), CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	})
	r := mustKeystep(t, "", "users", "show", "alice", "--data", d)
	for _, want := range []string{"alice", "Phone", "192.0.2.7", "admin.user_created"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustKeystep(t, "", "users", "show", "alice", "--json", "--data", d)
	var shown struct {
		Factors  []map[string]any `json:"factors"`
		Sessions []map[string]any `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || len(shown.Factors) != 1 || len(shown.Sessions) != 1 || strings.Contains(r.stdout, "sealed") {
		t.Errorf("show --json: %v\n%s", err, r.stdout)
	}

	wantExit(t, keystep(t, "", "users", "reset-factors", "alice", "--data", d), 2, "--reason is required")
	mustKeystep(t, "", "users", "signout", "alice", "--data", d)
	withStore(t, d, func(st storage.Store) {
		if ss, _ := st.ListUserSessions(t.Context(), alice.ID, t0); len(ss) != 0 {
			t.Errorf("sessions after signout: %d", len(ss))
		}
		if fs, _ := st.ListFactors(t.Context(), alice.ID); len(fs) != 1 {
			t.Error("factors changed without a reason")
		}
	})
	ev := auditLog(t, d)
	signout, ended := ev[len(ev)-2], ev[len(ev)-1]
	if signout.Type != "admin.user_signout" || signout.Details["before"] != `{"sessions":1}` || signout.Details["after"] != `{"sessions":0}` {
		t.Errorf("signout audit %+v", signout)
	}
	if ended.Type != "session.revoked_all" || ended.Details["sessions"] != "1" || ended.ActorID != "cli" {
		t.Errorf("ended access audited as %+v", ended)
	}
}

func TestAuditExportFilters(t *testing.T) {
	d := t.TempDir()
	createUser(t, d, "alice")
	createUser(t, d, "bob")
	mustKeystep(t, "", "users", "disable", "bob", "--data", d)
	createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")
	count := func(args ...string) int {
		r := mustKeystep(t, "", append([]string{"audit", "export", "--data", d}, args...)...)
		return strings.Count(r.stdout, "\n")
	}
	for _, tt := range []struct {
		args []string
		want int
	}{
		{nil, 5}, // disabling bob also records that his sessions and tokens ended
		{[]string{"--user", "bob"}, 3},
		{[]string{"--event", "admin.user_created"}, 2},
		{[]string{"--client", "rp"}, 1},
		{[]string{"--outcome", "failure"}, 0},
		{[]string{"--until", "2000-01-01T00:00:00Z"}, 0},
	} {
		if got := count(tt.args...); got != tt.want {
			t.Errorf("audit export %v: %d rows, want %d", tt.args, got, tt.want)
		}
	}
}

func TestPolicyShowsLevelsAndChecksClients(t *testing.T) {
	d := t.TempDir()
	mustKeystep(t, "", "apply", "-f", writeFile(t, "keystep.yaml", applyFile), "--data", d)
	r := mustKeystep(t, "", "policy", "--data", d)
	// apply stored the file's policy (admin max_age 10m): it is in force.
	for _, want := range []string{"policy version 1 (stored", "urn:keystep:acr:mfa", "admin console: phr within 10m", "sessions: end after 12h idle, 12h after sign-in at most", "ok clients: 3 clients valid"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("policy lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := mustKeystep(t, "", "policy", "check", "--data", d); !strings.Contains(r.stdout, "admin console: phr within 10m") {
		t.Errorf("policy check:\n%s", r.stdout)
	}
	// With levels that no longer have the clients' minimum, the check
	// fails: the file decides with --policy-read-only, the stored version
	// otherwise.
	cfg := writeFile(t, "levels.json", `{"levels": [{"acr": "basic", "requires": "any"}, {"acr": "phr", "requires": "phr"}]}`)
	mustKeystep(t, "", "policy", "--config", cfg, "--data", d)
	r = keystep(t, "", "policy", "--config", cfg, "--policy-read-only", "--data", d)
	// The default risk rules' medium floor is not one of these levels either.
	wantExit(t, r, 1, "2 policy problems")
	if !strings.Contains(r.stdout, `!! client payroll: minimum acr "urn:keystep:acr:mfa" is not a configured level`) || !strings.Contains(r.stdout, `!! risk medium: floor "urn:keystep:acr:mfa"`) {
		t.Errorf("policy:\n%s", r.stdout)
	}
}
