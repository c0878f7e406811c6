package conformance

import (
	"net/url"
	"testing"
	"time"
)

// Every recovery page (issue 22), reached through the real forms in
// Chromium, looked at and saved as screenshots: forgot password, the
// answer, the link's second-factor and new-password steps, the end; the
// lost-factor page and its request; the cancel page; the console's list.
func TestBrowserRecoveryPages(t *testing.T) {
	c := newTab(t)
	sink := startSMTPSink(t)
	e, adaSecret := adminEnv(t, withSMTP(sink))
	e.verifyEmail("u-alice", "alice@example.com")
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)

	a := r.authURL(nil)
	c.Open(a.url)
	c.Follow("a[href='/recover']")
	c.See("Enter your username or email address")
	c.Look("recover")
	c.TypeIn("#account", alice)
	c.Follow("form[action='/recover'] button[type=submit]")
	c.See("Check your email")
	c.Look("recover-sent")

	got := sink.deliver(t, e)
	if len(got) != 1 {
		t.Fatalf("relay received %+v", got)
	}
	c.Open(linkTo(t, got[0].text, e.issuer+"/recover/reset?"))
	c.See("First, confirm it's you")
	c.Look("recover-code")
	e.clock.Advance(30 * time.Second)
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/recover/reset/code'] button[type=submit]")
	c.See("Choose a new password")
	c.Look("recover-new-password")
	const newPass = "a brand new long password"
	c.TypeIn("#new_password", newPass)
	c.TypeIn("#confirm_password", newPass)
	c.Follow("form[action='/recover/reset/password'] button[type=submit]")
	c.See("Your password was changed")
	c.Look("recover-done")
	sink.deliver(t, e)

	// Lost the phone: after the password, the code page offers a request.
	e.clock.Advance(time.Minute)
	a = r.authURL(url.Values{"acr_values": {acrMFA}})
	c.Open(a.url)
	c.TypeIn("#username", alice)
	c.TypeIn("#password", newPass)
	c.Follow("form[action='/login/password'] button[type=submit]")
	c.Follow("a[href='/recover/factors']")
	c.See("Lost your second factor?")
	c.Look("recover-lost")
	c.Follow("form[action='/recover/factors'] button[type=submit]")
	c.See("Your request was filed.")
	c.Look("recover-requested")

	got = sink.deliver(t, e)
	if len(got) != 1 {
		t.Fatalf("relay received %+v", got)
	}
	c.Open(linkTo(t, got[0].text, e.issuer+"/recover/cancel?"))
	c.See("Cancel the request")
	c.Look("recover-cancel")

	// The console's list, before anything is decided.
	admin := newTab(t)
	admin.Open(e.issuer + "/admin/recovery")
	admin.TypeIn("#username", ada)
	admin.TypeIn("#password", adaPass)
	admin.Follow("form[action='/login/password'] button[type=submit]")
	admin.TypeIn("#code", e.totp(adaSecret))
	admin.Follow("form[action='/login/otp'] button[type=submit]")
	admin.See("Requests to replace lost sign-in methods")
	admin.lookAdmin("admin-recovery")

	c.Follow("form[action='/recover/cancel'] button[type=submit]")
	c.See("The request was cancelled")
	c.Look("recover-cancelled")
}
