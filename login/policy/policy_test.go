package policy_test

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/policy"
)

func intp(n int) *int { return &n }

// Compile reports every problem of a document at once, each named by its
// path; a good document compiles to what it says.
func TestCompile(t *testing.T) {
	known := func(id string) bool { return id == "payroll" || id == "hr" }
	opt := policy.Options{KnownClient: known, LocationsCSV: "geo.csv", ReadFile: func(name string) ([]byte, error) {
		return nil, errors.New("no such file")
	}}
	tests := []struct {
		name string
		doc  policy.Document
		want []string // every problem, in any order; nil: compiles
	}{
		{name: "empty document: the defaults", doc: policy.Document{}},
		{name: "unknown scope minimum", doc: policy.Document{ScopeMinACR: map[string]string{"payroll:write": "gold"}},
			want: []string{`scope_min_acr.payroll:write: unknown acr "gold"`}},
		{name: "bad level freshness and per-factor freshness", doc: policy.Document{Levels: []policy.Level{
			{ACR: "a", Requires: "any", Freshness: "soon"},
			{ACR: "b", Requires: "mfa", PerFactor: map[string]string{"totp": "1 hour"}},
		}}, want: []string{"levels[0].freshness:", "levels[1].per_factor_freshness.totp:"}},
		{name: "levels that do not make a policy: names are not blamed too", doc: policy.Document{
			Levels:      []policy.Level{{ACR: "a", Requires: "bogus"}},
			ScopeMinACR: map[string]string{"s": "nope"},
		}, want: []string{"levels:"}},
		{name: "admin", doc: policy.Document{Admin: &policy.Admin{ACR: "gold", MaxAge: "-5m"}},
			want: []string{`admin.acr: unknown acr "gold"`, "admin.max_age: must be positive"}},
		{name: "risk", doc: policy.Document{Risk: &policy.Risk{
			OnHigh: &policy.RiskAction{Floor: "gold"}, DenyCIDRs: []string{"not a cidr"},
			SuspiciousCIDRs: []string{"10.0.0.0/99"}, LocationsCSV: "geo.csv",
		}}, want: []string{`risk.on_high.floor: unknown acr "gold"`, "risk.deny_cidrs:", "risk.suspicious_cidrs:", "risk.locations_csv geo.csv: no such file"}},
		{name: "a locations file other than the server's own is refused unread", doc: policy.Document{Risk: &policy.Risk{LocationsCSV: "/etc/passwd"}},
			want: []string{`risk.locations_csv: only the file the server's configuration names may be used ("geo.csv")`}},
		{name: "risk thresholds out of order", doc: policy.Document{Risk: &policy.Risk{Medium: intp(80), High: intp(40)}},
			want: []string{"risk:"}},
		{name: "every client problem, with the others", doc: policy.Document{
			ScopeMinACR: map[string]string{"x": "gold"},
			ClientPolicies: map[string]policy.ClientPolicy{
				"ghost": {},
				"payroll": {
					ScopeMinACR:          map[string]string{"payroll:write": "platinum"},
					AccessTokenLifetime:  "0s",
					RefreshTokenLifetime: "a week",
					Factors:              []string{"sms", "totp"},
					PreferredFactor:      "webauthn",
				},
				"hr": {PreferredFactor: "carrier pigeon"},
			},
		}, want: []string{
			`scope_min_acr.x: unknown acr "gold"`,
			`client_policies.ghost: no client "ghost" is registered`,
			`client_policies.payroll.scope_min_acr.payroll:write: unknown acr "platinum"`,
			"client_policies.payroll.access_token_lifetime: must be positive",
			"client_policies.payroll.refresh_token_lifetime:",
			`client_policies.payroll.factors[0]: unknown factor "sms"`,
			`client_policies.payroll.preferred_factor: "webauthn" is not one of the client's factors`,
			`client_policies.hr.preferred_factor: unknown factor "carrier pigeon"`,
		}},
		{name: "authorization details naming an unknown level", doc: policy.Document{AuthorizationDetails: &details.Config{
			Types: []details.Type{{Name: "payment", Title: "Pay", Fields: []details.Field{{Path: "amount", Label: "Amount", Kind: details.KindText}},
				Rules: []details.Rule{{MinACR: "gold"}}}}}},
			want: []string{"authorization_details_types:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := policy.Compile(tt.doc, opt)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				if s.Levels == nil || s.AdminACR == "" || s.AdminMaxAge == 0 || s.Details == nil {
					t.Fatalf("not completed: %+v", s)
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile accepted it; want %d problems", len(tt.want))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w) || strings.Contains(l, w) && strings.HasPrefix(l, strings.SplitN(w, ":", 2)[0])
				}
				if !found {
					t.Errorf("no problem %q in:\n%s", w, err)
				}
			}
		})
	}
}

