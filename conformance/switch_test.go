package conformance

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/keystep/keystep/conformance/chrome"
)

// Issue 24's acceptance: at a browser where bob is signed in, alice signs
// in through "Use another account" (the app asked for prompt=select_account),
// gets her own session (a new sid, her own factors only) and bob's session
// no longer answers in that browser.
func TestUseAnotherAccountEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.addUser("bob", "bob's long enough password")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()

	a := r.authURL(nil)
	bobs := r.mustExchange(r.code(b.signIn(b.get(a.url), "bob", "bob's long enough password"), a), a)
	if bobs.claims.Sub != "u-bob" {
		t.Fatalf("first sign-in is %s", bobs.claims.Sub)
	}
	issuer, _ := url.Parse(e.issuer)
	bobCookies := b.client.Jar.Cookies(issuer)

	a = r.authURL(url.Values{"prompt": {"select_account"}})
	p := b.get(a.url)
	if p.status != http.StatusOK || !p.has("/login/select") || !p.has("/login/switch") {
		t.Fatalf("want the account choice, got %d at %s:\n%.2000s", p.status, p.url, p.body)
	}
	p = b.post("/login/switch", url.Values{"id": {p.hidden("id")}})
	alices := r.mustExchange(r.code(b.signIn(p, alice, alicePass), a), a)
	if alices.claims.Sub != "u-alice" || alices.claims.SID == "" || alices.claims.SID == bobs.claims.SID || !slices.Equal(alices.claims.AMR, []string{"pwd"}) {
		t.Errorf("alice's tokens: sub %s sid %s (bob's %s) amr %v", alices.claims.Sub, alices.claims.SID, bobs.claims.SID, alices.claims.AMR)
	}

	// bob's cookie, kept from before the switch, no longer answers.
	stale := e.browser()
	stale.client.Jar.SetCookies(issuer, bobCookies)
	if p := stale.get(e.issuer + "/account"); !p.has("/login/password") {
		t.Errorf("bob's old cookie at the portal: want the sign-in page, got %d at %s", p.status, p.url)
	}
}

// OIDC Core §3.1.2.6: prompt=none with select_account cannot be served
// without a page: account_selection_required, sent back to the client.
// Discovery lists the prompt values Keystep serves.
func TestSelectAccountUnderPromptNone(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	a := r.authURL(url.Values{"prompt": {"none select_account"}})
	if got := r.rpError(e.browser().get(a.url), a); got != "account_selection_required" {
		t.Errorf("error %q, want account_selection_required", got)
	}
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Prompts []string `json:"prompt_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(m.Prompts, "select_account") || !slices.Contains(m.Prompts, "none") {
		t.Errorf("prompt_values_supported = %v", m.Prompts)
	}
}

// The account choice and the switch in Chromium: the choice, the sign-in
// page saying the other account was signed out, and a step-up page with
// "Use another account" beside the name, looked at (screenshots).
func TestBrowserUseAnotherAccount(t *testing.T) {
	c := newTab(t)
	e := newEnv(t)
	e.addUser("bob", "bob's long enough password")
	r := e.rp(rpClient, e.rpSecret)

	a := r.authURL(nil)
	c.Open(a.url)
	c.TypeIn("#username", "bob")
	c.TypeIn("#password", "bob's long enough password")
	c.Follow(chrome.SignInButton)
	r.mustExchange(c.rpCode(r, a), a)

	e.clock.Advance(time.Minute)
	a = r.authURL(url.Values{"prompt": {"login"}})
	c.Open(a.url)
	c.See("Use another account")
	c.Look("password-again-switch")

	a = r.authURL(url.Values{"prompt": {"select_account"}})
	c.Open(a.url)
	c.See("Continue as bob")
	c.Look("select-account")
	c.Follow("form[action='/login/switch'] button[type=submit]")
	c.See("The other account is signed out in this browser")
	c.Look("signin-switched")
	c.TypeIn("#username", alice)
	c.TypeIn("#password", alicePass)
	c.Follow(chrome.SignInButton)
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.Sub != "u-alice" {
		t.Fatalf("signed in as %s", tok.claims.Sub)
	}
}
