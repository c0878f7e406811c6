package conformance

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/storage"
)

// The console edits the policy (issue 21): every problem at once and
// nothing stored, a save only from the version the page showed, history
// and rollback, an impact preview over the recorded sign-ins, the client
// page's own section, and none of it on a read-only server.

// activePolicy is the stored active version's number and document.
func (e *env) activePolicy() (int64, policy.Document) {
	e.t.Helper()
	ctx := context.Background()
	n, err := e.store.ActivePolicyNumber(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if n == 0 {
		return 0, policy.Document{}
	}
	v, err := e.store.PolicyVersionByNumber(ctx, n)
	if err != nil {
		e.t.Fatal(err)
	}
	doc, err := policy.Parse(v.Document)
	if err != nil {
		e.t.Fatal(err)
	}
	return n, doc
}

// keepAdmin keeps the console at adminEnv's level: the test server's
// policy comes from its Config, not a document, so a stored document
// without admin.acr would raise the console to the default phr.
const keepAdmin = "admin:\n  acr: urn:keystep:acr:mfa\n"

func wantBody(t *testing.T, p page, status int, want ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d\n%.4000s", p.status, status, p.body)
	}
	for _, w := range want {
		// As a person reads it: the text's entities (&#39;) decoded.
		if !strings.Contains(p.body, w) && !strings.Contains(html.UnescapeString(p.body), w) {
			t.Errorf("the page lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("%.6000s", p.body)
	}
}

func TestAdminPolicyEditorListsEveryProblemAndSavesNothing(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	p := b.get(e.issuer + "/admin/policy")
	wantBody(t, p, http.StatusOK, `name="document"`, `name="parent" value="0"`, "Save and activate", "Preview impact",
		"No version is stored yet", "What would happen?")
	before := e.auditCount()
	bad := "scope_min_acr:\n  payroll:write: nope\nrisk:\n  medium: 0\nclient_policies:\n  ghost:\n    factors: [sms]\ntypo: 1\n"
	for _, action := range []string{"check", "preview", "save"} {
		p = b.post("/admin/policy", url.Values{"document": {bad}, "parent": {"0"}, "reason": {"try"}, "action": {action}})
		wantBody(t, p, http.StatusBadRequest, "Nothing was saved", "Fix these 5 problems",
			"typo", `scope_min_acr.payroll:write: unknown acr &#34;nope&#34;`, "risk:",
			`client_policies.ghost: no client &#34;ghost&#34; is registered`, `client_policies.ghost.factors[0]: unknown factor &#34;sms&#34;`,
			// What was typed stays in the editor.
			"payroll:write: nope")
	}
	p = b.post("/admin/policy", url.Values{"document": {"levels: [oops"}, "parent": {"0"}, "reason": {"try"}, "action": {"save"}})
	wantBody(t, p, http.StatusBadRequest, "The document couldn&#39;t be read: YAML")
	if n, _ := e.activePolicy(); n != 0 {
		t.Errorf("version %d stored from a refused document", n)
	}
	if n := e.auditCount(); n != before {
		t.Errorf("%d audit rows for refused documents", n-before)
	}
	// A clean document checks fine and is still not stored.
	p = b.post("/admin/policy", url.Values{"document": {keepAdmin + "scope_min_acr:\n  payroll:write: phr\n"}, "parent": {"0"}, "action": {"check"}})
	wantBody(t, p, http.StatusOK, "No problems found. Nothing was saved yet.")
	if n, _ := e.activePolicy(); n != 0 {
		t.Errorf("check stored version %d", n)
	}
}

func TestAdminPolicySaveActivatesFromTheVersionShownAndRollsBack(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	doc1 := "scope_min_acr:\n  payroll:write: phr\n"
	// No reason: refused, nothing stored.
	p := b.post("/admin/policy", url.Values{"document": {keepAdmin + doc1}, "parent": {"0"}, "action": {"save"}})
	wantBody(t, p, http.StatusBadRequest, "Say why you are changing the policy")
	if n, _ := e.activePolicy(); n != 0 {
		t.Fatalf("saved without a reason: version %d", n)
	}
	p = b.post("/admin/policy", url.Values{"document": {keepAdmin + doc1}, "parent": {"0"}, "reason": {"ticket 1"}, "action": {"save"}})
	wantBody(t, p, http.StatusOK, "Version 1 is active", `name="parent" value="1"`, "payroll:write: phr", "ticket 1")
	n, doc := e.activePolicy()
	if n != 1 || doc.ScopeMinACR["payroll:write"] != "phr" {
		t.Fatalf("active %d %+v", n, doc)
	}
	if ev := e.lastEvent(storage.EventAdminPolicyChanged); ev.ActorID != adaID || ev.Reason != "ticket 1" {
		t.Errorf("audit %+v", ev)
	}
	if got := e.server.Policies().Current().ScopeMinACR["payroll:write"]; got != "phr" {
		t.Errorf("the server decides with %q", got)
	}

	// Version 2, then an edit made from the page of version 1: refused,
	// naming the version saved since.
	p = b.post("/admin/policy", url.Values{"document": {keepAdmin + "scope_min_acr:\n  payroll:write: urn:keystep:acr:mfa\n"}, "parent": {"1"}, "reason": {"ticket 2"}, "action": {"save"}})
	wantBody(t, p, http.StatusOK, "Version 2 is active")
	p = b.post("/admin/policy", url.Values{"document": {keepAdmin + "scope_min_acr:\n  email: phr\n"}, "parent": {"1"}, "reason": {"stale"}, "action": {"save"}})
	wantBody(t, p, http.StatusConflict, "someone saved version 2 since you opened this page", "email: phr")
	if n, _ := e.activePolicy(); n != 2 {
		t.Fatalf("a stale save moved the policy to %d", n)
	}
	// The same document again stores nothing.
	p = b.post("/admin/policy", url.Values{"document": {keepAdmin + "scope_min_acr:\n  payroll:write: urn:keystep:acr:mfa\n"}, "parent": {"2"}, "reason": {"again"}, "action": {"save"}})
	wantBody(t, p, http.StatusOK, "Nothing changed: the document is the active version 2")

	// History lists both with their diffs; rollback needs a reason and
	// makes version 1's document active as version 3.
	p = b.get(e.issuer + "/admin/policy")
	wantBody(t, p, http.StatusOK, "ticket 1", "ticket 2", "What changed", "Roll back to 1", `name="version" value="1"`)
	p = b.post("/admin/policy/rollback", url.Values{"version": {"1"}, "parent": {"2"}, "reason": {"  "}})
	wantBody(t, p, http.StatusBadRequest, "Version 1 was not restored", "Say why")
	p = b.post("/admin/policy/rollback", url.Values{"version": {"9"}, "parent": {"2"}, "reason": {"x"}})
	if p.status != http.StatusNotFound {
		t.Errorf("rollback to a missing version: %d", p.status)
	}
	p = b.post("/admin/policy/rollback", url.Values{"version": {"1"}, "reason": {"ticket 3"}})
	wantBody(t, p, http.StatusBadRequest, "Reload the policy page") // no parent: the page it came from is unknown
	p = b.post("/admin/policy/rollback", url.Values{"version": {"1"}, "parent": {"2"}, "reason": {"ticket 3"}})
	wantBody(t, p, http.StatusOK, "Version 3 is active", "rollback to version 1: ticket 3")
	if n, doc := e.activePolicy(); n != 3 || doc.ScopeMinACR["payroll:write"] != "phr" {
		t.Fatalf("after rollback: %d %+v", n, doc)
	}
}

func TestAdminPolicyPreviewsTheImpact(t *testing.T) {
	e, secret := adminEnv(t)
	e.enrollTOTP("u-alice")
	// alice signs in to rp with her password alone: openid needs nothing.
	r := e.rp(rpClient, e.rpSecret)
	r.login(e.browser(), nil)
	b := e.browser()
	b.adminLogin(secret)
	before := e.auditCount()
	p := b.post("/admin/policy", url.Values{"document": {keepAdmin + "scope_min_acr:\n  openid: urn:keystep:acr:mfa\n"}, "parent": {"0"}, "action": {"preview"}})
	// By hand: alice's sign-in to rp and ada's first console sign-in (her
	// password alone, before the console's step-up) would now be asked for
	// a code; ada's step-up did the code already.
	wantBody(t, p, http.StatusOK, "If this had been active for the last 30 days", "Replayed 3 recorded sign-ins",
		"<strong>2</strong> would get an extra prompt, <strong>0</strong> would be denied",
		`<td data-label="Client"><code>rp</code></td><td data-label="Sign-ins" class="num">1</td><td data-label="Extra prompt" class="num">1</td><td data-label="Denied" class="num">0</td>`,
		"<strong>2</strong> extra prompt: <code>totp</code>", "scope_minimum → urn:keystep:acr:mfa", `href="/admin/audit?client=rp&amp;user=u-alice"`)
	if strings.Contains(p.body, "Not previewed") {
		t.Error("caveats for a change the preview replays")
	}
	if n, _ := e.activePolicy(); n != 0 || e.auditCount() != before {
		t.Error("a preview changed something")
	}
}

func TestAdminPolicyReadOnlyShowsTheDocument(t *testing.T) {
	e, secret := adminEnv(t, func(c *idp.Config) { c.PolicyReadOnly = true })
	b := e.browser()
	b.adminLogin(secret)
	p := b.get(e.issuer + "/admin/policy")
	wantBody(t, p, http.StatusOK, "--policy-read-only", `class="policy-doc"`)
	for _, not := range []string{`name="document"`, "Save and activate", "/admin/policy/rollback"} {
		if strings.Contains(p.body, not) {
			t.Errorf("a read-only server offers %q", not)
		}
	}
	p = b.post("/admin/policy", url.Values{"document": {keepAdmin + "scope_min_acr:\n  email: phr\n"}, "parent": {"0"}, "reason": {"x"}, "action": {"save"}})
	wantBody(t, p, http.StatusForbidden, "read-only")
	p = b.get(e.issuer + "/admin/clients/" + rpClient)
	wantBody(t, p, http.StatusOK, "This app's policy", "--policy-read-only")
	if strings.Contains(p.body, `action="/admin/clients/rp/policy"`) {
		t.Error("a read-only server offers the client policy form")
	}
	p = b.post("/admin/clients/"+rpClient+"/policy", url.Values{"scope_min_acr": {"openid phr"}, "parent": {"0"}, "reason": {"x"}})
	wantBody(t, p, http.StatusForbidden, "read-only")
	if n, _ := e.activePolicy(); n != 0 {
		t.Errorf("a read-only server stored version %d", n)
	}
}

// The newcomer's path: "openid needs mfa for the rp app only", set on the
// app's page, decides the next sign-in there.
func TestAdminClientPolicySectionSavesOnlyThatClientsPolicy(t *testing.T) {
	e, secret := adminEnv(t)
	aliceSecret := e.enrollTOTP("u-alice")
	b := e.browser()
	b.adminLogin(secret)
	// Version 1 has a server-wide minimum the section must keep.
	p := b.post("/admin/policy", url.Values{"document": {keepAdmin + "scope_min_acr:\n  payroll:write: phr\n"}, "parent": {"0"}, "reason": {"base"}, "action": {"save"}})
	wantBody(t, p, http.StatusOK, "Version 1 is active")

	p = b.get(e.issuer + "/admin/clients/" + rpClient)
	wantBody(t, p, http.StatusOK, "This app's policy", `action="/admin/clients/rp/policy"`, `name="parent" value="1"`,
		`name="scope_min_acr"`, `name="factors" value="webauthn"`, `name="enroll_during_step_up"`)

	form := url.Values{"scope_min_acr": {"openid urn:keystep:acr:mfa\nprofile\nemail nope"}, "access_token_lifetime": {"-5m"},
		"factors": {"totp"}, "preferred_factor": {"webauthn"}, "parent": {"1"}, "reason": {"ticket 7"}}
	before := e.auditCount()
	p = b.post("/admin/clients/"+rpClient+"/policy", form)
	wantBody(t, p, http.StatusBadRequest, "Nothing was saved", "line 2: write a scope and a level", "openid urn:keystep:acr:mfa")
	form.Set("scope_min_acr", "openid urn:keystep:acr:mfa\nemail nope")
	p = b.post("/admin/clients/"+rpClient+"/policy", form)
	wantBody(t, p, http.StatusBadRequest, "Fix these 3 problems", `client_policies.rp.scope_min_acr.email: unknown acr &#34;nope&#34;`,
		"client_policies.rp.access_token_lifetime: must be positive", `client_policies.rp.preferred_factor: &#34;webauthn&#34; is not one of the client&#39;s factors`)
	if n, _ := e.activePolicy(); n != 1 || e.auditCount() != before {
		t.Fatalf("a refused section changed something: version %d", n)
	}
	form.Set("scope_min_acr", "openid urn:keystep:acr:mfa")
	form.Set("access_token_lifetime", "5m")
	form.Set("preferred_factor", "totp")
	form.Set("reason", "")
	p = b.post("/admin/clients/"+rpClient+"/policy", form)
	wantBody(t, p, http.StatusBadRequest, "Say why you are changing this app&#39;s policy")
	form.Set("reason", "ticket 7")
	p = b.post("/admin/clients/"+rpClient+"/policy", form)
	wantBody(t, p, http.StatusOK, "This app&#39;s policy was saved", `name="parent" value="2"`, "openid urn:keystep:acr:mfa", `value="5m"`)
	n, doc := e.activePolicy()
	want := policy.ClientPolicy{ScopeMinACR: map[string]string{"openid": acrMFA}, AccessTokenLifetime: "5m", Factors: []string{"totp"}, PreferredFactor: "totp"}
	if n != 2 || doc.ScopeMinACR["payroll:write"] != "phr" || len(doc.ClientPolicies) != 1 || policy.Canonical(policy.Document{ClientPolicies: map[string]policy.ClientPolicy{rpClient: want}}) != policy.Canonical(policy.Document{ClientPolicies: doc.ClientPolicies}) {
		t.Fatalf("version %d: %s", n, policy.Canonical(doc))
	}
	if v, _ := e.store.PolicyVersionByNumber(context.Background(), 2); !strings.Contains(v.Diff, "client_policies.rp") || strings.Contains(v.Diff, "payroll:write") {
		t.Errorf("the diff is not only the client's: %q", v.Diff)
	}
	// A stale form (from version 1) is refused.
	p = b.post("/admin/clients/"+rpClient+"/policy", url.Values{"scope_min_acr": {"openid phr"}, "parent": {"1"}, "reason": {"stale"}})
	wantBody(t, p, http.StatusConflict, "someone saved policy version 2 since")

	// The next sign-in to rp asks alice for her code.
	r := e.rp(rpClient, e.rpSecret)
	ab := e.browser()
	a := r.authURL(nil)
	p = ab.signIn(ab.get(a.url), alice, alicePass)
	if !p.has("/login/otp") {
		t.Fatalf("the sign-in did not ask for the code: %d %s\n%.3000s", p.status, p.url, p.body)
	}
	p = ab.submitCode(p, "/login/otp", e.totp(aliceSecret))
	if p.has("/login/consent") {
		p = ab.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrMFA {
		t.Errorf("acr %v", tok.claims.ACR)
	}
}
