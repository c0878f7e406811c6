package conformance

// Attacker's review of issue 22, end to end through idp.NewServer and a
// real SMTP relay. Each test names its hole and fails on the merged code.

import (
	"net/url"
	"testing"
	"time"

	"github.com/keystep/keystep/login/factor"
)

// Hole: "controls the email" → an ID token with acr mfa, with no second
// factor of the owner's. Alice has a password and a confirmed address, no
// second factor. Whoever reads her mailbox asks for a reset from a new
// browser on a network Alice uses, sets a password (nothing else is owed),
// signs in (the reset's floor for new devices is unreachable, so it is
// waived at sfa), adds their own authenticator app through the portal's
// bootstrap (the band is low: known network) and then signs in to an RP at
// mfa. The reset's floor should have stood in the way of the bootstrap.
// Fix: the bootstrap (login/account.go bootstrapGate, enroll.go) refuses
// while a reset floor (User.RiskFloorNewDevices) is active on a device not
// known before the reset.
func TestReview22MailboxToMFAThroughTheRelay(t *testing.T) {
	sink := startSMTPSink(t)
	e := newEnv(t, withSMTP(sink))
	e.verifyEmail("u-alice", "alice@example.com")
	r := e.rp(rpClient, e.rpSecret)
	r.login(e.browser(), nil) // the owner's device and network are known
	e.clock.Advance(10 * time.Minute)
	sink.deliver(t, e)

	b := e.browser()
	b.post("/recover", url.Values{"account": {alice}})
	got := sink.deliver(t, e)
	if len(got) != 1 {
		t.Fatalf("relay received %+v, want one reset link", got)
	}
	link := linkTo(t, got[0].text, e.issuer+"/recover/reset?")
	tok, _ := url.Parse(link)
	if p := b.get(link); !p.has("/recover/reset/password") {
		t.Fatalf("the link: %d\n%.1500s", p.status, p.body)
	}
	const newPass = "the mailbox holder's own password"
	if p := b.post("/recover/reset/password", url.Values{"token": {tok.Query().Get("token")}, "new_password": {newPass}, "confirm_password": {newPass}}); p.status != 200 {
		t.Fatalf("the new password: %d\n%.1500s", p.status, p.body)
	}
	e.clock.Advance(time.Minute)
	p := b.signIn(b.get(e.issuer+"/account"), alice, newPass)
	p = b.get(e.issuer + "/account/totp")
	m := secretRE.FindStringSubmatch(p.body)
	if m == nil {
		return // the bootstrap was refused: no hole
	}
	code, _ := factor.TOTPCode(m[1], e.clock.Now())
	b.post("/account/totp", url.Values{"code": {code}, "name": {"Mine"}})

	e.clock.Advance(time.Minute)
	a := r.authURL(url.Values{"acr_values": {acrMFA}, "prompt": {"login"}})
	p = b.signIn(b.get(a.url), alice, newPass)
	if !p.has("/login/otp") {
		t.Fatalf("want the code page, got %d %s\n%.1500s", p.status, p.url, p.body)
	}
	code, _ = factor.TOTPCode(m[1], e.clock.Now())
	p = b.post("/login/otp", url.Values{"id": {p.hidden("id")}, "code": {code}})
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	if p.redirect == nil || p.redirect.Query().Get("code") == "" {
		t.Fatalf("the enrolled app was accepted, but no code: %d %s\n%.1500s", p.status, p.url, p.body)
	}
	tk := r.mustExchange(r.code(p, a), a)
	t.Fatalf("the mailbox alone got an ID token with acr %q amr %v for an account that never had a second factor", tk.claims.ACR, tk.claims.AMR)
}
