package conformance

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/conformance/chrome"
)

const iPhoneUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1"

// userAgent makes a Go browser look like another device in the portal's
// list of sessions.
type userAgent string

func (ua userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", string(ua))
	return http.DefaultTransport.RoundTrip(r)
}

// Every page a person sees, reached through the real forms in Chromium:
// screenshots at 390×844 and 1280×800 in light and dark, and the checks of
// Look on each.
func TestBrowserEveryPage(t *testing.T) {
	c := newTab(t)
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	codes := e.recoveryCodes("u-alice")
	r := e.rp(rpClient, e.rpSecret)

	// Alice is also signed in on her phone, so the portal lists two places.
	phone := e.browser()
	phone.client.Transport = userAgent(iPhoneUA)
	r.login(phone, nil)

	// Sign in: a wrong password first, then the right one.
	a := r.authURL(nil)
	c.Open(a.url)
	c.See("to continue to Acme Payroll")
	c.Look("signin")
	c.TypeIn("#username", alice)
	c.TypeIn("#password", "not her password")
	c.Follow(chrome.SignInButton)
	c.See("That username and password don't match")
	c.Look("signin-wrong-password")
	c.TypeIn("#password", alicePass)
	c.Follow(chrome.SignInButton)
	r.mustExchange(c.rpCode(r, a), a)

	// The app asks for the password again (prompt=login): the user is known.
	e.clock.Advance(time.Minute)
	a = r.authURL(url.Values{"prompt": {"login"}})
	c.Open(a.url)
	c.See("Signed in as")
	c.Look("password-again")
	c.TypeIn("#password", alicePass)
	c.Follow(chrome.SignInButton)
	r.mustExchange(c.rpCode(r, a), a)

	// Step-up: the code page, a wrong code, then another way: a recovery code.
	a = r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	c.See("Acme Payroll needs you to confirm it's you")
	c.Look("code")
	c.TypeIn("#code", "000000")
	c.Follow("form[action='/login/otp'] button[type=submit]")
	c.See("That code didn't work")
	c.Click("details.others summary")
	c.Look("code-wrong")
	c.Follow("details.others a[href*='method=recovery']")
	c.See("You have 10 unused codes")
	c.Look("recovery-code")
	c.TypeIn("#code", codes[0])
	c.Follow("form[action='/login/recovery'] button[type=submit]")
	if tok := r.mustExchange(c.rpCode(r, a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("acr after the recovery code: %q", tok.claims.ACR)
	}

	// A third-party app asks for consent; "Allow" reaches it with a code
	// (the button's decision=allow survives the double-submit guard).
	spa := e.rp(publicClient, "")
	a = spa.authURL(nil)
	c.Open(a.url)
	c.See("Allow Acme SPA to access your account?")
	c.Look("consent")
	c.Follow("button[name=decision][value=allow]")
	spa.mustExchange(c.rpCode(spa, a), a)

	// An error page: a request from a client nobody registered.
	q := url.Values{"client_id": {"nobody"}, "redirect_uri": {rpRedirect}, "response_type": {"code"}, "scope": {"openid"}}
	if status := c.Open(e.issuer + "/authorize?" + q.Encode()); status < 400 {
		t.Fatalf("unknown client: status %d", status)
	}
	c.See("Reference")
	c.Look("error")

	// The portal: overview with the app, two sessions and activity.
	c.Open(e.issuer + "/account")
	c.See("Hello, alice")
	c.See("Phone")
	c.Look("account")

	c.Follow("nav a[href='/account/totp']")
	if n := chrome.Eval[int](c.Browser, "document.querySelectorAll('code.secret').length"); n != 1 {
		t.Fatalf("the enrollment page shows %d keys", n)
	}
	c.Look("account-authenticator")

	// New recovery codes replace the old ones, so the button asks first;
	// saying no changes nothing.
	c.Follow("nav a[href='/account']")
	c.mu.Lock()
	c.accept, c.dialogs = false, nil
	c.mu.Unlock()
	// A listener on window in the capture phase sees the click before the
	// page's confirm listener does and keeps the event, and counts submit
	// events. The click's dispatch, the dialog and the default action (the
	// submit event, which comes before any submission) run in one task, so
	// once the event's phase is back to none all of it has happened.
	chrome.Eval[bool](c.Browser, `(window.clicks = [], window.submits = 0,
  window.addEventListener("click", function (e) { window.clicks.push(e); }, true),
  window.addEventListener("submit", function () { window.submits++; }, true), true)`)
	c.Click("form[action='/account/recovery'] button")
	c.WaitFor("window.clicks.length === 1 && window.clicks[0].eventPhase === Event.NONE")
	if why := chrome.Eval[string](c.Browser, `!window.clicks ? "the page was replaced" :
  !window.clicks[0].defaultPrevented ? "the click was not cancelled" :
  window.submits ? "the form fired a submit event" : ""`); why != "" {
		t.Fatalf("saying no to the confirm did not stop the form: %s", why)
	}
	c.mu.Lock()
	asked := slices.Clone(c.dialogs)
	c.accept = true
	c.mu.Unlock()
	if len(asked) != 1 {
		t.Fatalf("making new recovery codes asked %d times: %q", len(asked), asked)
	}
	if loc := c.Location(); loc != e.issuer+"/account" {
		t.Fatalf("cancelled confirm still left the page: %s", loc)
	}
	if n, _ := e.store.CountRecoveryCodes(context.Background(), "u-alice"); n != 9 {
		t.Fatalf("cancelled confirm changed the codes: %d left", n)
	}
	c.Follow("form[action='/account/recovery'] button")
	c.See("This is the only time they are shown")
	shown := chrome.Eval[[]string](c.Browser, "Array.from(document.querySelectorAll('ul.codes li code'), function (c) { return c.textContent; })")
	if len(shown) != 10 {
		t.Fatalf("%d recovery codes shown", len(shown))
	}
	c.Click("button[data-copy]")
	c.Must(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool]("document.querySelector('button[data-copy]').textContent === 'Copied'", chromedp.WithPollingTimeout(5*time.Second))(ctx, tg)
		return err
	}))
	copied, err := chromedp.Run(c.Context(), chromedp.Evaluate[string]("navigator.clipboard.readText()", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("reading the clipboard: %v", err)
	}
	if got := strings.Fields(copied); !slices.Equal(got, shown) {
		t.Fatalf("Copy put %q on the clipboard, want the codes %q", copied, shown)
	}
	c.Look("recovery-codes")

	// Change the password: a typo in the second field, then done.
	c.Follow("nav a[href='/account/password']")
	c.Look("password-change")
	c.TypeIn("#new_password", "a much better passphrase")
	c.TypeIn("#confirm_password", "a much better passphrase!")
	c.Follow("form[action='/account/password'] button[type=submit]")
	c.See("The two passwords don't match")
	c.TypeIn("#new_password", "a much better passphrase")
	c.TypeIn("#confirm_password", "a much better passphrase")
	c.Follow("form[action='/account/password'] button[type=submit]")
	c.See("Your password was changed")
	c.Look("account-password-changed")

	// The email page, and the question an app's sign-out link without an
	// ID token asks.
	c.Follow("nav a[href='/account/email']")
	c.Look("account-email")
	c.Open(e.issuer + "/end_session")
	c.See("Sign out?")
	c.Look("logout-confirm")
	c.Follow("a[href='/account']")

	// Sign out.
	c.Follow("form[action='/account/signout'] button")
	c.See("You're signed out")
	c.Look("signed-out")

	// First-run setup, on a server with no users yet.
	fresh := newEnvNoUsers(t)
	link, err := setupLink(fresh)
	if err != nil || link == "" {
		t.Fatalf("setup link %q: %v", link, err)
	}
	c.Open(link)
	c.See("Create the first administrator account")
	c.Look("setup")
}

