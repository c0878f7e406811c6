package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// The admin console (issue 7): only admins, at the console's level and
// freshness, through the portal's step-up; every change audited with who,
// before and after.

const (
	ada     = "ada"
	adaPass = "ada's long admin passphrase"
	adaID   = "u-ada"
)

// adminAt sets the console's level.
func adminAt(acr string) envOption { return func(c *idp.Config) { c.AdminACR = acr } }

// addAdmin adds ada, an administrator with a password.
func (e *env) addAdmin() storage.User {
	e.t.Helper()
	u := e.addUser(ada, adaPass)
	u.Admin = true
	if err := e.store.UpdateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

// adminEnv is a server whose console needs mfa, with ada holding an
// authenticator app; it returns the app's secret.
func adminEnv(t *testing.T, opts ...envOption) (*env, string) {
	t.Helper()
	e := newEnv(t, append([]envOption{adminAt(acrMFA)}, opts...)...)
	e.addAdmin()
	return e, e.enrollTOTP(adaID)
}

// adminLogin opens the console in b: the sign-in, then the code.
func (b *browser) adminLogin(secret string) page {
	b.e.t.Helper()
	p := b.signIn(b.get(b.e.issuer+"/admin"), ada, adaPass)
	p = b.submitCode(p, "/login/otp", b.e.totp(secret))
	if !strings.Contains(p.body, "<h1>Admin console</h1>") {
		b.e.t.Fatalf("the console did not open: %d %s\n%.3000s", p.status, p.url, p.body)
	}
	return p
}

// adminEvents lists the audit rows of type typ.
func (e *env) adminEvents(typ storage.EventType) []storage.AuditEvent {
	e.t.Helper()
	events, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	return events
}

// lastEvent is the newest audit row of type typ; the test fails without one.
func (e *env) lastEvent(typ storage.EventType) storage.AuditEvent {
	e.t.Helper()
	events := e.adminEvents(typ)
	if len(events) == 0 {
		e.t.Fatalf("no %s event", typ)
	}
	return events[len(events)-1]
}

func TestAdminConsoleRefusesANonAdmin(t *testing.T) {
	e, _ := adminEnv(t)
	b := e.browser()
	p := b.signIn(b.get(e.issuer+"/admin"), alice, alicePass)
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "You don&#39;t have access to the admin console") {
		t.Fatalf("non-admin: %d\n%.2000s", p.status, p.body)
	}
	// Posting to the console changes nothing either.
	p = b.post("/admin/clients", url.Values{"id": {"evil"}, "redirect_uris": {"https://evil.example/cb"}, "type": {"public"}, "grant_types": {"authorization_code"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("non-admin post: %d", p.status)
	}
	if _, err := e.store.ClientByID(context.Background(), "evil"); err == nil {
		t.Fatal("a non-admin created a client")
	}
	if ev := e.lastEvent("admin.denied"); ev.UserID != "u-alice" || ev.Outcome != "denied" {
		t.Fatalf("refusal audited as %+v", ev)
	}
}

// Signing in for the console starts at the lowest level: whether the user
// is an admin, and so has to step up, is known only then.
func TestAdminConsoleSendsAStrangerToSignIn(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	resp, err := b.client.Get(e.issuer + "/admin/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(e.issuer + resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Path != "/authorize" || loc.Query().Get("acr_values") != acrSFA {
		t.Fatalf("stranger: %d %s", resp.StatusCode, loc)
	}
	// After the sign-in and the step-up the page asked for opens.
	p := b.signIn(b.get(loc.String()), ada, adaPass)
	p = b.submitCode(p, "/login/otp", e.totp(secret))
	if !strings.Contains(p.body, "<h1>Users</h1>") {
		t.Fatalf("not back at the page asked for: %s\n%.2000s", p.url, p.body)
	}
}

// An admin at sfa is stepped up before the console opens, with max_age
// set to the console's freshness; once that has passed, it asks again.
func TestAdminConsoleStepsUpAndStaysFresh(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	p := b.signIn(b.get(e.issuer+"/account"), ada, adaPass)
	if !strings.Contains(p.body, "Hello, ada") {
		t.Fatalf("portal: %.2000s", p.body)
	}
	resp, err := b.client.Get(e.issuer + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(e.issuer + resp.Header.Get("Location"))
	q := loc.Query()
	if loc.Path != "/authorize" || q.Get("acr_values") != acrMFA || q.Get("max_age") != "900" || !strings.Contains(q.Get("claims"), `"essential":true`) {
		t.Fatalf("step-up request %s", loc)
	}
	p = b.get(loc.String())
	if strings.Contains(p.body, "Admin console") || !p.has("/login/otp") {
		t.Fatalf("the console opened, or no code was asked for:\n%.2000s", p.body)
	}
	p = b.submitCode(p, "/login/otp", e.totp(secret))
	if !strings.Contains(p.body, "<h1>Admin console</h1>") {
		t.Fatalf("console after the step-up:\n%.2000s", p.body)
	}
	e.clock.Advance(14 * time.Minute)
	if p := b.get(e.issuer + "/admin/clients"); !strings.Contains(p.body, "<h1>Clients</h1>") {
		t.Fatalf("asked again within 15 minutes:\n%.2000s", p.body)
	}
	e.clock.Advance(2 * time.Minute)
	p = b.get(e.issuer + "/admin/clients")
	if strings.Contains(p.body, "<h1>Clients</h1>") || !p.has("/login/password") {
		t.Fatalf("not asked again after 16 minutes:\n%.2000s", p.body)
	}
	p = b.signIn(p, ada, adaPass)
	e.clock.Advance(30 * time.Second) // a new code
	p = b.submitCode(p, "/login/otp", e.totp(secret))
	if !strings.Contains(p.body, "<h1>Clients</h1>") {
		t.Fatalf("not back at the clients:\n%.2000s", p.body)
	}
}

// At the default level (phr) an admin without a passkey is told which
// factor to add rather than sent into a step-up that cannot succeed.
func TestAdminConsoleNamesTheFactorToAdd(t *testing.T) {
	e := newEnv(t, onLocalhost)
	e.addAdmin()
	e.enrollTOTP(adaID)
	b := e.browser()
	p := b.signIn(b.get(e.issuer+"/admin"), ada, adaPass)
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "Add a passkey to use the admin console") || !strings.Contains(p.body, `href="/account/passkey"`) {
		t.Fatalf("admin without a passkey: %d\n%.3000s", p.status, p.body)
	}
}

var secretRe = regexp.MustCompile(`<ul class="codes single" id="secret"><li><code class="mono">([^<]+)</code>`)

func newClientForm(id string) url.Values {
	return url.Values{
		"id": {id}, "name": {"Acme Expenses"}, "redirect_uris": {rpRedirect + "\r\n"}, "post_logout_redirect_uris": {rpLogout},
		"type": {"confidential"}, "auth_method": {"client_secret_basic"}, "grant_types": {"authorization_code", "refresh_token", "client_credentials"},
		"id_token_alg": {"ES256"}, "access_token_format": {"jwt"}, "min_acr": {""},
	}
}

// The console registers a client; an RP signs in with it; the audit row
// names the admin and holds the client, but no secret.
func TestAdminCreatesAClientThatSignsIn(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	p := b.post("/admin/clients", newClientForm("expenses"))
	m := secretRe.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		t.Fatalf("create: %d\n%.3000s", p.status, p.body)
	}
	clientSecret := m[1]
	c, err := e.store.ClientByID(context.Background(), "expenses")
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretHash != factor.HashToken(clientSecret) || c.Name != "Acme Expenses" || c.IDTokenAlg != "ES256" || !slices.Equal(c.RedirectURIs, []string{rpRedirect}) {
		t.Fatalf("stored client %+v", c)
	}
	tok := e.rp("expenses", clientSecret).login(e.browser(), nil)
	if tok.claims.Sub != "u-alice" {
		t.Fatalf("sub %q", tok.claims.Sub)
	}
	ev := e.lastEvent("admin.client_created")
	if ev.ActorID != adaID || ev.ClientID != "expenses" || ev.Details["before"] != "" || !strings.Contains(ev.Details["after"], rpRedirect) || strings.Contains(ev.Details["after"], clientSecret) {
		t.Fatalf("audit %+v", ev)
	}
	// The secret is shown once: the client's page does not have it.
	if p := b.get(e.issuer + "/admin/clients/expenses"); strings.Contains(p.body, clientSecret) || !strings.Contains(p.body, "Rotate secret") {
		t.Fatalf("client page:\n%.2000s", p.body)
	}
}

func TestAdminClientFormListsEveryProblemAndSavesNothing(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	f := newClientForm("bad id")
	f.Set("redirect_uris", "http://rp.example/cb\nhttps://rp.example/cb#frag")
	f.Set("min_acr", "gold")
	f.Set("type", "public")
	before := e.auditCount()
	p := b.post("/admin/clients", f)
	if p.status != http.StatusBadRequest {
		t.Fatalf("status %d", p.status)
	}
	for _, want := range []string{"client ID &#34;bad id&#34;", "http://rp.example/cb&#34; must use https", "must not have a fragment", "minimum acr &#34;gold&#34;", "public clients cannot use client_credentials", "Fix these 5 problems"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page does not say %q", want)
		}
	}
	if t.Failed() {
		t.Logf("%.5000s", p.body)
	}
	if list, _ := e.store.ListClients(context.Background()); len(list) != 3 {
		t.Fatalf("%d clients", len(list))
	}
	if n := e.auditCount(); n != before {
		t.Fatalf("%d audit rows written for a refused form", n-before)
	}
}

