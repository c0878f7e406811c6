package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/storage"
)

// withMail turns email on. Handlers only queue; the outbox (idp) sends.
func withMail() option {
	return func(c *fixtureConfig) { c.Mail = &mail.Dir{Path: "/nonexistent", From: "id@example.com"} }
}

// mails returns the queued mail messages, oldest first, and deletes them
// (as the outbox worker does once they are sent).
func (f *fixture) mails() []mail.Queued {
	f.t.Helper()
	ms, err := f.store.OutboxMessages(f.ctx(), "", "", 100)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []mail.Queued
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if m.Kind != storage.OutboxMail {
			continue
		}
		var q mail.Queued
		if err := json.Unmarshal([]byte(m.Payload), &q); err != nil {
			f.t.Fatal(err)
		}
		if m.Target != "mailto:"+q.Message.To {
			f.t.Errorf("target %q for a message to %q", m.Target, q.Message.To)
		}
		out = append(out, q)
		if err := f.store.FinishOutbox(f.ctx(), m.ID); err != nil {
			f.t.Fatal(err)
		}
	}
	return out
}

// confirmLink is the portal path of the link in a ConfirmEmail message.
func confirmLink(t *testing.T, f *fixture, q mail.Queued) string {
	t.Helper()
	i := strings.Index(q.Message.Text, f.srv.URL+"/account/email/confirm?")
	if i < 0 {
		t.Fatalf("no confirmation link in:\n%s", q.Message.Text)
	}
	link := strings.Fields(q.Message.Text[i:])[0]
	return strings.TrimPrefix(link, f.srv.URL)
}

