package conformance

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/policy"
)

// Enrolling during step-up (issue 21 item 4) through idp.NewServer, as an
// RP and a person see it: Acme Payroll's policy offers "set one up now";
// alice has only a password.

func enrollDuringStepUp(c *idp.Config) {
	c.ClientPolicies = map[string]policy.Client{rpClient: {EnrollDuringStepUp: true}}
}

func essentialACR(acr string) url.Values {
	return url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + acr + `"]}}}`}}
}

var enrollSecretRE = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)

func TestEnrollDuringStepUp(t *testing.T) {
	t.Run("an authenticator app set up in the step-up, then a fresh code from it, gives the app mfa", func(t *testing.T) {
		e := newEnv(t, enrollDuringStepUp)
		r := e.rp(rpClient, e.rpSecret)
		b := e.browser()
		a := r.authURL(essentialACR(acrMFA))
		p := b.signIn(b.get(a.url), alice, alicePass)
		if p.redirect != nil || !strings.Contains(p.body, "Acme Payroll needs a second way to sign in") {
			t.Fatalf("want the offer, got %d at %s (redirect %v)\n%.3000s", p.status, p.url, p.redirect, p.body)
		}
		id := p.hidden("id")
		setup := b.get(e.issuer + "/login/enroll/totp?id=" + url.QueryEscape(id))
		m := enrollSecretRE.FindStringSubmatch(setup.body)
		if setup.status != http.StatusOK || m == nil {
			t.Fatalf("setup page: %d\n%.3000s", setup.status, setup.body)
		}
		codes := b.post("/login/enroll/totp", url.Values{"id": {id}, "code": {e.totp(m[1])}})
		if codes.status != http.StatusOK || !strings.Contains(codes.body, "Save these recovery codes now") {
			t.Fatalf("after enrolling: %d\n%.3000s", codes.status, codes.body)
		}
		if ev := e.lastAudit("factor.enrolled"); ev.ClientID != rpClient || ev.Details["during_step_up"] != "true" || ev.Details["bootstrap"] != "true" {
			t.Fatalf("factor.enrolled %+v", ev)
		}
		// The enrollment proved nothing about alice: a fresh code is asked.
		e.clock.Advance(30 * time.Second)
		p = b.get(e.issuer + "/login?id=" + url.QueryEscape(id))
		p = b.submitCode(p, "/login/otp", e.totp(m[1]))
		tok := r.mustExchange(r.code(p, a), a)
		if tok.claims.ACR != acrMFA || !slices.Contains(tok.claims.AMR, "pwd") || !slices.Contains(tok.claims.AMR, "otp") {
			t.Fatalf("claims %+v, want acr mfa with pwd and otp", tok.claims)
		}
	})

	t.Run("a passkey set up in the step-up does not open an app that needs phr until it is trusted", func(t *testing.T) {
		e := newEnv(t, onLocalhost, enrollDuringStepUp)
		r := e.rp(rpClient, e.rpSecret)
		b := e.browser()
		a := r.authURL(essentialACR(acrPHR))
		p := b.signIn(b.get(a.url), alice, alicePass)
		body := html.UnescapeString(p.body)
		if p.redirect != nil || !strings.Contains(body, "data-passkey-register") || !strings.Contains(body, "accepts it only 1 day after it was added") ||
			strings.Contains(body, "/login/enroll/totp") {
			t.Fatalf("want the passkey offer with its caveat, got %d at %s\n%.3000s", p.status, p.url, p.body)
		}
		id := p.hidden("id")
		k := newSoftKey(t)
		status, options := b.postJSON("/login/enroll/passkey/options", map[string]any{"id": id})
		if status != http.StatusOK {
			t.Fatalf("options: %d %v", status, options)
		}
		status, out := b.postJSON("/login/enroll/passkey/verify", map[string]any{"id": id, "name": "Laptop", "credential": k.attestation(e, options, softTweak{})})
		if status != http.StatusOK || out["redirect"] != "/login?id="+url.QueryEscape(id) {
			t.Fatalf("verify: %d %v", status, out)
		}
		if ev := e.lastAudit("factor.enrolled"); ev.Details["phishing_resistant"] != "false" || ev.Details["during_step_up"] != "true" {
			t.Fatalf("factor.enrolled %+v", ev)
		}
		// The dispatcher decides again: no loop, no passkey prompt that
		// could not help, but what happens and when.
		p = b.get(e.issuer + "/login?id=" + url.QueryEscape(id))
		body = html.UnescapeString(p.body)
		if p.redirect != nil || !strings.Contains(body, "Your new passkey can't be used for Acme Payroll yet") || strings.Contains(body, "data-passkey-register") {
			t.Fatalf("after enrolling: %d at %s\n%.3000s", p.status, p.url, p.body)
		}
		if got := r.rpError(b.post("/login/enroll/back", url.Values{"id": {id}}), a); got != "unmet_authentication_requirements" {
			t.Fatalf("back to the app: error %q", got)
		}
	})
}

