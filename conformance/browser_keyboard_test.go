package conformance

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"

	"github.com/keystep/keystep/conformance/chrome"
)

// Keyboard-only runs (issue 24): a person who cannot use a mouse signs in
// with a password, steps up with an authenticator code, and adds a passkey
// in the portal with nothing but Tab, Shift+Tab, Enter, Space and typing.
// On every page the focus goes through the controls in the page's order,
// and every stop shows a ring a person can see (chrome.CheckTabOrder).

// oneStop fails the test unless Tab (or Shift+Tab) went straight to the
// next control, with nothing in between.
func oneStop(t *testing.T, what string, stops []string) {
	t.Helper()
	if len(stops) != 1 {
		t.Errorf("%s took %d presses: %q", what, len(stops), stops)
	}
}

func TestBrowserKeyboardSignInWithCode(t *testing.T) {
	c := newTab(t)
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)

	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	c.See("to continue to Acme Payroll")
	// The username field has the focus when the page opens; Tab goes
	// through the rest in order, and Shift+Tab comes back.
	c.FocusIs("#username")
	t.Logf("%s: Tab goes through %q", c.Location(), c.CheckTabOrder())
	c.Tab("#username", true)
	c.Type(alice)
	oneStop(t, "username → password", c.Tab("#password", false))
	c.Type("not her password")
	oneStop(t, "password → Sign in", c.Tab(chrome.SignInButton, false))
	c.PressFollow(kb.Enter)
	c.See("That username and password don't match")

	// After a wrong password the page comes back with the username kept
	// and the focus in the password field.
	c.FocusIs("#password")
	oneStop(t, "password → username, backwards", c.Tab("#username", true))
	oneStop(t, "username → password", c.Tab("#password", false))
	c.Type(alicePass)
	c.Tab(chrome.SignInButton, false)
	c.PressFollow(kb.Enter)

	// The code page: the field has the focus; Space presses "Verify".
	c.See("Acme Payroll needs you to confirm it's you")
	c.FocusIs("#code")
	t.Logf("%s: Tab goes through %q", c.Location(), c.CheckTabOrder())
	c.Tab("#code", true)
	c.Type("000000")
	oneStop(t, "code → Verify", c.Tab("form[action='/login/otp'] button[type=submit]", false))
	c.PressFollow(" ")
	c.See("That code didn't work")
	c.FocusIs("#code")
	c.Type(e.totp(secret))
	c.Tab("form[action='/login/otp'] button[type=submit]", false)
	c.PressFollow(" ")

	tok := r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrMFA || !slices.Contains(tok.claims.AMR, "pwd") || !slices.Contains(tok.claims.AMR, "otp") {
		t.Fatalf("claims after a keyboard-only sign-in: %+v", tok.claims)
	}
	c.CheckProblems("keyboard-only sign-in")
}

func TestBrowserKeyboardAddPasskey(t *testing.T) {
	c := newPasskeyTab(t)
	e := newEnv(t, onLocalhost, coolingOff(time.Minute))
	c.addAuthenticator(chrome.SyncedPasskey)

	c.Open(e.issuer + "/account")
	c.FocusIs("#username")
	c.Type(alice)
	c.Tab("#password", false)
	c.Type(alicePass)
	c.Tab(chrome.SignInButton, false)
	c.PressFollow(kb.Enter)
	c.See("Hello, alice")

	// The overview: nothing has the focus until the first Tab; the
	// navigation comes first, in the order it is shown.
	if f := c.Focused(); f != "" {
		t.Errorf("the overview opened with the focus on %s", f)
	}
	t.Logf("%s: Tab goes through %q", c.Location(), c.CheckTabOrder())
	c.Tab("nav a[href='/account/passkey']", true)
	c.PressFollow(kb.Enter)
	c.See("Add a passkey or security key")

	t.Logf("%s: Tab goes through %q", c.Location(), c.CheckTabOrder())
	c.Tab("#passkey-name", true)
	// Tab into a field selects what is in it, so typing replaces the
	// suggested name.
	c.Type("Alice's laptop")
	oneStop(t, "name → Add passkey", c.Tab(chrome.AddPasskeyButton, false))
	c.PressFollow(kb.Enter)
	c.See("Your passkey is ready. Save these recovery codes now.")
	t.Logf("%s: Tab goes through %q", c.Location(), c.CheckTabOrder())

	keys, _ := e.passkeys("u-alice")
	if len(keys) != 1 || keys[0].Name != "Alice's laptop" {
		t.Fatalf("passkeys after a keyboard-only enrollment: %+v", keys)
	}
	c.CheckProblems("keyboard-only passkey enrollment")
}
