package conformance

import (
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/policy"
)

// The newcomer's path of issue 21's acceptance, in Chromium: an admin opens
// the payroll app's page, writes "payroll:write phr" in "This app's
// policy" with a reason and saves; the policy page shows the new version
// and previews its impact; the next sign-in to that app with the scope asks
// for the passkey, without a restart.
func TestBrowserAdminEditsAClientPolicy(t *testing.T) {
	c := newPasskeyTab(t)
	// The server's policy document says what its Config does, as
	// `keystep serve --config` passes it: the first stored version starts
	// from it.
	e := newEnv(t, onLocalhost, adminAt(acrMFA), func(c *idp.Config) { c.PolicyDocument = policy.Document{Admin: &policy.Admin{ACR: acrMFA}} })
	e.addAdmin()
	adaSecret := e.enrollTOTP(adaID)
	c.addAuthenticator(chrome.DeviceBoundPasskey)
	r := e.rp(rpClient, e.rpSecret)
	// payroll:write is a scope of the payroll API: a client may request
	// it once the policy names it (idp/models.go withScopesOf).
	scope := url.Values{"scope": {"openid payroll:write"}}

	// alice has a passkey, trusted; today the policy does not name
	// payroll:write, so her password alone signs her in (the scope is
	// dropped, as any scope nothing knows).
	c.enrollFirstPasskey(e, alice, alicePass, "Laptop")
	if tok := r.login(e.browser(), scope); tok.claims.ACR != "urn:keystep:acr:sfa" {
		t.Fatalf("acr %q with the password alone", tok.claims.ACR)
	}

	// Ada opens the console (password, then her code) and the app's page.
	c.Open(e.issuer + "/admin/clients/" + rpClient)
	c.SignIn(ada, adaPass)
	c.TypeIn("#code", e.totp(adaSecret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	c.adminWaitFor("This app's policy")
	c.fill("#cp-scopes", "payroll:write phr")
	c.Follow("form[action='/admin/clients/rp/policy'] button[type=submit]")
	c.See("Say why you are changing this app's policy")
	if v := chrome.Eval[string](c.Browser, "document.querySelector('#cp-scopes').value"); v != "payroll:write phr" {
		t.Fatalf("the refused form lost the scope minimums: %q", v)
	}
	c.TypeIn("#cp-reason", "Ticket 42: payroll:write needs a passkey")
	c.Follow("form[action='/admin/clients/rp/policy'] button[type=submit]")
	c.See("This app's policy was saved")
	c.lookAdmin("admin-client-policy")

	// The policy page: version 1 active, its history, and the impact of a
	// further change (the last 30 days, alice's sign-in among them).
	c.Follow("nav a[href='/admin/policy']")
	c.See("Ticket 42: payroll:write needs a passkey")
	c.lookAdmin("admin-policy-editor")
	c.fill("#document", "admin:\n  acr: urn:keystep:acr:mfa\nscope_min_acr:\n  openid: urn:keystep:acr:mfa\n")
	c.Follow("button[value=preview]")
	c.See("If this had been active for the last 30 days")
	c.lookAdmin("admin-policy-preview")
	c.fill("#document", "scope_min_acr:\n  openid: nope\ntypo: 1\n")
	c.Follow("button[value=check]")
	c.See("Fix these 2 problems")
	c.lookAdmin("admin-policy-problems")
	c.Follow("form[action='/account/signout'] button")

	// The next sign-in to payroll with the scope asks alice for the passkey.
	a := r.authURL(scope)
	c.Open(a.url)
	c.SignIn(alice, alicePass)
	c.See("Use a passkey or security key")
	c.Click(chrome.PasskeyButton)
	c.WaitFor(`location.href.indexOf("` + rpRedirect + `") === 0`)
	tok := r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrPHR && tok.claims.ACR != "phrh" {
		// A device-bound passkey meets phrh too: with no acr requested the
		// token says the highest level met (DESIGN §3.3).
		t.Fatalf("acr %q after the client's policy asked for phr", tok.claims.ACR)
	}
	if sc, _ := tok.token.Extra("scope").(string); !strings.Contains(" "+sc+" ", " payroll:write ") {
		t.Errorf("the token's scope %q lacks payroll:write", sc)
	}
}