// A whole sign-in typed into Chromium: username and password, then the
// authenticator code, back at the app with mfa. A double click on "Sign in"
// while the server is slow sends the form once.
func TestBrowserSignInWithStepUp(t *testing.T) {
	c := newTab(t)
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)

	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	c.TypeIn("#username", alice)
	c.TypeIn("#password", alicePass)

	post := e.issuer + "/login/password"
	c.mu.Lock()
	c.holds[post], c.hold = nil, 500*time.Millisecond
	c.mu.Unlock()
	// Two clicks at the same spot, the second while the first request is
	// held back for half a second, as a person on a slow network does.
	at := chrome.Eval[[]float64](c.Browser, `(function () {
  var r = document.querySelector("form[action='/login/password'] button[type=submit]").getBoundingClientRect();
  return [r.left + r.width / 2, r.top + r.height / 2];
})()`)
	c.Must(chromedp.MouseClickXY(at[0], at[1]))
	c.waitHeld(post)
	c.Must(chromedp.MouseClickXY(at[0], at[1]))
	c.Must(chromedp.WaitVisible(chromedp.CSS("form[action='/login/otp']")))
	c.mu.Lock()
	sent := len(c.holds[post])
	delete(c.holds, post)
	c.hold = 0
	c.mu.Unlock()
	if sent != 1 {
		t.Fatalf("a double click sent the sign-in form %d times", sent)
	}

	c.See("Acme Payroll needs you to confirm it's you")
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	tok := r.mustExchange(c.rpCode(r, a), a)
	if tok.claims.ACR != acrMFA || !slices.Contains(tok.claims.AMR, "pwd") || !slices.Contains(tok.claims.AMR, "otp") {
		t.Fatalf("claims %+v", tok.claims)
	}
	c.CheckProblems("sign-in with step-up")
}
