package login_test

// Attacker's review of issue 22 (account recovery). Every test here names
// a hole in its doc comment and fails on the code as merged for exactly
// that reason; none of them is a fix.

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// enrolPortalTOTP adds an authenticator app from b's portal session and
// returns its secret, or "" when the portal refused.
func (f *fixture) enrolPortalTOTP(b *browser) string {
	f.t.Helper()
	page := b.get("/account/totp")
	m := totpSecret.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		return ""
	}
	if got := b.post("/account/totp", url.Values{"code": {f.totp(m[1])}, "name": {"Attacker"}}); got.status != http.StatusOK {
		return ""
	}
	return m[1]
}

// Hole: "controls the email" reaches mfa. For an account with no second
// factor, whoever reads the mailbox resets the password from a browser the
// account never used, signs in (the reset's floor for new devices is
// unreachable, so it is waived at sfa) and then adds their own
// authenticator app through the portal's bootstrap, because the reset's
// device is on a network the owner uses (same office, same café): the
// bootstrap asks only for a low risk band, and the reset's floor for new
// devices does not count against it. The mailbox holder then holds an mfa
// session on an account whose owner never had more than a password.
// Fix: refuse the bootstrap while a reset floor (RiskFloorNewDevices) is
// active and the device was not known before the reset.
func TestReview22MailboxResetThenBootstrapReachesMFA(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	owner := f.browser()
	f.signIn(owner, alice, alicePass) // the owner's device and network are known
	f.clock.Advance(time.Hour)
	f.mails()

	b := f.browser() // a new device on the owner's network
	f.askReset(b, alice)
	link := f.resetLink(aliceMail)
	if got := b.newPassword(tokenOf(t, link), newPass); got.status != http.StatusOK {
		t.Fatalf("reset without a second factor: %d\n%.1500s", got.status, got.body)
	}
	f.clock.Advance(time.Minute)
	f.signIn(b, alice, newPass)
	f.clock.Advance(time.Minute)
	secret := f.enrolPortalTOTP(b)
	if secret == "" {
		return // refused: no hole
	}
	f.clock.Advance(time.Minute)
	id := f.request(b, mfaClient)
	r := b.password(id, alice, newPass)
	if r.status == http.StatusSeeOther && r.location == "/login?id="+url.QueryEscape(id) {
		r = b.open(id)
	}
	if hasForm(r.body, "/login/otp") {
		r = b.code("/login/otp", id, f.totp(secret))
		if r.status == http.StatusSeeOther {
			r = b.open(id)
		}
	}
	if r.location == f.callback(f.ctx(), id) {
		t.Fatal("the mailbox alone reached mfa: reset by email, then the portal bootstrap bound the attacker's own authenticator app")
	}
	t.Fatalf("the attacker's app was enrolled after a reset by email on a new device (%d %q)", r.status, r.location)
}

// Hole: an admin approves their own recovery request. Anyone holding an
// admin's password and a still-open console session (a stolen cookie, an
// unlocked laptop) files a request for that admin and approves it at once,
// so the cooling-off and the second pair of eyes are skipped: the admin's
// second factors are then wiped and replaced. DecideRecovery does not
// compare by.ID with req.UserID.
// Fix: in admin.Service.DecideRecovery, refuse approve when by.ID == req.UserID.
func TestReview22AdminApprovesOwnRecoveryRequest(t *testing.T) {
	f := newFixture(t, withMail(), withAdminACR(acrMFA))
	f.makeAdmin(aliceID)
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	console := f.browser()
	f.signInMFA(console, alice, alicePass, secret)

	b := f.browser()
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing: %d", got.status)
	}
	req, err := f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	if err != nil {
		t.Fatal(err)
	}
	got := console.post("/admin/recovery/"+req.ID+"/approve", url.Values{"reason": {"it is me"}})
	if got.status == http.StatusSeeOther {
		if use := b.post("/recover/factors/use", nil); use.status == http.StatusSeeOther {
			t.Fatalf("an admin approved their own recovery request and wiped their factors without the cooling-off")
		}
		t.Fatalf("an admin approved their own recovery request (%d)", got.status)
	}
}