func TestAdminEditsAClientWithBeforeAndAfter(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	f := newClientForm(rpClient)
	f.Set("name", "Acme Payroll")
	f.Set("first_party", "on")
	f.Set("min_acr", acrMFA)
	f.Set("id_token_alg", "RS256")
	p := b.post("/admin/clients/"+rpClient, f)
	if !strings.Contains(p.body, "Your changes were saved") {
		t.Fatalf("save:\n%.3000s", p.body)
	}
	c, _ := e.store.ClientByID(context.Background(), rpClient)
	if c.MinACR != acrMFA || c.SecretHash != factor.HashToken(e.rpSecret) {
		t.Fatalf("stored %+v (the secret must be kept)", c)
	}
	ev := e.lastEvent("admin.client_updated")
	var before, after map[string]any
	if json.Unmarshal([]byte(ev.Details["before"]), &before) != nil || json.Unmarshal([]byte(ev.Details["after"]), &after) != nil {
		t.Fatalf("details %v", ev.Details)
	}
	if before["min_acr"] != nil || after["min_acr"] != acrMFA || ev.ActorID != adaID {
		t.Fatalf("before %v after %v actor %s", before, after, ev.ActorID)
	}
	// The same form again changes nothing and writes nothing.
	n := e.auditCount()
	if p := b.post("/admin/clients/"+rpClient, f); !strings.Contains(p.body, "Nothing changed") {
		t.Fatalf("second save:\n%.2000s", p.body)
	}
	if e.auditCount() != n {
		t.Fatal("an unchanged client was audited as changed")
	}
}

