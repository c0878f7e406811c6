package demo

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/idp"
)

// The app driven end to end in a real headless Chromium, as its home page
// tells a person to try it, with the browser harness of conformance/chrome:
// the same page checks (Look), and the same rule that a missing Chromium
// skips locally and fails under CI.

// tab is Chromium (chrome.Browser) with the demo's own checks.
type tab struct {
	*chrome.Browser
	t *testing.T
}

// passkeys counts the user's WebAuthn factors in storage.
func (e *env) passkeys() int {
	e.t.Helper()
	fs, err := e.store.ListFactors(context.Background(), userID)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, f := range fs {
		if f.Kind == "webauthn" {
			n++
		}
	}
	return n
}

// demoSkips are the structure checks of chrome.Browser.Look that are about
// Keystep's own pages, not the app's: the app has no script at all (its
// CSP has no script-src), and it shows the protocol on purpose (the ID
// token's claims and the API's challenges, in its "What just happened" log).
var demoSkips = []string{"no /static/app.js", "jargon on a page for people"}

// lookDemo is Look for the demo app's pages: the same screenshots and
// checks, less demoSkips.
func (c *tab) lookDemo(name string) { c.LookSkipping(name, demoSkips...) }

// at fails unless the browser is at u (query and all).
func (c *tab) at(u string) {
	c.t.Helper()
	if loc := c.Location(); loc != u {
		c.t.Fatalf("the browser is at %s, want %s:\n%s", loc, u, c.BodyText())
	}
}

// authorizeLoads returns the query of every document load of Keystep's
// authorization endpoint so far: the redirects the app sent the browser on.
func (c *tab) authorizeLoads(issuer string) []url.Values {
	var out []url.Values
	for _, u := range c.Documents() {
		if p, err := url.Parse(u); err == nil && strings.HasPrefix(u, issuer+"/authorize?") {
			out = append(out, p.Query())
		}
	}
	return out
}

// authorizedWith fails unless the app pushed an authorization request
// with these acr_values and max_age ("" for none), with PKCE, a nonce and
// the session's DPoP key, and unless every authorization URL the browser
// loaded carried only client_id and a pushed request_uri (RFC 9126 §4).
func (c *tab) authorizedWith(e *env, acrValues, maxAge string) {
	c.t.Helper()
	for _, q := range c.authorizeLoads(e.issuer) {
		if len(q) != 2 || q.Get("client_id") != "acme-payroll" || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
			c.t.Errorf("the browser loaded an authorization URL with %v, want client_id and request_uri only", q)
		}
	}
	var seen []string
	for _, q := range e.allPushed() {
		if q.Get("acr_values") == acrValues && q.Get("max_age") == maxAge && q.Has("max_age") == (maxAge != "") {
			if q.Get("client_id") != "acme-payroll" || q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("dpop_jkt") == "" {
				c.t.Errorf("pushed authorization request without PKCE, nonce, state or dpop_jkt: %v", q)
			}
			return
		}
		seen = append(seen, q.Encode())
	}
	c.t.Fatalf("the app pushed no authorization request with acr_values=%q max_age=%q; it pushed:\n%s", acrValues, maxAge, strings.Join(seen, "\n"))
}

// noPasswordField fails if the page asks for a password.
func (c *tab) noPasswordField(where string) {
	c.t.Helper()
	if n := chrome.Eval[int](c.Browser, `document.querySelectorAll("input[type=password]").length`); n != 0 {
		c.t.Fatalf("%s asks for the password again (%d fields):\n%s", where, n, c.BodyText())
	}
}