// Hole: an approval never expires. Once an admin approves a request it
// stays usable for ever (RecoveryRequest.Eligible: Status ==
// RecoveryApproved, no time bound), through the owner's own mfa sign-ins
// and a password change: a year later whoever learns the password wipes
// the factors with no cooling-off and no new notice.
// Fix: Eligible refuses an approval older than a short window (e.g. 7 days
// after DecidedAt), and a sign-in with a second factor closes open requests.
func TestReview22ApprovedRecoveryRequestNeverExpires(t *testing.T) {
	f := newFixture(t, withMail(), withAdminACR(acrMFA))
	f.makeAdmin(bobID)
	bobSecret := f.enrollTOTP(bobID)
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	b, adm := f.browser(), f.browser()
	adm.ip = elsewhereIP
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing: %d", got.status)
	}
	req, _ := f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	f.signInMFA(adm, bob, bobPass, bobSecret)
	if got := adm.post("/admin/recovery/"+req.ID+"/approve", url.Values{"reason": {"verified on a call"}}); got.status != http.StatusSeeOther {
		t.Fatalf("approve: %d", got.status)
	}
	// The owner found the phone: signs in with it, every day, for a year.
	for range 365 {
		f.clock.Advance(24 * time.Hour)
	}
	f.signInMFA(f.browser(), alice, alicePass, secret)

	// Someone with the password, a year later.
	x := f.browser()
	f.stuckAtCode(x, alicePass)
	if got := x.post("/recover/factors/use", nil); got.status == http.StatusSeeOther {
		t.Fatal("a year-old approval, after the owner's own mfa sign-ins, still wiped the second factors")
	}
}

// Hole: a pending request is not closed when the owner proves the second
// factor. A thief with the password files a request; the owner, who still
// has the authenticator app, keeps signing in with it (and the notice went
// to spam). The owner's successful mfa sign-in is proof the factor is not
// lost, yet after 72 hours the thief's request wipes it.
// Fix: a completed sign-in with a second factor cancels the user's pending
// recovery requests (audited), or postUseRecovery refuses when a second
// factor was used after req.CreatedAt.
func TestReview22PendingRequestSurvivesOwnersSecondFactor(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	f.mails()
	thief := f.browser()
	thief.ip = elsewhereIP
	f.stuckAtCode(thief, alicePass)
	if got := thief.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing: %d", got.status)
	}
	f.clock.Advance(time.Hour)
	f.signInMFA(f.browser(), alice, alicePass, secret) // the factor is not lost
	f.clock.Advance(72 * time.Hour)
	f.stuckAtCode(thief, alicePass)
	if got := thief.post("/recover/factors/use", nil); got.status == http.StatusSeeOther {
		t.Fatal("a request filed by someone else was used after the owner proved the authenticator app")
	}
}

// Hole: text injection into Keystep's own mail. A sign-in's User-Agent
// that is not a known browser is copied (60 characters, only control
// characters removed) into the "Device:" line of the new-sign-in notice,
// so whoever knows the password writes a line of their choosing, link
// included, into a genuine Keystep message to the owner ("Device: Call
// +1 555 0100 or visit https://evil.example/fix").
// Fix: mail.Device returns "an unrecognised browser" for a User-Agent it
// does not know.
func TestReview22UserAgentTextInjectedIntoNewSignInMail(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	f.signIn(f.browser(), alice, alicePass) // history, so the next one is new
	f.clock.Advance(time.Hour)
	f.mails()
	x := f.browser()
	x.ip = elsewhereIP
	x.ua = "SECURITY TEAM: re-verify at https://evil.example/k"
	f.signIn(x, alice, alicePass)
	var found bool
	for _, m := range f.mails() {
		if m.Message.Subject == "" || !strings.Contains(m.Message.Subject, "sign-in") {
			continue
		}
		found = true
		if strings.Contains(m.Message.Text, "evil.example") || strings.Contains(m.Message.HTML, "evil.example") {
			t.Fatalf("attacker text in the new-sign-in notice:\n%s", m.Message.Text)
		}
	}
	if !found {
		t.Fatal("no new-sign-in notice was queued")
	}
}