func TestAdminRotatesASecretAndDeletesAClient(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	p := b.post("/admin/clients/"+rpClient+"/secret", nil)
	m := secretRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("rotate:\n%.2000s", p.body)
	}
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}
	if st, _, _ := e.postForm("/oauth/token", cc, rpClient, e.rpSecret); st != http.StatusUnauthorized && st != http.StatusBadRequest {
		t.Fatalf("old secret after rotation: %d", st)
	}
	if st, body, _ := e.postForm("/oauth/token", cc, rpClient, m[1]); st != http.StatusOK {
		t.Fatalf("new secret: %d %v", st, body)
	}
	if ev := e.lastEvent("admin.client_secret_rotated"); ev.ActorID != adaID || strings.Contains(ev.Details["after"], m[1]) {
		t.Fatalf("rotation audit %+v", ev)
	}

	p = b.post("/admin/clients/"+rpClient+"/delete", nil)
	if !strings.Contains(p.body, "The client was deleted") {
		t.Fatalf("delete:\n%.2000s", p.body)
	}
	if _, err := e.store.ClientByID(context.Background(), rpClient); err == nil {
		t.Fatal("client still there")
	}
	if ev := e.lastEvent("admin.client_deleted"); ev.Details["before"] == "" || ev.Details["after"] != "" {
		t.Fatalf("delete audit %+v", ev)
	}
	// The portal's own client cannot be touched.
	if p := b.post("/admin/clients/"+idp.AccountClientID+"/delete", nil); p.status != http.StatusForbidden {
		t.Fatalf("built-in client delete: %d", p.status)
	}
}

