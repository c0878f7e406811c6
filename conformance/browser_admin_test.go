package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/storage"
)

// addPasskeyDevice gives the tab a virtual platform authenticator that
// verifies the user and answers at once, as a laptop's fingerprint reader
// would: a device-bound passkey (no backup flag). Passkey autofill is
// hidden from the pages: the virtual authenticator would answer its
// conditional request at once, signing in by itself on the sign-in page,
// and this test wants a sign-in with the password alone first.
func (c *chrome) addPasskeyDevice() {
	c.t.Helper()
	c.must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{
			Source: `if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = function () { return Promise.resolve(false); };`,
		}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
			Options: &cdpwebauthn.VirtualAuthenticatorOptions{
				Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
				Transport:      cdpwebauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true,
				AutomaticPresenceSimulation: true,
			},
		})
		return err
	}))
}

// adminWaitFor waits until the page says s: a passkey ceremony runs in script
// and loads the next page only when the server has answered.
func (c *chrome) adminWaitFor(s string) {
	c.t.Helper()
	c.waitFor("document.readyState === 'complete' && document.body.innerText.includes(" + strconv.Quote(s) + ")")
}

// fill replaces the value of a field or text area by typing into it.
func (c *chrome) fill(sel, text string) {
	c.t.Helper()
	eval[bool](c, "(document.querySelector("+strconv.Quote(sel)+").value = '', true)")
	c.must(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// jargonCheck is the line of jsStructure that keeps protocol words off
// pages for people; the admin console is for operators and may use them
// (UI.md: "never … outside the admin console").
const jargonCheck = `if (words) out.push("jargon on a page for people: " + words.join(", "));`

// lookAdmin is look for a console page: the same screenshots and checks,
// without the jargon one.
func (c *chrome) lookAdmin(name string) {
	c.t.Helper()
	if !strings.Contains(jsStructure, jargonCheck) {
		c.t.Fatal("jsStructure changed: update jargonCheck in browser_admin_test.go")
	}
	c.mu.Lock()
	c.shots++
	n := c.shots
	c.mu.Unlock()
	where := fmt.Sprintf("%s (%s)", name, c.location())
	for _, p := range eval[[]string](c, jsHelpers+strings.Replace(jsStructure, jargonCheck, "", 1)) {
		c.t.Errorf("%s: %s", where, p)
	}
	for _, scheme := range []string{"light", "dark"} {
		c.setScheme(scheme)
		for _, v := range viewports {
			c.setViewport(v)
			for _, p := range eval[[]string](c, jsHelpers+jsOverflow) {
				c.t.Errorf("%s at %d px: sideways scrolling: %s", where, v.w, p)
			}
			for _, p := range eval[[]string](c, jsHelpers+jsTargets) {
				c.t.Errorf("%s at %d px: target smaller than 44×44: %s", where, v.w, p)
			}
			if v.shot {
				png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
				if err != nil {
					c.t.Fatalf("screenshot: %v", err)
				}
				file := filepath.Join(c.dir, fmt.Sprintf("%02d-%s-%dx%d-%s.png", n, name, v.w, v.h, scheme))
				if err := os.WriteFile(file, png, 0o644); err != nil {
					c.t.Fatal(err)
				}
			}
		}
		for _, p := range eval[[]string](c, jsHelpers+jsContrast) {
			c.t.Errorf("%s, %s: contrast below AA: %s", where, scheme, p)
		}
		c.checkFocus(where + ", " + scheme)
	}
	c.setScheme("light")
	c.setViewport(desktop)
	c.checkProblems(where)
}

// The acceptance test of the admin console (issue 7), in Chromium: an admin
// adds a passkey, signs in at sfa and is stepped up to phr with it before
// the console opens; creates a client there; an RP signs in with it. Every
// console page is looked at and saved as screenshots. A non-admin gets 403.
func TestBrowserAdminConsole(t *testing.T) {
	c := newChrome(t)
	e := newEnv(t, onLocalhost, coolingOff(time.Minute))
	e.addAdmin()
	e.enrollTOTP("u-alice")
	c.addPasskeyDevice()
	ctx := context.Background()

	const signIn = "form[action='/login/password'] button[type=submit]"

	// Ada adds her first passkey in the portal (bootstrap: a fresh password
	// and no second factor yet), then keeps the recovery codes.
	c.open(e.issuer + "/account/passkey")
	c.typeIn("#username", ada)
	c.typeIn("#password", adaPass)
	c.follow(signIn)
	c.see("Add a passkey")
	c.click("[data-passkey-register] [data-passkey-button]")
	c.adminWaitFor("This is the only time they are shown")
	if fs, _ := e.store.ListFactors(ctx, adaID); len(fs) != 1 || fs[0].Kind != "webauthn" {
		t.Fatalf("ada's factors after adding a passkey: %+v", fs)
	}
	c.follow("form[action='/account/signout'] button")

	// Added after the password alone, the passkey waits before it counts
	// as phishing-resistant (DESIGN §3.3): the console says so and how to
	// get in.
	c.open(e.issuer + "/admin")
	c.typeIn("#username", ada)
	c.typeIn("#password", adaPass)
	c.follow(signIn)
	c.see("Your passkey isn't trusted for the admin console yet")
	c.see("keystep users confirm-passkey ada --credential")
	c.look("admin-passkey-waiting")
	c.open(e.issuer + "/account")
	c.follow("form[action='/account/signout'] button")
	e.clock.Advance(2 * time.Minute) // the cooling-off passes

	// Signed in with the password alone (sfa), the console first asks for
	// the passkey (phr), and only then opens: this use from the browser
	// that signed in before makes the passkey phishing-resistant.
	c.open(e.issuer + "/admin")
	c.typeIn("#username", ada)
	c.typeIn("#password", adaPass)
	c.follow(signIn)
	if text := c.bodyText(); strings.Contains(text, "Admin console") {
		t.Fatalf("the console opened at sfa:\n%s", text)
	}
	c.must(chromedp.WaitVisible(chromedp.CSS("[data-passkey-step] [data-passkey-button]")))
	c.look("admin-step-up")
	c.click("[data-passkey-step] [data-passkey-button]")
	c.adminWaitFor("Admin console")
	sess := adaSession(t, e)
	if !sessionHas(sess, "pwd") || !sessionHas(sess, "webauthn") {
		t.Fatalf("the console opened on a session with factors %+v", sess.Factors)
	}
	c.lookAdmin("admin-home")

	// Clients: the list, a form that the server refuses, then a client.
	c.follow("nav a[href='/admin/clients']")
	c.see("Acme Payroll")
	c.lookAdmin("admin-clients")
	c.follow("a[href='/admin/clients/new']")
	c.lookAdmin("admin-client-new")
	c.typeIn("#id", "expenses")
	c.typeIn("#name", "Acme Expenses")
	c.fill("#redirect_uris", "http://rp.example/cb")
	c.follow("form.client-form button[type=submit]")
	c.see("must use https")
	c.lookAdmin("admin-client-invalid")
	c.fill("#redirect_uris", rpRedirect)
	c.follow("form.client-form button[type=submit]")
	c.see("this is the only time it is shown")
	secret := eval[string](c, "document.querySelector('#secret code').textContent")
	c.lookAdmin("admin-client-secret")
	c.follow("a[href='/admin/clients/expenses']")
	c.see("Rotate secret")
	c.lookAdmin("admin-client-edit")

	// An RP signs in with the new client.
	tok := e.rp("expenses", secret).login(e.browser(), nil)
	if tok.claims.Sub != "u-alice" {
		t.Fatalf("RP sign-in with the console's client: sub %q", tok.claims.Sub)
	}

	// Users: the list, and alice's page.
	c.follow("nav a[href='/admin/users']")
	c.see("alice")
	c.lookAdmin("admin-users")
	c.follow("a.row-link[href='/admin/users/u-alice']")
	c.see("Ways to sign in")
	c.lookAdmin("admin-user")

	// Policy, and the explain tool as a form.
	c.follow("nav a[href='/admin/policy']")
	c.see("What would happen?")
	c.lookAdmin("admin-policy")
	c.typeIn("#x-user", alice)
	c.must(chromedp.SetValue(chromedp.CSS("#x-client"), rpClient))
	c.typeIn("#x-ip", "203.0.113.9")
	c.must(chromedp.SetValue(chromedp.CSS("#x-device"), "new"))
	c.must(chromedp.SetValue(chromedp.CSS("#x-acr"), acrMFA))
	c.follow("form.explain-form button[type=submit]")
	c.see("is asked for one more factor")
	c.lookAdmin("admin-policy-explain")

	// Audit: the client's creation with before and after, and the chain.
	c.follow("nav a[href='/admin/audit']")
	c.see("admin.client_created")
	eval[bool](c, `(Array.from(document.querySelectorAll("summary")).find(function (s) { return s.textContent.includes("Before and after"); }).click(), true)`)
	c.lookAdmin("admin-audit")
	c.follow("form[action='/admin/audit'] input[name=verify] + button")
	c.see("The audit chain is intact")
	c.lookAdmin("admin-audit-verified")

	// Keys: the list, then a rotation.
	c.follow("nav a[href='/admin/keys']")
	c.lookAdmin("admin-keys")
	c.follow("form[action='/admin/keys/rotate'] button")
	c.see("New signing keys were made")
	c.lookAdmin("admin-keys-rotated")

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
	c.follow("form[action='/account/signout'] button")
	c.open(e.issuer + "/admin")
	c.typeIn("#username", alice)
	c.typeIn("#password", alicePass)
	c.follow(signIn)
	c.see("You don't have access to the admin console")
	c.look("admin-denied")
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
