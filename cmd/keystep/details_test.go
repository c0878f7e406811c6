package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/storage"
)

// detailsYAML is the README's example: the payment_initiation policy of
// details.ExampleConfig, with a client registered for it.
const detailsYAML = `authorization_details_types:
  types:
    - name: payment_initiation
      title: Pay an invoice
      fields:
        - {path: instructedAmount.amount, label: Amount, kind: amount, currency: instructedAmount.currency}
        - {path: instructedAmount.currency, label: Currency, kind: currency}
        - {path: creditorName, label: To, kind: text}
        - {path: creditorAccount.iban, label: Account, kind: iban}
        - {path: remittanceInformationUnstructured, label: Reference, kind: text}
      required: [instructedAmount.amount, instructedAmount.currency, creditorName]
      actions: [initiate, status, cancel]
      rules:
        - {min_acr: "urn:keystep:acr:mfa", max_age: 15m}
        - if: {path: instructedAmount.amount, above: "1000", currency: EUR}
          min_acr: phr
          max_age: 5m
clients:
  - id: payroll
    redirect_uris: [https://payroll.example/cb]
    authorization_details_types: [payment_initiation]
`

// The policy in the config file becomes the registry serve hands the
// server, with the demands of the package's example.
func TestConfigAuthorizationDetailsTypes(t *testing.T) {
	s, err := loadConfig(writeFile(t, "keystep.yaml", detailsYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.details.Types(); !slices.Equal(got, []string{details.PaymentInitiation}) {
		t.Fatalf("types %v", got)
	}
	d, err := details.Parse(`[{"type":"payment_initiation","instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":"Example Supplies Ltd"}]`)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.details.Check(d, []string{details.PaymentInitiation}); err != nil {
		t.Fatal(err)
	}
	want := details.ExamplePayments("urn:keystep:acr:mfa", "phr").Demands(d)
	if got := s.details.Demands(d); !slices.Equal(got, want) || len(got) != 2 || got[1].MinACR != "phr" {
		t.Errorf("Demands %+v; want %+v", got, want)
	}

	stop := errors.New("stop before serving")
	var got *details.Registry
	prev := newServer
	newServer = func(_ context.Context, cfg idp.Config) (*idp.Server, error) {
		got = cfg.Details
		return nil, stop
	}
	t.Cleanup(func() { newServer = prev })
	wantExit(t, keystep(t, "", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", writeFile(t, "k.yaml", detailsYAML)), 1, stop.Error())
	if !slices.Equal(got.Types(), []string{details.PaymentInitiation}) {
		t.Errorf("serve passed %v", got.Types())
	}
}

// Every problem of the policy is reported with the file's other problems,
// the acr names checked against the file's own levels.
func TestConfigAuthorizationDetailsTypesProblems(t *testing.T) {
	bad := strings.NewReplacer(
		"kind: currency}", "kind: money}",
		`min_acr: "urn:keystep:acr:mfa"`, `min_acr: gold`,
		"creditorName]", "creditorName, debtorName]",
	).Replace(detailsYAML) + "product_name: 7\n"
	_, err := loadConfig(writeFile(t, "keystep.yaml", strings.Replace(bad, "product_name: 7\n", "colour: red\n", 1)))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`authorization_details_types: authorization details type 1 ("payment_initiation"): field "instructedAmount.currency" has unknown kind "money"`,
		`rule 1: min_acr "gold" is not a configured level`,
		`required "debtorName" is not one of its fields`,
		`unknown field "colour"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	// The levels the rules name are the file's: phrh alone is not enough
	// when the file has no such level.
	levels := "levels:\n  - {acr: basic, requires: any}\n  - {acr: strong, requires: phr}\n"
	_, err = loadConfig(writeFile(t, "levels.yaml", levels+detailsYAML))
	if err == nil || !strings.Contains(err.Error(), `min_acr "urn:keystep:acr:mfa" is not a configured level`) || !strings.Contains(err.Error(), `min_acr "phr" is not a configured level`) {
		t.Errorf("rules against the file's levels: %v", err)
	}
	if _, err := loadConfig(writeFile(t, "ok.yaml", levels+strings.NewReplacer(`"urn:keystep:acr:mfa"`, "basic", "min_acr: phr", "min_acr: strong").Replace(detailsYAML))); err != nil {
		t.Errorf("the file's own levels: %v", err)
	}

	// An unknown key in a rule is caught too (max_age is a rule's own key,
	// not an unknown one).
	_, err = loadConfig(writeFile(t, "rule.yaml", strings.Replace(detailsYAML, "max_age: 5m", "max_age: 5m\n          max_agee: 1m", 1)))
	if err == nil || !strings.Contains(err.Error(), "max_agee") {
		t.Errorf("unknown rule key: %v", err)
	}
	// A client may register only types of the policy.
	_, err = loadConfig(writeFile(t, "client.yaml", strings.Replace(detailsYAML, "[payment_initiation]", "[payment_initiation, refund]", 1)))
	if err == nil || !strings.Contains(err.Error(), `clients[0] (payroll).authorization_details_types: authorization details type "refund" is not in the server's policy`) {
		t.Errorf("unregistered client type: %v", err)
	}
}

// apply registers the client's types and checks them against the file's
// policy; export writes both back and applying the export changes nothing.
func TestApplyAndExportAuthorizationDetailsTypes(t *testing.T) {
	d := t.TempDir()
	f := writeFile(t, "keystep.yaml", detailsYAML)
	mustKeystep(t, "", "apply", "-f", f, "--data", d)
	withStore(t, d, func(st storage.Store) {
		c, err := st.ClientByID(t.Context(), "payroll")
		if err != nil || !slices.Equal(c.AuthorizationDetailsTypes, []string{details.PaymentInitiation}) {
			t.Fatalf("stored %+v %v", c.AuthorizationDetailsTypes, err)
		}
	})
	out := filepath.Join(t.TempDir(), "exported.yaml")
	mustKeystep(t, "", "export", "--config", f, "-o", out, "--data", d)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"authorization_details_types:\n  types:\n    - name: payment_initiation", "max_age: 5m", "above: \"1000\"", "authorization_details_types:\n      - payment_initiation"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("export lacks %q:\n%s", want, raw)
		}
	}
	exported, err := loadConfig(out)
	if err != nil || !slices.Equal(exported.details.Types(), []string{details.PaymentInitiation}) {
		t.Fatalf("the export does not load back: %v", err)
	}
	if o := applyRun(t, d, out); o.Changed {
		t.Errorf("applying the export changed something: %+v", o)
	}
	// Dropping the type from the client is a change apply names.
	r := mustKeystep(t, "", "apply", "-f", writeFile(t, "less.yaml", strings.Replace(detailsYAML, "    authorization_details_types: [payment_initiation]\n", "", 1)), "--dry-run", "--data", d)
	if !strings.Contains(r.stdout, "authorization_details_types: [payment_initiation] → (none)") {
		t.Errorf("dry run:\n%s", r.stdout)
	}
}

func TestClientsFlagAuthorizationDetailsTypes(t *testing.T) {
	d := t.TempDir()
	cfg := writeFile(t, "keystep.yaml", detailsYAML)
	c := createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb", "--config", cfg, "--authorization-details-types", "payment_initiation")
	if !slices.Equal(c.AuthorizationDetailsTypes, []string{details.PaymentInitiation}) {
		t.Fatalf("created %+v", c)
	}
	r := mustKeystep(t, "", "clients", "show", "rp", "--data", d)
	if !strings.Contains(r.stdout, "authorization_details_types:\n  - payment_initiation") {
		t.Errorf("show:\n%s", r.stdout)
	}

	// With --config, a type the policy lacks is refused and changes
	// nothing; the form of the names is checked without it too.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a type the policy lacks", []string{"--config", cfg, "--authorization-details-types", "payment_initiation,account_change"}, `authorization details type "account_change" is not in the server's policy (authorization_details_types; registered: payment_initiation)`},
		{"no policy at all in the file", []string{"--config", writeFile(t, "empty.yaml", "product_name: Acme\n"), "--authorization-details-types", "payment_initiation"}, "none are registered"},
		{"upper case", []string{"--authorization-details-types", "Payment"}, `authorization details type "Payment": use at most 64 characters of a-z, 0-9 and _ . : -`},
		{"too long", []string{"--authorization-details-types", strings.Repeat("a", 65)}, "use at most 64 characters"},
		{"twice", []string{"--authorization-details-types", "a,b,a"}, `authorization details type "a" is listed twice`},
		{"too many", []string{"--authorization-details-types", manyTypes(33)}, "authorization details types: at most 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			args := append([]string{"clients", "create", "--id", "x", "--redirect-uri", "https://x.example/cb", "--data", d}, tc.args...)
			wantExit(t, keystep(t, "", args...), 2, tc.want)
			noFile(t, filepath.Join(d, "keystep.db"))
		})
	}

	// update: without --config only the form is checked, so an operator
	// can register a type before the server's file has it.
	r = mustKeystep(t, "", "clients", "update", "rp", "--authorization-details-types", "payment_initiation,account_change", "--data", d)
	if !strings.Contains(r.stdout, "authorization_details_types: [payment_initiation] → [payment_initiation account_change]") {
		t.Errorf("update:\n%s", r.stdout)
	}
	rows := len(auditLog(t, d))
	wantExit(t, keystep(t, "", "clients", "update", "rp", "--config", cfg, "--authorization-details-types", "refund", "--data", d), 2, `"refund" is not in the server's policy`)
	if n := len(auditLog(t, d)); n != rows {
		t.Errorf("a refused update wrote %d audit rows", n-rows)
	}
	r = mustKeystep(t, "", "clients", "update", "rp", "--authorization-details-types", "", "--data", d)
	if !strings.Contains(r.stdout, "→ (none)") {
		t.Errorf("clearing:\n%s", r.stdout)
	}
}

// manyTypes is n distinct type names, comma-separated.
func manyTypes(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = "type" + strconv.Itoa(i)
	}
	return strings.Join(names, ",")
}

// The README's example is the one tested here, so a newcomer can paste it.
func TestREADMEDetailsExample(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "```yaml\n"+"authorization_details_types:\n")
	block, _, _ = strings.Cut(block, "```\n")
	if !ok || "authorization_details_types:\n"+block != detailsYAML {
		t.Errorf("the README's authorization_details_types example differs from detailsYAML:\n%s", block)
	}
}
