package conformance

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/demo"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// The demo app ("Acme Payroll", idp/demo, `keystep demo`) driven end to end
// in Chromium, as its home page tells a person to try it: sign in with the
// password; open Payslips, where the app's API answers with an RFC 9470
// challenge and Keystep asks only for the authenticator code; change the
// bank account, which needs a passkey used in the last five minutes: the
// first try ends on the app's "one more step" page, the person adds a
// passkey in Keystep's portal, tries again and confirms with the passkey.
// Every page is screenshotted and checked (look for Keystep's pages,
// lookDemo for the app's).

// startDemo serves the demo app on http://localhost:PORT next to e's
// issuer, with its own confidential client, as `keystep demo` does, and
// returns its URL. The app reads e's clock, so tokens and max_age follow
// the server's time.
func (e *env) startDemo() string {
	e.t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	e.t.Cleanup(srv.Close)
	appURL := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	secret := "demo-" + e.t.Name()
	e.addClient(storage.Client{ID: "acme-payroll", Name: "Acme Payroll", SecretHash: factor.HashToken(secret),
		RedirectURIs: []string{appURL + "/callback"}, PostLogoutRedirectURIs: []string{appURL + "/"},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"},
		IDTokenAlg: "ES256", FirstParty: true, RequirePKCE: true})
	app, err := demo.New(demo.Config{
		Issuer: e.issuer, ClientID: "acme-payroll", ClientSecret: secret, URL: appURL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: e.clock.Now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	h = app
	return appURL
}

// demoSkips are the checks of jsStructure that are about Keystep's own
// pages, not the app's: the app has no script at all (its CSP has no
// script-src), and it shows the protocol on purpose (the ID token's claims
// and the API's challenges, in its "What just happened" log).
var demoSkips = []string{"no /static/app.js", "jargon on a page for people"}

// lookDemo is look for the demo app's pages: the same screenshots and
// checks, less demoSkips.
func (c *chrome) lookDemo(name string) { c.lookSkipping(name, demoSkips) }

// at fails unless the browser is at u (query and all).
func (c *chrome) at(u string) {
	c.t.Helper()
	if loc := c.location(); loc != u {
		c.t.Fatalf("the browser is at %s, want %s:\n%s", loc, u, c.bodyText())
	}
}

// authorizeLoads returns the query of every document load of Keystep's
// authorization endpoint so far: the redirects the app sent the browser on.
func (c *chrome) authorizeLoads(issuer string) []url.Values {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []url.Values
	for u := range c.documents {
		if p, err := url.Parse(u); err == nil && strings.HasPrefix(u, issuer+"/authorize?") {
			out = append(out, p.Query())
		}
	}
	return out
}

// authorizedWith fails unless the app sent the browser to Keystep with
// these acr_values and max_age ("" for none), with PKCE and a nonce.
func (c *chrome) authorizedWith(issuer, acrValues, maxAge string) {
	c.t.Helper()
	var seen []string
	for _, q := range c.authorizeLoads(issuer) {
		if q.Get("acr_values") == acrValues && q.Get("max_age") == maxAge && q.Has("max_age") == (maxAge != "") {
			if q.Get("client_id") != "acme-payroll" || q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" {
				c.t.Errorf("authorization request without PKCE, nonce or state: %v", q)
			}
			return
		}
		seen = append(seen, q.Encode())
	}
	c.t.Fatalf("the app did not send the browser to Keystep with acr_values=%q max_age=%q; it sent:\n%s", acrValues, maxAge, strings.Join(seen, "\n"))
}

// noPasswordField fails if the page asks for a password.
func (c *chrome) noPasswordField(where string) {
	c.t.Helper()
	if n := eval[int](c, `document.querySelectorAll("input[type=password]").length`); n != 0 {
		c.t.Fatalf("%s asks for the password again (%d fields):\n%s", where, n, c.bodyText())
	}
}

// demo-browser: the demo end to end in Chromium, with both RFC 9470
// step-ups (Issue 8).
func TestBrowserDemo(t *testing.T) {
	start := time.Now()
	c := newPasskeyChrome(t)
	// As `keystep demo` runs it: a throwaway server that trusts a new
	// passkey at once (idp.Config.PasskeysTrustedAtOnce).
	e := newEnv(t, onLocalhost, func(c *idp.Config) { c.PasskeysTrustedAtOnce = true })
	// The library stamps iat and nbf with real time, and the app's API
	// checks them against this clock with 30 s of leeway: on a busy
	// machine this test runs longer than that, so the clock runs too.
	e.clock.run()
	secret := e.enrollTOTP("u-alice")
	c.addAuthenticator(deviceBoundPasskey)
	app := e.startDemo()

	// The home page, and Sign in: Keystep's password page, for the app.
	c.open(app + "/")
	c.see("Your pay, in one place")
	c.lookDemo("demo-home")
	c.follow("main a.button[href='/login']")
	if !strings.HasPrefix(c.location(), e.issuer+"/") {
		t.Fatalf("Sign in did not lead to Keystep: at %s", c.location())
	}
	c.see("to continue to Acme Payroll")
	c.authorizedWith(e.issuer, "", "")
	c.look("demo-keystep-signin")

	// The password is one step: enough for the overview.
	c.signInAt(alice, alicePass)
	c.at(app + "/dashboard")
	c.see("Hello, alice")
	c.see("one step, such as your password")
	c.lookDemo("demo-dashboard-password")

	// Payslips: the API wants two steps (RFC 9470 §3); the app sends the
	// browser back to Keystep with the challenge's acr_values (§4), and
	// Keystep asks only for the code.
	c.follow("nav a[href='/payslips']")
	if !strings.HasPrefix(c.location(), e.issuer+"/") {
		t.Fatalf("Payslips did not lead to Keystep: at %s:\n%s", c.location(), c.bodyText())
	}
	c.authorizedWith(e.issuer, acrMFA+" "+acrPHR+" "+acrPHRH, "")
	c.see("Acme Payroll needs you to confirm it's you")
	if n := eval[int](c.chrome, `document.querySelectorAll("form[action='/login/otp'] input[name=code]").length`); n != 1 {
		t.Fatalf("the step-up for payslips does not ask for the code:\n%s", c.bodyText())
	}
	c.noPasswordField("the step-up for payslips")
	c.look("demo-keystep-code")
	c.typeIn("#code", e.totp(secret))
	c.follow("form[action='/login/otp'] button[type=submit]")
	c.at(app + "/payslips")
	c.see("Your last three payslips")
	c.see("Keystep confirmed it's you with two steps")
	if n := eval[int](c.chrome, `document.querySelectorAll("main table tbody tr").length`); n != 3 {
		t.Fatalf("%d payslips shown, want 3:\n%s", n, c.bodyText())
	}
	c.lookDemo("demo-payslips")

	// The bank account on file needs what payslips need: no new step.
	c.follow("nav a[href='/bank']")
	c.at(app + "/bank")
	c.see("ending in 5432")
	c.lookDemo("demo-bank")

	// Changing it needs a passkey (phr within 5 minutes); Alice has none
	// yet, so Keystep gives what it can (mfa), the retried call is refused
	// again, and the app says what to add, instead of going round.
	c.typeIn("#iban", "GB33 BUKB 2020 1555 5555 55")
	c.follow("form[action='/bank'] button[type=submit]")
	c.authorizedWith(e.issuer, acrPHR+" "+acrPHRH, "300")
	c.at(app + "/bank/resume")
	c.see("One more step is needed")
	c.see("a passkey or security key, used in the last 5 minutes")
	c.lookDemo("demo-needs-passkey")

	// "Open your Keystep account": the portal, signed in already (two
	// steps, just now), adds the passkey without asking again.
	c.follow("main ol.steps a[href='" + e.issuer + "/account']")
	c.see("Hello, alice")
	c.look("demo-keystep-account")
	c.follow("nav a[href='/account/passkey']")
	c.noPasswordField("adding a passkey after the step-up")
	c.look("demo-keystep-add-passkey")
	c.addPasskey("Alice's laptop")
	c.see("Your passkey is ready")
	c.look("demo-keystep-passkey-added")
	if keys, _ := e.passkeys("u-alice"); len(keys) != 1 {
		t.Fatalf("%d passkeys stored, want 1", len(keys))
	}

	// "Come back and try again": the change the person posted is tried
	// again, the API refuses the mfa token, and this time Keystep asks for
	// the passkey, and only for it.
	c.open(app + "/bank/resume") // the page's "try again" link
	if !strings.HasPrefix(c.location(), e.issuer+"/") {
		t.Fatalf("trying again did not lead to Keystep: at %s:\n%s", c.location(), c.bodyText())
	}
	c.see("Acme Payroll needs you to confirm it's you")
	c.see("Use a passkey or security key")
	c.noPasswordField("the step-up for the bank account")
	c.look("demo-keystep-passkey")
	c.follow(passkeyButton)
	c.at(app + "/bank")
	c.see("Done. From the next payday your salary goes to the account ending in 5555.")
	c.see("ending in 5555")
	c.lookDemo("demo-bank-changed")

	// The overview tells the story: a passkey now, and each API answer.
	c.follow("nav a[href='/dashboard']")
	c.see("two steps, one of them a passkey or security key")
	for _, s := range []string{"Payslips: the API wants", "Payslips: the API said yes.", "Bank account change: the API said yes."} {
		c.see(s)
	}
	c.lookDemo("demo-dashboard-passkey")

	// Sign out ends the app's session and Keystep's.
	c.follow("form[action='/logout'] button[type=submit]")
	c.at(app + "/?state=signed-out")
	c.see("You're signed out of Acme Payroll and of Keystep.")
	c.lookDemo("demo-signed-out")

	c.checkProblems("demo")
	t.Logf("the demo in Chromium took %s; screenshots in %s", time.Since(start).Round(100*time.Millisecond), c.dir)
}