func (f *fixture) user(id string) storage.User {
	f.t.Helper()
	u, err := f.store.UserByID(f.ctx(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// requestEmail asks, as b, to use addr, and returns the link mailed to it.
func (f *fixture) requestEmail(b *browser, addr string) string {
	f.t.Helper()
	got := b.post("/account/email", url.Values{"email": {addr}})
	if got.status != http.StatusOK || !says(got.body, "We sent a link to "+addr) {
		f.t.Fatalf("asking for %s: got %d\n%.2000s", addr, got.status, got.body)
	}
	ms := f.mails()
	if len(ms) != 1 || ms[0].Message.To != addr || ms[0].Message.Subject != "Confirm your email address for Keystep" {
		f.t.Fatalf("mail queued: %+v, want one confirmation to %s", ms, addr)
	}
	return confirmLink(f.t, f, ms[0])
}

func TestEmailChangeIsConfirmedByTheLinkAndTheOldAddressIsTold(t *testing.T) {
	f := newFixture(t, withMail())
	b := f.browser()
	f.signIn(b, alice, alicePass)

	if page := b.get("/account/email"); page.status != http.StatusOK || !hasForm(page.body, "/account/email") {
		t.Fatalf("email page: %d\n%.2000s", page.status, page.body)
	}
	link := f.requestEmail(b, "alice@one.example")
	if u := f.user(aliceID); u.Email != "" || u.EmailVerified {
		t.Fatalf("the address changed before the link was opened: %+v", u)
	}
	f.clock.Advance(5 * time.Minute)
	got := b.get(link)
	if got.status != http.StatusSeeOther || got.location != "/account?notice=email" {
		t.Fatalf("opening the link: %d %q\n%.2000s", got.status, got.location, got.body)
	}
	u := f.user(aliceID)
	if u.Email != "alice@one.example" || !u.EmailVerified || !u.EmailVerifiedAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("after the link: email %q verified %v at %v", u.Email, u.EmailVerified, u.EmailVerifiedAt)
	}
	if ms := f.mails(); len(ms) != 0 {
		t.Errorf("an address never confirmed was told of the change: %+v", ms)
	}
	if ev := f.audit(storage.EventAccountEmailChanged); len(ev) != 1 || ev[0].Details["email"] != "alice@one.example" {
		t.Errorf("audit: %+v", ev)
	}

	// A link works once.
	if again := b.get(link); again.status != http.StatusGone || !says(again.body, "already used") {
		t.Errorf("the link again: %d\n%.1000s", again.status, again.body)
	}

	// A second change: the confirmed old address hears of it.
	link = f.requestEmail(b, "alice@two.example")
	if got := b.get(link); got.status != http.StatusSeeOther {
		t.Fatalf("opening the second link: %d\n%.1000s", got.status, got.body)
	}
	ms := f.mails()
	if len(ms) != 1 || ms[0].Message.To != "alice@one.example" || ms[0].UserID != aliceID ||
		!strings.Contains(ms[0].Message.Text, "changed to alice@two.example") {
		t.Fatalf("the old address was not told: %+v", ms)
	}
	if u := f.user(aliceID); u.Email != "alice@two.example" || !u.EmailVerified {
		t.Fatalf("after the second link: %+v", u)
	}
}

func TestEmailLinkWorksOnlyForTheUserWhoAsked(t *testing.T) {
	f := newFixture(t, withMail())
	ab, bb := f.browser(), f.browser()
	f.signIn(ab, alice, alicePass)
	f.signIn(bb, bob, bobPass)
	link := f.requestEmail(ab, "alice@one.example")

	got := bb.get(link)
	if got.status != http.StatusBadRequest || !says(got.body, "another account") {
		t.Fatalf("bob opening alice's link: %d\n%.1000s", got.status, got.body)
	}
	if u := f.user(bobID); u.Email != "" || u.EmailVerified {
		t.Fatalf("bob's account took alice's link: %+v", u)
	}
	// The address in the link is part of what it confirms.
	tampered := strings.Replace(link, "alice%40one.example", "eve%40evil.example", 1)
	if got := ab.get(tampered); got.status != http.StatusBadRequest {
		t.Fatalf("a changed address: %d", got.status)
	}
	if u := f.user(aliceID); u.Email != "" {
		t.Fatalf("a changed link changed the address: %+v", u)
	}
	// Neither spent it: alice still can.
	if got := ab.get(link); got.status != http.StatusSeeOther {
		t.Fatalf("alice's own link after the refusals: %d\n%.1000s", got.status, got.body)
	}
}

func TestEmailLinkExpiresAfter30Minutes(t *testing.T) {
	f := newFixture(t, withMail())
	b := f.browser()
	f.signIn(b, alice, alicePass)
	link := f.requestEmail(b, "alice@one.example")
	f.clock.Advance(31 * time.Minute)
	if got := b.get(link); got.status != http.StatusGone || !says(got.body, "expired") {
		t.Fatalf("an expired link: %d\n%.1000s", got.status, got.body)
	}
	if u := f.user(aliceID); u.Email != "" {
		t.Fatalf("an expired link changed the address: %+v", u)
	}
}

func TestEmailLinkOpenedSignedOutComesBackAfterSignIn(t *testing.T) {
	f := newFixture(t, withMail())
	b := f.browser()
	f.signIn(b, alice, alicePass)
	link := f.requestEmail(b, "alice@one.example")
	other := f.browser()
	got := other.get(link)
	if got.status != http.StatusSeeOther || !strings.HasPrefix(got.location, "/authorize?") {
		t.Fatalf("signed out: %d %q, want the sign-in", got.status, got.location)
	}
	// The portal remembers the whole link (path and query) to come back to.
	if c := other.cookies()["ks_portal"]; !strings.HasSuffix(c, "|"+link) {
		t.Fatalf("the portal returns to %q after the sign-in, want the whole link %q", c, link)
	}
}

func TestEmailChangeNeedsTheLevelFresh(t *testing.T) {
	f := newFixture(t, withMail())
	b := f.browser()
	f.signIn(b, alice, alicePass)
	f.clock.Advance(11 * time.Minute)
	got := b.post("/account/email", url.Values{"email": {"alice@one.example"}})
	if got.status != http.StatusSeeOther || !strings.HasPrefix(got.location, "/authorize?") || !strings.Contains(got.location, "max_age=600") {
		t.Fatalf("a stale session: %d %q, want the step-up", got.status, got.location)
	}
	if ms := f.mails(); len(ms) != 0 {
		t.Fatalf("mail queued without the level: %+v", ms)
	}
}

func TestEmailWithoutMailSetUpSaysSoAndQueuesNothing(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	f.signIn(b, alice, alicePass)
	page := b.get("/account/email")
	if page.status != http.StatusOK || !says(page.body, "Email isn't set up on this server") || hasForm(page.body, "/account/email") {
		t.Fatalf("email page without mail: %d\n%.2000s", page.status, page.body)
	}
	got := b.post("/account/email", url.Values{"email": {"alice@one.example"}})
	if got.status != http.StatusServiceUnavailable || !says(got.body, "Email isn't set up") {
		t.Fatalf("posting without mail: %d\n%.1000s", got.status, got.body)
	}
	if ms := f.mails(); len(ms) != 0 {
		t.Fatalf("mail queued with no sender: %+v", ms)
	}
	if ev := f.audit(storage.EventAccountEmailChangeRequested); len(ev) != 0 {
		t.Fatalf("a request audited that went nowhere: %+v", ev)
	}
}

func TestEmailRefusesABadAddress(t *testing.T) {
	f := newFixture(t, withMail())
	b := f.browser()
	f.signIn(b, alice, alicePass)
	for _, bad := range []string{"", "alice", "Alice <alice@one.example>", "a@b.example, c@d.example"} {
		got := b.post("/account/email", url.Values{"email": {bad}})
		if got.status != http.StatusBadRequest || !says(got.body, "Enter one email address") {
			t.Errorf("%q: %d", bad, got.status)
		}
	}
	if ms := f.mails(); len(ms) != 0 {
		t.Fatalf("mail queued for a bad address: %+v", ms)
	}
}

// verify gives the user a confirmed address, as the link would.
func (f *fixture) verify(id, addr string) {
	f.t.Helper()
	u := f.user(id)
	u.Email, u.EmailVerified, u.EmailVerifiedAt = addr, true, t0
	if err := f.store.UpdateUser(context.Background(), u); err != nil {
		f.t.Fatal(err)
	}
}

func TestPasswordChangeIsToldToTheVerifiedAddressOnly(t *testing.T) {
	for _, verified := range []bool{true, false} {
		f := newFixture(t, withMail())
		if verified {
			f.verify(aliceID, "alice@one.example")
		} else {
			u := f.user(aliceID)
			u.Email = "alice@one.example" // set by an admin, never confirmed
			if err := f.store.UpdateUser(f.ctx(), u); err != nil {
				t.Fatal(err)
			}
		}
		b := f.browser()
		f.signIn(b, alice, alicePass)
		got := b.post("/account/password", url.Values{"new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
		if got.status != http.StatusSeeOther {
			t.Fatalf("password change: %d\n%.1000s", got.status, got.body)
		}
		ms := f.mails()
		if !verified {
			if len(ms) != 0 {
				t.Errorf("an unconfirmed address was mailed: %+v", ms)
			}
			continue
		}
		if len(ms) != 1 || ms[0].Message.To != "alice@one.example" || ms[0].Message.Subject != "Your Keystep password was changed" {
			t.Fatalf("mail: %+v", ms)
		}
		for _, want := range []string{homeIP, f.srv.URL + "/account#activity", "2 Mar 2026 09:00 UTC"} {
			if !strings.Contains(ms[0].Message.Text, want) {
				t.Errorf("the notice lacks %q:\n%s", want, ms[0].Message.Text)
			}
		}
	}
}

func TestFactorAddedAndRemovedAreTold(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, "alice@one.example")
	b := f.browser()
	f.signIn(b, alice, alicePass)
	f.clock.Advance(time.Minute)
	page := b.get("/account/totp")
	m := totpSecret.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no enrollment page: %d", page.status)
	}
	if got := b.post("/account/totp", url.Values{"code": {f.totp(m[1])}, "name": {"Pixel"}}); got.status != http.StatusOK {
		t.Fatalf("enrol: %d", got.status)
	}
	ms := f.mails()
	if len(ms) != 1 || !strings.Contains(ms[0].Message.Subject, "was added") || !strings.Contains(ms[0].Message.Text, `authenticator app "Pixel"`) {
		t.Fatalf("factor added: %+v", ms)
	}
	fs, err := f.store.ListFactors(f.ctx(), aliceID)
	if err != nil || len(fs) != 1 {
		t.Fatal(fs, err)
	}
	// Removing it needs mfa fresh: sign in again with the app.
	f.clock.Advance(time.Minute)
	b2 := f.browser()
	f.signInMFA(b2, alice, alicePass, m[1])
	if got := b2.post("/account/totp/delete", url.Values{"factor": {fs[0].ID}}); got.status != http.StatusSeeOther {
		t.Fatalf("remove: %d %q\n%.1000s", got.status, got.location, got.body)
	}
	ms = f.mails()
	if len(ms) != 1 || !strings.Contains(ms[0].Message.Subject, "was removed") || !strings.Contains(ms[0].Message.HTML, "authenticator app &#34;Pixel&#34;") {
		t.Fatalf("factor removed: %+v", ms)
	}
}

func TestEmailLinksAreLimitedPerHour(t *testing.T) {
	f := newFixture(t, withMail())
	b := f.browser()
	f.signIn(b, alice, alicePass)
	for i := range 5 {
		f.requestEmail(b, "alice"+strings.Repeat("x", i)+"@one.example")
	}
	got := b.post("/account/email", url.Values{"email": {"alice@six.example"}})
	if got.status != http.StatusTooManyRequests || got.header.Get("Retry-After") == "" || !says(got.body, "several links") {
		t.Fatalf("a sixth link within the hour: %d\n%.1000s", got.status, got.body)
	}
	if ms := f.mails(); len(ms) != 0 {
		t.Fatalf("mail queued past the limit: %+v", ms)
	}
	f.clock.Advance(61 * time.Minute)
	f.signIn(b, alice, alicePass) // the level must be fresh again
	f.requestEmail(b, "alice@six.example")
}
