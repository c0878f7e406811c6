package conformance

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/storage"
)

// adminWaitFor waits until the page says s: a passkey ceremony runs in script
// and loads the next page only when the server has answered.
func (c *tab) adminWaitFor(s string) {
	c.t.Helper()
	c.WaitFor("document.readyState === 'complete' && document.body.innerText.includes(" + strconv.Quote(s) + ")")
}

// fill replaces the value of a field or text area by typing into it.
func (c *tab) fill(sel, text string) {
	c.t.Helper()
	chrome.Eval[bool](c.Browser, "(document.querySelector("+strconv.Quote(sel)+").value = '', true)")
	c.Must(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// lookAdmin is Look for a console page: the same screenshots and checks,
// less the one that keeps protocol words off pages for people; the admin
// console is for operators and may use them (UI.md: "never … outside the
// admin console").
func (c *tab) lookAdmin(name string) {
	c.t.Helper()
	c.LookSkipping(name, "jargon on a page for people")
}

// The acceptance test of the admin console (issue 7), in Chromium: an admin
// adds a passkey, signs in at sfa and is stepped up to phr with it before
// the console opens; creates a client there; an RP signs in with it. Every
// console page is looked at and saved as screenshots. A non-admin gets 403.
func TestBrowserAdminConsole(t *testing.T) {
	// A laptop's fingerprint reader: a device-bound passkey that verifies
	// the user. Passkey autofill is off (newPasskeyTab): the authenticator
	// would answer its conditional request at once, signing in by itself
	// on the sign-in page, and this test wants a sign-in with the password
	// alone first.
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost, coolingOff(time.Minute))
	e.addAdmin()
	e.enrollTOTP("u-alice")
	c.AddAuthenticator(chrome.DeviceBoundPasskey)
	ctx := context.Background()

	// Ada adds her first passkey in the portal (bootstrap: a fresh password
	// and no second factor yet), then keeps the recovery codes.
	c.Open(e.issuer + "/account/passkey")
	c.TypeIn("#username", ada)
	c.TypeIn("#password", adaPass)
	c.Follow(chrome.SignInButton)
	c.See("Add a passkey")
	c.Click("[data-passkey-register] [data-passkey-button]")
	c.adminWaitFor("This is the only time they are shown")
	if fs, _ := e.store.ListFactors(ctx, adaID); len(fs) != 1 || fs[0].Kind != "webauthn" {
		t.Fatalf("ada's factors after adding a passkey: %+v", fs)
	}
	c.Follow("form[action='/account/signout'] button")

	// Added after the password alone, the passkey waits before it counts
	// as phishing-resistant (DESIGN §3.3): the console says so and how to
	// get in.
	c.Open(e.issuer + "/admin")
	c.TypeIn("#username", ada)
	c.TypeIn("#password", adaPass)
	c.Follow(chrome.SignInButton)
	c.See("Your passkey isn't trusted for the admin console yet")
	c.See("keystep users confirm-passkey ada --credential")
	c.Look("admin-passkey-waiting")
	c.Open(e.issuer + "/account")
	c.Follow("form[action='/account/signout'] button")
	e.clock.Advance(2 * time.Minute) // the cooling-off passes

	// Signed in with the password alone (sfa), the console first asks for
	// the passkey (phr), and only then opens: this use from the browser
	// that signed in before makes the passkey phishing-resistant.
	c.Open(e.issuer + "/admin")
	c.TypeIn("#username", ada)
	c.TypeIn("#password", adaPass)
	c.Follow(chrome.SignInButton)
	if text := c.BodyText(); strings.Contains(text, "Admin console") {
		t.Fatalf("the console opened at sfa:\n%s", text)
	}
	c.Must(chromedp.WaitVisible(chromedp.CSS("[data-passkey-step] [data-passkey-button]")))
	c.Look("admin-step-up")
	c.Click("[data-passkey-step] [data-passkey-button]")
	c.adminWaitFor("Admin console")
	sess := adaSession(t, e)
	if !sessionHas(sess, "pwd") || !sessionHas(sess, "webauthn") {
		t.Fatalf("the console opened on a session with factors %+v", sess.Factors)
	}
	c.lookAdmin("admin-home")

	// Clients: the list, a form that the server refuses, then a client.
	c.Follow("nav a[href='/admin/clients']")
	c.See("Acme Payroll")
	c.lookAdmin("admin-clients")
	c.Follow("a[href='/admin/clients/new']")
	c.lookAdmin("admin-client-new")
	c.TypeIn("#id", "expenses")
	c.TypeIn("#name", "Acme Expenses")
	c.fill("#redirect_uris", "http://rp.example/cb")
	c.Follow("form.client-form button[type=submit]")
	c.See("must use https")
	c.lookAdmin("admin-client-invalid")
	c.fill("#redirect_uris", rpRedirect)
	c.Follow("form.client-form button[type=submit]")
	c.See("this is the only time it is shown")
	secret := chrome.Eval[string](c.Browser, "document.querySelector('#secret code').textContent")
	c.lookAdmin("admin-client-secret")
	c.Follow("a[href='/admin/clients/expenses']")
	c.See("Rotate secret")
	c.lookAdmin("admin-client-edit")

	// An RP signs in with the new client.
	tok := e.rp("expenses", secret).login(e.browser(), nil)
	if tok.claims.Sub != "u-alice" {
		t.Fatalf("RP sign-in with the console's client: sub %q", tok.claims.Sub)
	}

	// Users: the list, and alice's page.
	c.Follow("nav a[href='/admin/users']")
	c.See("alice")
	c.lookAdmin("admin-users")
	c.Follow("a.row-link[href='/admin/users/u-alice']")
	c.See("Ways to sign in")
	c.lookAdmin("admin-user")

	// Policy, and the explain tool as a form.
	c.Follow("nav a[href='/admin/policy']")
	c.See("What would happen?")
	c.lookAdmin("admin-policy")
	c.TypeIn("#x-user", alice)
	c.Must(chromedp.SetValue(chromedp.CSS("#x-client"), rpClient))
	c.TypeIn("#x-ip", "203.0.113.9")
	c.Must(chromedp.SetValue(chromedp.CSS("#x-device"), "new"))
	c.Must(chromedp.SetValue(chromedp.CSS("#x-acr"), acrMFA))
	c.Follow("form.explain-form button[type=submit]")
	c.See("is asked for one more factor")
	c.lookAdmin("admin-policy-explain")

	// Audit: the client's creation with before and after, and the chain.
	c.Follow("nav a[href='/admin/audit']")
	c.See("admin.client_created")
	chrome.Eval[bool](c.Browser, `(Array.from(document.querySelectorAll("summary")).find(function (s) { return s.textContent.includes("Before and after"); }).click(), true)`)
	c.lookAdmin("admin-audit")
	c.Follow("form[action='/admin/audit'] input[name=verify] + button")
	c.See("The audit chain is intact")
	c.lookAdmin("admin-audit-verified")

	// Keys: the list, then a rotation.
	c.Follow("nav a[href='/admin/keys']")
	c.lookAdmin("admin-keys")
	c.Follow("form[action='/admin/keys/rotate'] button")
	c.See("New signing keys were made")
	c.lookAdmin("admin-keys-rotated")
	c.Follow("nav a[href='/admin/outbox']")
	c.lookAdmin("admin-outbox")

	// Every change made here is in the log with ada as the actor and
	// before and after.
	events, err := e.store.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	changes := 0
	for _, ev := range events {
		if !strings.HasPrefix(string(ev.Type), "admin.") || ev.Type == "admin.audit_exported" {
			continue
		}
		changes++
		if ev.ActorID != adaID || ev.Details["before"] == "" && ev.Details["after"] == "" {
			t.Errorf("admin event %s: actor %q, details %v", ev.Type, ev.ActorID, ev.Details)
		}
	}
	if changes != 2 {
		t.Errorf("%d admin changes in the audit log, want 2 (client, keys)", changes)
	}

	// A non-admin gets 403.
	c.Follow("form[action='/account/signout'] button")
	c.Open(e.issuer + "/admin")
	c.TypeIn("#username", alice)
	c.TypeIn("#password", alicePass)
	c.Follow(chrome.SignInButton)
	c.See("You don't have access to the admin console")
	c.Look("admin-denied")
}

func adaSession(t *testing.T, e *env) storage.Session {
	t.Helper()
	ss, err := e.store.ListUserSessions(context.Background(), adaID, e.clock.Now())
	if err != nil || len(ss) != 1 {
		t.Fatalf("ada's sessions: %d, %v", len(ss), err)
	}
	return ss[0]
}

func sessionHas(s storage.Session, method string) bool {
	for _, f := range s.Factors {
		if f.Method == method {
			return true
		}
	}
	return false
}