// demo-browser: the demo end to end in Chromium, with both RFC 9470
// step-ups (Issue 8).
func TestBrowserDemo(t *testing.T) {
	start := time.Now()
	c := &tab{Browser: chrome.New(t), t: t}
	c.EnableWebAuthn()
	// As `keystep demo` runs it: a throwaway server that trusts a new
	// passkey at once (idp.Config.PasskeysTrustedAtOnce), and the app on
	// localhost. Both keep real time: the library stamps iat and nbf with
	// it, and the app's API checks them with 30 s of leeway.
	e := newEnvWith(t, true, func(c *idp.Config) { c.PasskeysTrustedAtOnce = true })
	secret := e.enrollTOTP()
	c.AddAuthenticator(chrome.DeviceBoundPasskey)
	app := e.rpURL

	// The home page, and Sign in: Keystep's password page, for the app.
	c.Open(app + "/")
	c.See("Your pay, in one place")
	c.lookDemo("demo-home")
	c.Follow("main a.button[href='/login']")
	if !strings.HasPrefix(c.Location(), e.issuer+"/") {
		t.Fatalf("Sign in did not lead to Keystep: at %s", c.Location())
	}
	c.See("to continue to Acme Payroll")
	c.authorizedWith(e, "", "")
	c.Look("demo-keystep-signin")

	// The password is one step: enough for the overview.
	c.SignIn(username, password)
	c.at(app + "/dashboard")
	c.See("Hello, alice")
	c.See("one step, such as your password")
	c.See("works only with a key that stays inside Acme Payroll")
	// The access token's cnf.jkt is the session key's, shown next to acr
	// and amr.
	jkt := e.onlySession().user.JKT
	if jkt == "" || chrome.Eval[string](c.Browser, `document.querySelector("code.jkt").textContent`) != jkt {
		t.Fatalf("the overview does not show the access token's cnf.jkt %q:\n%s", jkt, c.BodyText())
	}
	c.lookDemo("demo-dashboard-password")

	// What if it's stolen? The app replays the token without its key, and
	// the API and Keystep refuse it.
	c.Follow("form[action='/stolen'] button[type=submit]")
	c.at(app + "/dashboard#stolen")
	c.See("Refused. The token works only with the key that stays inside Acme Payroll.")
	if n := chrome.Eval[int](c.Browser, `document.querySelectorAll("ul.replays li.refused").length`); n != 3 {
		t.Fatalf("%d refusals shown, want 3:\n%s", n, c.BodyText())
	}
	c.lookDemo("demo-dashboard-stolen")

	// Payslips: the API wants two steps (RFC 9470 §3); the app sends the
	// browser back to Keystep with the challenge's acr_values (§4), and
	// Keystep asks only for the code.
	c.Follow("nav a[href='/payslips']")
	if !strings.HasPrefix(c.Location(), e.issuer+"/") {
		t.Fatalf("Payslips did not lead to Keystep: at %s:\n%s", c.Location(), c.BodyText())
	}
	c.authorizedWith(e, acrMFA+" "+acrPHR+" "+acrPHRH, "")
	c.See("Acme Payroll needs you to confirm it's you")
	if n := chrome.Eval[int](c.Browser, `document.querySelectorAll("form[action='/login/otp'] input[name=code]").length`); n != 1 {
		t.Fatalf("the step-up for payslips does not ask for the code:\n%s", c.BodyText())
	}
	c.noPasswordField("the step-up for payslips")
	c.Look("demo-keystep-code")
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	c.at(app + "/payslips")
	c.See("Your last three payslips")
	c.See("Keystep confirmed it's you with two steps")
	if n := chrome.Eval[int](c.Browser, `document.querySelectorAll("main table tbody tr").length`); n != 3 {
		t.Fatalf("%d payslips shown, want 3:\n%s", n, c.BodyText())
	}
	c.lookDemo("demo-payslips")

	// The bank account on file needs what payslips need: no new step.
	c.Follow("nav a[href='/bank']")
	c.at(app + "/bank")
	c.See("ending in 5432")
	c.lookDemo("demo-bank")

	// Changing it needs a passkey (phr within 5 minutes); Alice has none
	// yet, so Keystep gives what it can (mfa), the retried call is refused
	// again, and the app says what to add, instead of going round.
	c.TypeIn("#iban", "GB33 BUKB 2020 1555 5555 55")
	c.Follow("form[action='/bank'] button[type=submit]")
	c.authorizedWith(e, acrPHR+" "+acrPHRH, "300")
	c.at(app + "/bank/resume")
	c.See("One more step is needed")
	c.See("a passkey or security key, used in the last 5 minutes")
	c.lookDemo("demo-needs-passkey")

	// "Open your Keystep account": the portal, signed in already (two
	// steps, just now), adds the passkey without asking again.
	c.Follow("main ol.steps a[href='" + e.issuer + "/account']")
	c.See("Hello, alice")
	c.Look("demo-keystep-account")
	c.Follow("nav a[href='/account/passkey']")
	c.noPasswordField("adding a passkey after the step-up")
	c.Look("demo-keystep-add-passkey")
	c.AddPasskey("Alice's laptop")
	c.See("Your passkey is ready")
	c.Look("demo-keystep-passkey-added")
	if n := e.passkeys(); n != 1 {
		t.Fatalf("%d passkeys stored, want 1", n)
	}

	// "Come back and try again": the change the person posted is tried
	// again, the API refuses the mfa token, and this time Keystep asks for
	// the passkey, and only for it.
	c.Open(app + "/bank/resume") // the page's "try again" link
	if !strings.HasPrefix(c.Location(), e.issuer+"/") {
		t.Fatalf("trying again did not lead to Keystep: at %s:\n%s", c.Location(), c.BodyText())
	}
	c.See("Acme Payroll needs you to confirm it's you")
	c.See("Use a passkey or security key")
	c.noPasswordField("the step-up for the bank account")
	c.Look("demo-keystep-passkey")
	c.Follow(chrome.PasskeyButton)
	c.at(app + "/bank")
	c.See("Done. From the next payday your salary goes to the account ending in 5555.")
	c.See("ending in 5555")
	c.lookDemo("demo-bank-changed")

	// The overview tells the story: a passkey now, and each API answer.
	c.Follow("nav a[href='/dashboard']")
	c.See("two steps, one of them a passkey or security key")
	for _, s := range []string{"Payslips: the API wants", "Payslips: the API said yes.", "Bank account change: the API said yes."} {
		c.See(s)
	}
	c.lookDemo("demo-dashboard-passkey")

	// Sign out ends the app's session and Keystep's.
	c.Follow("form[action='/logout'] button[type=submit]")
	c.at(app + "/?state=signed-out")
	c.See("You're signed out of Acme Payroll and of Keystep.")
	c.lookDemo("demo-signed-out")

	c.CheckProblems("demo")
	t.Logf("the demo in Chromium took %s; screenshots in %s", time.Since(start).Round(100*time.Millisecond), c.Dir())
}

