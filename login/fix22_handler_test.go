package login_test

// Pins of the issue-22 review fixes beyond what review22_handler_test.go
// asserts: the words a refusal shows, the other half of each rule.

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/storage"
)

// The bootstrap refused under a reset's floor says why, plainly, and
// until when; a device the account used before the reset is not refused.
func TestBootstrapRefusedAfterResetSaysWhy(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	owner := f.browser()
	f.signIn(owner, alice, alicePass)
	f.clock.Advance(time.Hour)
	b := f.browser()
	f.askReset(b, alice)
	if got := b.newPassword(tokenOf(t, f.resetLink(aliceMail)), newPass); got.status != http.StatusOK {
		t.Fatalf("reset: %d", got.status)
	}
	f.clock.Advance(time.Minute)
	f.signIn(b, alice, newPass)
	got := b.get("/account/totp")
	if got.status != http.StatusForbidden || !says(got.body, "Your password was reset recently, and this device is new to your account.") ||
		!says(got.body, "Until ") || totpSecret.MatchString(got.body) {
		t.Fatalf("bootstrap after a reset on a new device: %d\n%.2000s", got.status, got.body)
	}
	if ev := f.audit(storage.EventFactorEnrollRefused); len(ev) == 0 || !strings.Contains(ev[len(ev)-1].Reason, "risk floor") {
		t.Errorf("refusal not audited with its reason: %+v", ev)
	}
	// The owner's device, known before the reset, may still bootstrap.
	f.signIn(owner, alice, newPass)
	if secret := f.enrolPortalTOTP(owner); secret == "" {
		t.Fatal("the owner's known device was refused the bootstrap after the reset")
	}
}

// An admin cannot deny their own request either; it stays pending.
func TestAdminCannotDenyOwnRecoveryRequest(t *testing.T) {
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
	got := console.post("/admin/recovery/"+req.ID+"/deny", url.Values{"reason": {"mine"}})
	if got.status != http.StatusForbidden || !says(got.body, "Another administrator must decide this") {
		t.Fatalf("deny own: %d\n%.1000s", got.status, got.body)
	}
	if q, _ := f.store.RecoveryRequestByID(f.ctx(), req.ID); q.Status != storage.RecoveryPending {
		t.Fatalf("status %s after a refused own decision", q.Status)
	}
}

// The approval notice's cancel link cancels the approved request; once an
// approval expires the person may file a new request.
func TestApprovalNoticeCancelsAndExpiredApprovalFreesFiling(t *testing.T) {
	f := newFixture(t, withMail(), withAdminACR(acrMFA))
	f.makeAdmin(bobID)
	bobSecret := f.enrollTOTP(bobID)
	f.verify(aliceID, aliceMail)
	f.enrollTOTP(aliceID)
	b, adm := f.browser(), f.browser()
	adm.ip = elsewhereIP
	f.stuckAtCode(b, alicePass)
	b.post("/recover/factors", nil)
	req, _ := f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	f.signInMFA(adm, bob, bobPass, bobSecret)
	f.mails()
	adm.post("/admin/recovery/"+req.ID+"/approve", url.Values{"reason": {"called"}})
	var link string
	for _, m := range f.mails() {
		if m.Message.To == aliceMail && strings.Contains(m.Message.Subject, "approved") {
			for _, w := range strings.Fields(m.Message.Text) {
				if strings.Contains(w, "/recover/cancel?") {
					link = w
				}
			}
		}
	}
	if link == "" {
		t.Fatal("no approval notice with a cancel link")
	}
	u, _ := url.Parse(link)
	x := f.browser()
	if got := x.post("/recover/cancel", url.Values{"request": {u.Query().Get("request")}, "token": {u.Query().Get("token")}}); got.status != http.StatusOK {
		t.Fatalf("cancel from the approval notice: %d\n%.1000s", got.status, got.body)
	}
	if q, _ := f.store.RecoveryRequestByID(f.ctx(), req.ID); q.Status != storage.RecoveryCancelled {
		t.Fatalf("status %s", q.Status)
	}

	// A second request, approved, left unused past RecoveryApprovalTTL.
	f.clock.Advance(25 * time.Hour) // past the filing throttle's day
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("second filing: %d", got.status)
	}
	req, _ = f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	f.signInMFA(adm, bob, bobPass, bobSecret)
	adm.post("/admin/recovery/"+req.ID+"/approve", url.Values{"reason": {"called"}})
	f.clock.Advance(storage.RecoveryApprovalTTL)
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors/use", nil); got.status != http.StatusForbidden {
		t.Fatalf("using an expired approval: %d", got.status)
	}
	if got := b.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing after the approval expired: %d\n%.1000s", got.status, got.body)
	}
}

// Past the per-account limit the page is the same as before it, and the
// refusal is counted only in the audit log.
func TestResetPerAccountLimitKeepsThePage(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	var pages []string
	for i, account := range []string{alice, aliceMail, alice, aliceMail} {
		b := f.browser()
		b.ip = "203.0.113." + strconv.Itoa(60+i)
		got := b.post("/recover", url.Values{"account": {account}})
		if got.status != http.StatusOK {
			t.Fatalf("ask %d: %d", i, got.status)
		}
		pages = append(pages, got.body)
	}
	if pages[3] != pages[0] {
		t.Error("the page past the per-account limit differs")
	}
	if ms := f.mails(); len(ms) != 3 {
		t.Errorf("%d links mailed, want 3", len(ms))
	}
	if ev := f.audit(storage.EventRecoveryResetRefused); len(ev) != 1 || ev[0].UserID != aliceID {
		t.Errorf("audit: %+v", ev)
	}
}

// Mail never repeats what a person typed as a User-Agent.
func TestNewSignInMailNamesUnknownBrowsersPlainly(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	f.signIn(f.browser(), alice, alicePass)
	f.clock.Advance(time.Hour)
	f.mails()
	x := f.browser()
	x.ip, x.ua = elsewhereIP, "curl/8.5.0"
	f.signIn(x, alice, alicePass)
	for _, m := range f.mails() {
		if strings.Contains(m.Message.Subject, "sign-in") && !strings.Contains(m.Message.Text, mail.Unrecognised) {
			t.Fatalf("notice:\n%s", m.Message.Text)
		}
	}
}