// Every user action is audited with the admin, the reason and before and
// after; resetting factors needs a reason; an admin cannot lock themself out.
func TestAdminUserActions(t *testing.T) {
	e, secret := adminEnv(t)
	ctx := context.Background()
	bob := e.browser()
	b := e.browser()
	b.adminLogin(secret)

	p := b.post("/admin/users", url.Values{"username": {"bob"}, "email": {"bob@example.com"}, "password": {"short"}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "at least") {
		t.Fatalf("short password: %d\n%.2000s", p.status, p.body)
	}
	p = b.post("/admin/users", url.Values{"username": {"bob"}, "email": {"bob@example.com"}, "password": {"bob's own passphrase"}})
	u, err := e.store.UserByUsername(ctx, "bob")
	if err != nil || !strings.Contains(p.body, "The user was created") {
		t.Fatalf("create: %v\n%.2000s", err, p.body)
	}
	// bob signs in and gets an app, then loses it.
	if p := bob.signIn(bob.get(e.issuer+"/account"), "bob", "bob's own passphrase"); !strings.Contains(p.body, "Hello, bob") {
		t.Fatalf("bob: %.2000s", p.body)
	}
	e.enrollTOTP(u.ID)
	base := "/admin/users/" + u.ID

	if p := b.post(base+"/reset-factors", url.Values{"reason": {" "}}); p.status != http.StatusBadRequest {
		t.Fatalf("reset without a reason: %d", p.status)
	}
	if fs, _ := e.store.ListFactors(ctx, u.ID); len(fs) != 1 {
		t.Fatal("factors reset without a reason")
	}
	b.post(base+"/reset-factors", url.Values{"reason": {"ticket 7: lost phone"}})
	if fs, _ := e.store.ListFactors(ctx, u.ID); len(fs) != 0 {
		t.Fatal("factors not reset")
	}
	if p := bob.get(e.issuer + "/account"); strings.Contains(p.body, "Hello, bob") {
		t.Fatal("bob still signed in after the reset")
	}
	ev := e.lastEvent("admin.user_reset_factors")
	if ev.Reason != "ticket 7: lost phone" || !strings.Contains(ev.Details["before"], "totp: Phone") || !strings.Contains(ev.Details["after"], `"factors":[]`) {
		t.Fatalf("reset audit %+v", ev)
	}

	bob.signIn(bob.get(e.issuer+"/account"), "bob", "bob's own passphrase")
	b.post(base+"/signout", nil)
	if p := bob.get(e.issuer + "/account"); strings.Contains(p.body, "Hello, bob") {
		t.Fatal("bob still signed in after sign-out everywhere")
	}
	b.post(base+"/disable", nil)
	if u, _ := e.store.UserByID(ctx, u.ID); !u.Disabled {
		t.Fatal("not disabled")
	}
	if p := bob.signIn(bob.get(e.issuer+"/account"), "bob", "bob's own passphrase"); strings.Contains(p.body, "Hello, bob") {
		t.Fatal("a disabled user signed in")
	}
	b.post(base+"/enable", nil)
	p = b.post(base+"/unlock", nil)
	if !strings.Contains(p.body, "The account was unlocked") {
		t.Fatalf("unlock:\n%.2000s", p.body)
	}
	// Not on yourself.
	if p := b.post("/admin/users/"+adaID+"/disable", nil); p.status != http.StatusBadRequest {
		t.Fatalf("self-disable: %d", p.status)
	}

	for _, typ := range []storage.EventType{"admin.user_created", "admin.user_reset_factors", "admin.user_signout", "admin.user_disable", "admin.user_enable", "admin.user_unlock"} {
		ev := e.lastEvent(typ)
		if ev.ActorID != adaID || ev.UserID != u.ID || ev.Outcome != "success" || ev.Details["after"] == "" {
			t.Errorf("%s audited as %+v", typ, ev)
		}
		if typ != "admin.user_created" && ev.Details["before"] == "" {
			t.Errorf("%s has no before: %+v", typ, ev.Details)
		}
	}
	// The user's page shows the factors, sessions and activity.
	p = b.get(e.issuer + base)
	for _, want := range []string{"Ways to sign in", "Sessions", "admin.user_unlock", "ticket 7: lost phone"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("user page lacks %q", want)
		}
	}
}