// TestBrowserEnrollDuringStepUp: the offer, the authenticator app's setup
// and the recovery codes in Chromium, looked at as people see them.
func TestBrowserEnrollDuringStepUp(t *testing.T) {
	c := newTab(t)
	e := newEnv(t, onLocalhost, enrollDuringStepUp)
	r := e.rp(rpClient, e.rpSecret)
	a := r.authURL(essentialACR(acrMFA))
	c.Open(a.url)
	c.TypeIn("#username", alice)
	c.TypeIn("#password", alicePass)
	c.Follow(chrome.SignInButton)
	c.See("Acme Payroll needs a second way to sign in")
	c.Look("enroll-offer")

	c.Follow("a[href^='/login/enroll/totp']")
	c.See("Set up an authenticator app")
	c.Look("enroll-authenticator")
	secret := chrome.Eval[string](c.Browser, "document.querySelector('code.secret').textContent")
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/enroll/totp'] button[type=submit]")
	c.See("Save these recovery codes now")
	c.Look("enroll-codes")

	e.clock.Advance(30 * time.Second)
	c.Follow("a.button.primary")
	c.See("Enter the 6-digit code")
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("acr %q, want mfa", tok.claims.ACR)
	}

	// Now with a second factor, an app that needs phr gets no offer: the
	// page says what to add and where, and goes back to the app.
	a = r.authURL(essentialACR(acrPHR))
	c.Open(a.url)
	c.See("You can't continue to Acme Payroll yet")
	c.See("Add a passkey or security key in your account")
	c.Look("enroll-not-now")
	c.Follow("form[action='/login/enroll/back'] button[type=submit]")
	if !strings.Contains(c.Location(), "error=unmet_authentication_requirements") {
		t.Fatalf("back to the app: at %s", c.Location())
	}
}

// TestBrowserEnrollPasskeyDuringStepUp: static/webauthn.js adds the passkey
// for the sign-in in flight; the dispatcher then asks for it like any
// other factor (the enrollment itself proved nothing about the person),
// and the app gets mfa.
func TestBrowserEnrollPasskeyDuringStepUp(t *testing.T) {
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost, enrollDuringStepUp)
	c.addAuthenticator(chrome.SyncedPasskey)
	r := e.rp(rpClient, e.rpSecret)
	a := r.authURL(essentialACR(acrMFA))
	c.Open(a.url)
	c.SignIn(alice, alicePass)
	c.See("Acme Payroll needs a second way to sign in")
	c.Follow(chrome.AddPasskeyButton)
	c.See("Use a passkey or security key")
	if ev := e.lastAudit("factor.enrolled"); ev.ClientID != rpClient || ev.Details["factor"] != "webauthn" || ev.Details["during_step_up"] != "true" {
		t.Fatalf("factor.enrolled %+v", ev)
	}
	c.Follow(chrome.PasskeyButton)
	tok := r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrMFA || !slices.Contains(tok.claims.AMR, "pop") {
		t.Fatalf("claims %+v, want mfa with pop", tok.claims)
	}
}