// invoice-browser: "Pay an invoice" in Chromium with a virtual passkey
// (issue 19): Keystep shows the payment, the passkey approves it, the app
// shows what the token carries, and stretching the approval is refused.
func TestBrowserInvoice(t *testing.T) {
	c := &tab{Browser: chrome.New(t), t: t}
	c.EnableWebAuthn()
	e := newEnvWith(t, true, func(c *idp.Config) { c.PasskeysTrustedAtOnce = true })
	c.AddAuthenticator(chrome.DeviceBoundPasskey)
	app := e.rpURL

	// Sign in with the password, then add a passkey in the Keystep account.
	c.Open(app + "/login")
	c.SignIn(username, password)
	c.at(app + "/dashboard")
	c.See("Pay an invoice")
	c.Open(e.issuer + "/account")
	c.Follow("nav a[href='/account/passkey']")
	c.AddPasskey("Alice's laptop")
	c.See("Your passkey is ready")

	// The invoice, and Pay: Keystep shows the payment above the passkey.
	c.Open(app + "/invoice")
	c.See("Invoice INV-2026-0412")
	c.See("GB29 NWBK 6016 1331 9268 19")
	c.lookDemo("demo-invoice")
	c.Follow("form[action='/invoice/pay'] button[type=submit]")
	if !strings.HasPrefix(c.Location(), e.issuer+"/") {
		t.Fatalf("Pay did not lead to Keystep: at %s:\n%s", c.Location(), c.BodyText())
	}
	for _, q := range c.authorizeLoads(e.issuer) {
		if len(q) != 2 || q.Get("request_uri") == "" {
			t.Errorf("the browser loaded an authorization URL with %v, want client_id and request_uri only", q)
		}
	}
	c.See("You're approving")
	c.See("EUR 1,250.00")
	c.See("Example Supplies Ltd")
	c.noPasswordField("the payment's approval")
	c.Look("demo-keystep-pay-passkey")
	c.Follow(chrome.PasskeyButton)
	c.See("Approve for Acme Payroll?")
	c.See("Example Supplies Ltd")
	c.Look("demo-keystep-pay-approve")
	c.Follow("form[action='/login/consent'] button[value=allow]")

	// Back in the app: paid, with what the token carries.
	c.at(app + "/invoice")
	c.See("Paid. EUR 1,250.00 is on its way to Example Supplies Ltd.")
	c.See("What you approved")
	c.See(levelWords(acrPHR))
	if got := chrome.Eval[string](c.Browser, `document.querySelector("code.token-details").textContent`); !strings.Contains(got, `"amount": "1250.00"`) ||
		!strings.Contains(got, `"creditorName": "Example Supplies Ltd"`) {
		t.Errorf("the page's authorization_details from the token: %s", got)
	}
	c.lookDemo("demo-invoice-paid")

	// Stretching the approval: more money, another supplier. Refused.
	c.Follow("form[action='/invoice/try'] input[value=amount] + button")
	c.at(app + "/invoice#tries")
	c.See("Refused. You approved EUR 1,250.00 to Example Supplies Ltd, and nothing else.")
	c.Follow("form[action='/invoice/try'] input[value=creditor] + button")
	if n := chrome.Eval[int](c.Browser, `document.querySelectorAll("ul.replays li.refused").length`); n != 2 {
		t.Fatalf("%d refusals shown, want 2:\n%s", n, c.BodyText())
	}
	c.lookDemo("demo-invoice-stretched")

	// The overview's "What the tokens say" has the approved details too.
	c.Follow("nav a[href='/dashboard']")
	c.See("two steps, one of them a passkey or security key")
	if got := chrome.Eval[string](c.Browser, `document.querySelector("code.token-details").textContent`); !strings.Contains(got, `"creditorName": "Example Supplies Ltd"`) {
		t.Errorf("the overview's authorization_details from the token: %q", got)
	}
	c.Click("main details summary")
	c.lookDemo("demo-dashboard-payment")

	var committed bool
	for _, ev := range e.transactionRows() {
		committed = committed || ev.Outcome == "success" && ev.Details["committed"] == "true" && ev.Details["authorization_details"] == invoiceDetails(t)
	}
	if !committed {
		t.Error("no committed stepup.transaction row for the invoice")
	}
	c.CheckProblems("invoice")
	t.Logf("screenshots in %s", c.Dir())
}