// A compiled client policy holds what the document says.
func TestCompileClient(t *testing.T) {
	s, err := policy.Compile(policy.Document{ClientPolicies: map[string]policy.ClientPolicy{"payroll": {
		ScopeMinACR: map[string]string{"payroll:write": "phr"}, AccessTokenLifetime: "5m", RefreshTokenLifetime: "8h",
		Factors: []string{"webauthn", "totp"}, PreferredFactor: "totp", EnrollDuringStepUp: true,
	}}}, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Client{ScopeMinACR: map[string]string{"payroll:write": "phr"}, AccessTTL: 5 * time.Minute, RefreshTTL: 8 * time.Hour,
		Factors: []stepup.Method{stepup.WebAuthn, stepup.TOTP}, Preferred: stepup.TOTP, EnrollDuringStepUp: true}
	if diff := cmp.Diff(want, s.Client("payroll")); diff != "" {
		t.Errorf("client (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(policy.Client{}, s.Client("other")); diff != "" {
		t.Errorf("a client without a policy (-want +got):\n%s", diff)
	}
	c := s.Client("payroll")
	for m, want := range map[stepup.Method]bool{stepup.Password: true, stepup.WebAuthn: true, stepup.TOTP: true, stepup.Recovery: false} {
		if got := c.Allows(m); got != want {
			t.Errorf("Allows(%s) = %v, want %v", m, got, want)
		}
	}
	if !(policy.Client{}).Allows(stepup.Recovery) {
		t.Error("a client without factors must allow every factor")
	}
}

// ScopeFloors are the server's and the client's own floors of the
// requested scopes, each once.
func TestScopeFloors(t *testing.T) {
	s, err := policy.Compile(policy.Document{
		ScopeMinACR: map[string]string{"email": "urn:keystep:acr:mfa", "payroll:read": "urn:keystep:acr:mfa"},
		ClientPolicies: map[string]policy.ClientPolicy{
			"payroll": {ScopeMinACR: map[string]string{"payroll:write": "phr", "payroll:read": "urn:keystep:acr:mfa", "email": "phr"}},
		},
	}, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		client string
		scopes []string
		want   []string
	}{
		{"payroll", []string{"openid"}, nil},
		{"payroll", []string{"openid", "payroll:write"}, []string{"phr"}},
		{"other", []string{"openid", "payroll:write"}, nil},
		{"other", []string{"email"}, []string{"urn:keystep:acr:mfa"}},
		{"payroll", []string{"email"}, []string{"urn:keystep:acr:mfa", "phr"}},
		{"payroll", []string{"payroll:read", "email", "payroll:write"}, []string{"urn:keystep:acr:mfa", "phr"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, s.ScopeFloors(tt.client, tt.scopes)); diff != "" {
			t.Errorf("ScopeFloors(%s, %v) (-want +got):\n%s", tt.client, tt.scopes, diff)
		}
	}
}

// Diff lists added, removed and changed values, one line each, in path
// order; equal documents have no diff.
func TestDiff(t *testing.T) {
	a := policy.Document{
		ScopeMinACR: map[string]string{"email": "urn:keystep:acr:mfa", "old": "phr"},
		Admin:       &policy.Admin{MaxAge: "15m"},
	}
	b := policy.Document{
		ScopeMinACR:    map[string]string{"email": "phr"},
		Admin:          &policy.Admin{MaxAge: "15m"},
		ClientPolicies: map[string]policy.ClientPolicy{"payroll": {ScopeMinACR: map[string]string{"payroll:write": "phr"}, Factors: []string{"webauthn"}}},
	}
	want := strings.Join([]string{
		`+ client_policies.payroll.factors[0]: "webauthn"`,
		`+ client_policies.payroll.scope_min_acr.payroll:write: "phr"`,
		`~ scope_min_acr.email: "urn:keystep:acr:mfa" → "phr"`,
		`- scope_min_acr.old: "phr"`,
	}, "\n")
	if diff := cmp.Diff(want, policy.Diff(a, b)); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
	if d := policy.Diff(b, b); d != "" {
		t.Errorf("Diff of equal documents: %q", d)
	}
	if d := policy.Diff(policy.Document{}, policy.Document{Levels: []policy.Level{}}); d != "" {
		t.Errorf("an omitted empty list is no change: %q", d)
	}
}

// Canonical is stable and Parse reads it back to the same document;
// Parse refuses unknown fields.
func TestCanonicalParse(t *testing.T) {
	docs := []policy.Document{
		{},
		{
			Levels:      []policy.Level{{ACR: "a", Requires: "any"}, {ACR: "b", Aliases: []string{"bb"}, Requires: "phr", Freshness: "1h", PerFactor: map[string]string{"webauthn": "30m"}}},
			ScopeMinACR: map[string]string{"z": "b", "a": "a"},
			Risk:        &policy.Risk{Weights: map[string]int{"new_device": 5}, Medium: intp(30), OnMedium: &policy.RiskAction{Floor: "b"}, DenyCIDRs: []string{"10.0.0.0/8"}},
			Admin:       &policy.Admin{ACR: "b", MaxAge: "10m"},
			ClientPolicies: map[string]policy.ClientPolicy{
				"payroll": {ScopeMinACR: map[string]string{"payroll:write": "b"}, AccessTokenLifetime: "5m", Factors: []string{"webauthn"}, PreferredFactor: "webauthn", EnrollDuringStepUp: true},
			},
		},
	}
	for i, doc := range docs {
		raw := policy.Canonical(doc)
		got, err := policy.Parse(raw)
		if err != nil {
			t.Fatalf("doc %d: Parse(Canonical): %v", i, err)
		}
		if diff := cmp.Diff(doc, got); diff != "" {
			t.Errorf("doc %d: round trip (-want +got):\n%s", i, diff)
		}
		if again := policy.Canonical(got); again != raw {
			t.Errorf("doc %d: Canonical not stable:\n%s\n%s", i, raw, again)
		}
	}
	if _, err := policy.Parse(`{"levels":[],"surprise":1}`); err == nil {
		t.Error("Parse accepted an unknown field")
	}
	if _, err := policy.Parse(`{"client_policies":{"p":{"factors":"totp"}}}`); err == nil {
		t.Error("Parse accepted a wrong type")
	}
}

// The server's own locations file is read only when it is a regular file:
// a FIFO or a device could block for ever or never end.
func TestLocationsFileMustBeRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "geo.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	_, err := policy.Compile(policy.Document{Risk: &policy.Risk{LocationsCSV: fifo}}, policy.Options{LocationsCSV: fifo})
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a FIFO as the locations file: %v", err)
	}
}