// Hole (race of two email changes): a superseded confirmation link still
// works. A person asks for address A, then for B, and confirms B; the
// older link to A, still within its 30 minutes, later moves the address
// back to A without a new request at the account's level. Whoever reads A
// (a mistyped or since-lost address, or the one a thief asked for while
// briefly holding the session) then receives every reset link and the
// cancel notices of recovery requests.
// Fix: confirming an address (or asking for a new one) revokes the user's
// other outstanding email-confirmation tokens (e.g. bind the token hash to
// a per-user counter bumped on each request and confirmation).
func TestReview22SupersededEmailLinkStillConfirms(t *testing.T) {
	f := newFixture(t, withMail())
	b := f.browser()
	f.signIn(b, alice, alicePass)
	linkA := f.requestEmail(b, "alice@typo.example")
	f.clock.Advance(time.Minute)
	linkB := f.requestEmail(b, "alice@right.example")
	if got := b.get(linkB); got.status != http.StatusSeeOther {
		t.Fatalf("confirming B: %d", got.status)
	}
	f.clock.Advance(time.Minute)
	f.mails()
	got := b.get(linkA)
	if u := f.user(aliceID); u.Email == "alice@typo.example" {
		t.Fatalf("the superseded link moved the confirmed address back to A (%d)", got.status)
	}
}

// Hole (recovery spam): reset requests are throttled per string typed, not
// per account reached. The limit of 3 an hour (scopeRecoverAccount) is
// keyed on the lowercased name or address as typed, so asking by the
// username and by the address doubles the mail one inbox receives (and
// resets the victim's "if you didn't ask" alarm twice as often); with
// several accounts sharing the address, more.
// Fix: in postRecover, also RecordFailure a key per matched user ID (or
// key the account scope on the resolved user IDs, decoy on the string).
func TestReview22ResetMailThrottledPerStringNotPerAccount(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	for i, account := range []string{alice, alice, alice, aliceMail, aliceMail, aliceMail} {
		b := f.browser()
		b.ip = "203.0.113." + strconv.Itoa(30+i)
		b.post("/recover", url.Values{"account": {account}})
	}
	if ms := f.mails(); len(ms) > 3 {
		t.Fatalf("%d reset links mailed to one account in an hour, want at most 3", len(ms))
	}
}

// Hole (approve path): an early approval is not told to the owner. The
// notice at filing says the request can be used at EligibleAt, three days
// out; an admin's approval (talked into it by whoever filed) makes it
// usable at once, and the confirmed address hears nothing until the
// factors are already gone, so the cancel link in the notice is useless in
// exactly the case it exists for.
// Fix: admin.Service.DecideRecovery (or the console handler) queues a
// notice to the confirmed address on approval, with the cancel link's
// meaning ("it can be used now").
func TestReview22EarlyApprovalIsNotTold(t *testing.T) {
	f := newFixture(t, withMail(), withAdminACR(acrMFA))
	f.makeAdmin(bobID)
	bobSecret := f.enrollTOTP(bobID)
	f.verify(aliceID, aliceMail)
	f.enrollTOTP(aliceID)
	b, adm := f.browser(), f.browser()
	adm.ip = elsewhereIP
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing: %d", got.status)
	}
	req, _ := f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	f.signInMFA(adm, bob, bobPass, bobSecret)
	f.mails()
	if got := adm.post("/admin/recovery/"+req.ID+"/approve", url.Values{"reason": {"caller sounded right"}}); got.status != http.StatusSeeOther {
		t.Fatalf("approve: %d", got.status)
	}
	for _, m := range f.mails() {
		if m.Message.To == aliceMail {
			return
		}
	}
	t.Fatal("the owner's confirmed address was not told that the request was approved and can be used now")
}