// CrossOriginProtection guards the console's forms like the portal's.
func TestAdminFormsRefuseCrossSitePosts(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/admin/clients", strings.NewReader(newClientForm("csrf").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", resp.StatusCode)
	}
	if _, err := e.store.ClientByID(context.Background(), "csrf"); err == nil {
		t.Fatal("a cross-site post created a client")
	}
}

func TestAdminAuditFilterExportAndVerify(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	b.post("/admin/clients", newClientForm("expenses"))

	p := b.get(e.issuer + "/admin/audit?event=admin.client_created&user=")
	if !strings.Contains(p.body, `<span class="mono">admin.client_created</span>`) || strings.Contains(p.body, `<span class="mono">login.completed</span>`) {
		t.Fatalf("event filter:\n%.3000s", p.body)
	}
	p = b.get(e.issuer + "/admin/audit?user=ada")
	if strings.Contains(p.body, `<span class="mono">admin.client_created</span>`) || !strings.Contains(p.body, `<span class="mono">login.completed</span>`) {
		t.Fatalf("user filter:\n%.3000s", p.body)
	}
	if p := b.get(e.issuer + "/admin/audit?from=yesterday"); p.status != http.StatusBadRequest {
		t.Fatalf("bad date: %d", p.status)
	}
	p = b.get(e.issuer + "/admin/audit?verify=1")
	if !strings.Contains(p.body, "The audit chain is intact") {
		t.Fatalf("verify:\n%.2000s", p.body)
	}

	resp, err := b.client.Get(e.issuer + "/admin/audit/export?client=expenses")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export headers %v", resp.Header)
	}
	var rows []storage.AuditEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var row struct {
			Type     storage.EventType `json:"type"`
			ClientID string            `json:"client_id"`
			ActorID  string            `json:"actor_id"`
			Hash     string            `json:"hash"`
			Details  map[string]string `json:"details"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, storage.AuditEvent{Type: row.Type, ClientID: row.ClientID, ActorID: row.ActorID, Hash: row.Hash, Details: row.Details})
	}
	if len(rows) != 1 || rows[0].Type != "admin.client_created" || rows[0].Hash == "" || rows[0].Details["after"] == "" {
		t.Fatalf("export %+v", rows)
	}
	if ev := e.lastEvent("admin.audit_exported"); ev.ActorID != adaID {
		t.Fatalf("export audit %+v", ev)
	}
}

func TestAdminRotatesKeys(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	before, _ := e.store.ListSigningKeys(context.Background())
	p := b.post("/admin/keys/rotate", url.Values{"activate_in": {"0"}})
	if !strings.Contains(p.body, "New signing keys were made") {
		t.Fatalf("rotate:\n%.2000s", p.body)
	}
	after, _ := e.store.ListSigningKeys(context.Background())
	if len(after) != len(before)+3 {
		t.Fatalf("%d keys before, %d after", len(before), len(after))
	}
	ev := e.lastEvent("admin.keys_rotated")
	if ev.ActorID != adaID || ev.Details["before"] == "" || ev.Details["after"] == "" {
		t.Fatalf("audit %+v", ev)
	}
	// Sign-ins go on with the new keys.
	e.rp(rpClient, e.rpSecret).login(e.browser(), nil)
	for _, k := range before {
		if strings.Contains(ev.Details["after"], k.ID) {
			t.Fatalf("old key %s listed as new", k.ID)
		}
	}
}

func TestAdminPolicyExplainsASignIn(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	p := b.get(e.issuer + "/admin/policy")
	for _, want := range []string{"urn:keystep:acr:mfa", "Risk rules", "risk rules</strong> valid", "Scope minimums"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("policy page lacks %q", want)
		}
	}
	e.enrollTOTP("u-alice")
	q := url.Values{"user": {alice}, "client": {rpClient}, "acr": {acrMFA}, "scope": {"openid"}, "ip": {"203.0.113.9"}, "device": {"new"}}
	p = b.get(e.issuer + "/admin/policy?" + q.Encode())
	if !strings.Contains(p.body, "is asked for one more factor") || !strings.Contains(p.body, "Use your authenticator app") {
		t.Fatalf("explain:\n%.5000s", p.body)
	}
	q.Set("ip", "not an ip")
	if p := b.get(e.issuer + "/admin/policy?" + q.Encode()); p.status != http.StatusBadRequest {
		t.Fatalf("bad ip: %d", p.status)
	}
}
