package login_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/storage"
)

const (
	aliceMail = "alice@example.com"
	bobMail   = "bob@example.com"
)

// resetLink is the path of the link in a ResetPassword message to addr,
// the only mail queued.
func (f *fixture) resetLink(addr string) string {
	f.t.Helper()
	ms := f.mails()
	if len(ms) != 1 || ms[0].Message.To != addr || ms[0].Message.Subject != "Reset your Keystep password" {
		f.t.Fatalf("mail queued: %+v, want one reset link to %s", ms, addr)
	}
	return linkIn(f.t, f, ms[0], "/recover/reset?")
}

// linkIn is the path of the link to prefix in q's text.
func linkIn(t *testing.T, f *fixture, q mail.Queued, prefix string) string {
	t.Helper()
	i := strings.Index(q.Message.Text, f.srv.URL+prefix)
	if i < 0 {
		t.Fatalf("no %s link in:\n%s", prefix, q.Message.Text)
	}
	return strings.TrimPrefix(strings.Fields(q.Message.Text[i:])[0], f.srv.URL)
}

// askReset asks, as b, for a reset of account and checks the one answer.
func (f *fixture) askReset(b *browser, account string) response {
	f.t.Helper()
	got := b.post("/recover", url.Values{"account": {account}})
	if got.status != http.StatusOK || !says(got.body, "If that matches an account with a confirmed email address, we sent a link to it.") {
		f.t.Fatalf("asking for a reset of %q: %d\n%.2000s", account, got.status, got.body)
	}
	return got
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

func (b *browser) newPassword(token, pw string) response {
	return b.post("/recover/reset/password", url.Values{"token": {token}, "new_password": {pw}, "confirm_password": {pw}})
}

func (b *browser) resetCode(token, method, code string) response {
	return b.post("/recover/reset/code", url.Values{"token": {token}, "method": {method}, "code": {code}})
}

// passwordIs reports whether pw is the user's password now.
func (f *fixture) passwordIs(id, pw string) bool {
	f.t.Helper()
	ok, err := f.cfg.Hasher.Verify(f.user(id).PasswordHash, pw)
	if err != nil {
		f.t.Fatal(err)
	}
	return ok
}

const newPass = "a brand new long password"

func TestSignInPagesLinkToForgotPassword(t *testing.T) {
	f := newFixture(t, withMail())
	b := f.browser()
	id := f.request(b, appClient)
	if p := b.open(id); !strings.Contains(p.body, `href="/recover"`) || !says(p.body, "Forgot your password?") {
		t.Fatalf("the sign-in page has no forgot-password link:\n%.2000s", p.body)
	}
	if p := b.get("/recover"); p.status != http.StatusOK || !hasForm(p.body, "/recover") {
		t.Fatalf("GET /recover: %d\n%.2000s", p.status, p.body)
	}
}

// A reset for an account with an authenticator app cannot finish without
// its code: the emailed link alone never changes the password.
func TestResetForTOTPUserCannotFinishWithoutTheCode(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	other := f.browser()
	f.signInMFA(other, alice, alicePass, secret) // a session the reset must end
	f.mails()

	b := f.browser()
	f.askReset(b, alice)
	link := f.resetLink(aliceMail)
	token := tokenOf(t, link)

	page := b.get(link)
	if page.status != http.StatusOK || !hasForm(page.body, "/recover/reset/code") || hasForm(page.body, "/recover/reset/password") {
		t.Fatalf("the link's page must ask for the code and only that: %d\n%.2000s", page.status, page.body)
	}
	// Skipping the code is refused, and changes nothing.
	if got := b.newPassword(token, newPass); got.status != http.StatusForbidden {
		t.Fatalf("a new password without the code: %d\n%.2000s", got.status, got.body)
	}
	if !f.passwordIs(aliceID, alicePass) {
		t.Fatal("the password changed without the second factor")
	}
	// A code that is wrong, or a method the account has not, does not count.
	if got := b.resetCode(token, "totp", f.wrongTOTP(secret)); got.status != http.StatusBadRequest || !says(got.body, "That code didn't work") {
		t.Fatalf("a wrong code: %d\n%.2000s", got.status, got.body)
	}
	if got := b.resetCode(token, "recovery", "anything"); got.status != http.StatusBadRequest {
		t.Fatalf("a recovery code for an account without codes: %d", got.status)
	}
	if got := b.newPassword(token, newPass); got.status != http.StatusForbidden {
		t.Fatalf("a new password after a wrong code: %d", got.status)
	}
	if ev := f.audit(storage.EventStepupFactor); len(ev) == 0 || ev[len(ev)-1].Outcome != "failure" {
		t.Errorf("the wrong code was not counted as a failed factor: %+v", ev)
	}

	f.clock.Advance(time.Minute)
	if got := b.resetCode(token, "totp", f.totp(secret)); got.status != http.StatusSeeOther || got.location != link {
		t.Fatalf("the right code: %d %q\n%.2000s", got.status, got.location, got.body)
	}
	if page := b.get(link); !hasForm(page.body, "/recover/reset/password") {
		t.Fatalf("after the code, no password form:\n%.2000s", page.body)
	}
	// The same checks as any new password.
	if got := b.newPassword(token, "short"); got.status != http.StatusBadRequest || !f.passwordIs(aliceID, alicePass) {
		t.Fatalf("a too-short password: %d", got.status)
	}
	done := b.newPassword(token, newPass)
	if done.status != http.StatusOK || !says(done.body, "sign in with your new password") {
		t.Fatalf("the new password: %d\n%.2000s", done.status, done.body)
	}
	if !f.passwordIs(aliceID, newPass) {
		t.Fatal("the password did not change")
	}
	// Nobody is signed in by it, and every session of the account ended.
	if ss := f.sessions(aliceID); len(ss) != 0 {
		t.Errorf("sessions after the reset: %+v", ss)
	}
	if ev := f.audit(storage.EventRecoveryPasswordReset); len(ev) != 1 || ev[0].Details["factor"] != "second factor" {
		t.Errorf("audit: %+v", ev)
	}
	ms := f.mails()
	if len(ms) != 1 || ms[0].Message.To != aliceMail || ms[0].Message.Subject != "Your Keystep password was reset" {
		t.Errorf("the owner was not told: %+v", ms)
	}
	u := f.user(aliceID)
	if u.RiskFloor != acrMFA || !u.RiskFloorNewDevices || !u.RiskFloorUntil.After(f.clock.Now()) {
		t.Errorf("risk floor after the reset: %q new-devices %v until %v", u.RiskFloor, u.RiskFloorNewDevices, u.RiskFloorUntil)
	}
	// The link works once.
	if again := b.get(link); again.status != http.StatusGone {
		t.Errorf("the link again: %d", again.status)
	}
}

// The answer to a reset request, and the work behind it, are the same
// whether the name or address matches an account or not.
func TestResetAnswerIsTheSameForUnknownAccounts(t *testing.T) {
	var calls callLog
	f := newFixture(t, withMail(), countCalls(&calls))
	f.verify(aliceID, aliceMail)
	b := f.browser()
	b.binding()

	answers := map[string]response{}
	work := map[string][]string{}
	for _, account := range []string{alice, "nobody", aliceMail, "nobody@example.com", bob /* no confirmed address */} {
		calls.reset()
		answers[account] = f.askReset(b, account)
		work[account] = calls.names()
	}
	want := answers[alice]
	for account, got := range answers {
		if got.status != want.status || got.body != want.body {
			t.Errorf("the answer for %q differs from a real account's:\n%s\n---\n%s", account, got.body, want.body)
		}
		if !slices.Equal(work[account], work[alice]) {
			t.Errorf("the work for %q differs from a real account's: %v, want %v", account, work[account], work[alice])
		}
	}
	if ms := f.mails(); len(ms) != 2 || ms[0].Message.To != aliceMail || ms[1].Message.To != aliceMail {
		t.Errorf("mail: %+v, want two links to alice only", ms)
	}
}

// callLog records which storage calls the recovery path makes.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (c *callLog) add(name string) {
	c.mu.Lock()
	c.calls = append(c.calls, name)
	c.mu.Unlock()
}

func (c *callLog) reset() { c.mu.Lock(); c.calls = nil; c.mu.Unlock() }

func (c *callLog) names() []string { c.mu.Lock(); defer c.mu.Unlock(); return slices.Clone(c.calls) }

// countingStore logs the calls a reset request could make.
type countingStore struct {
	storage.Store
	log *callLog
}

func countCalls(log *callLog) option {
	return func(c *fixtureConfig) { c.Store = countingStore{Store: c.Store, log: log} }
}

func (s countingStore) UserByUsername(ctx context.Context, n string) (storage.User, error) {
	s.log.add("UserByUsername")
	return s.Store.UserByUsername(ctx, n)
}

func (s countingStore) UsersByEmail(ctx context.Context, e string) ([]storage.User, error) {
	s.log.add("UsersByEmail")
	return s.Store.UsersByEmail(ctx, e)
}

func (s countingStore) UserByID(ctx context.Context, id string) (storage.User, error) {
	s.log.add("UserByID")
	return s.Store.UserByID(ctx, id)
}

func (s countingStore) ListFactors(ctx context.Context, id string) ([]storage.Factor, error) {
	s.log.add("ListFactors")
	return s.Store.ListFactors(ctx, id)
}

func (s countingStore) CreatePasswordReset(ctx context.Context, r storage.PasswordReset, msgs []storage.OutboxMessage) error {
	s.log.add("CreatePasswordReset")
	return s.Store.CreatePasswordReset(ctx, r, msgs)
}

func (s countingStore) QueueOutbox(ctx context.Context, msgs []storage.OutboxMessage) error {
	s.log.add("QueueOutbox")
	return s.Store.QueueOutbox(ctx, msgs)
}

func (s countingStore) RecordFailure(ctx context.Context, keys []storage.ThrottleKey, l map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
	s.log.add("RecordFailure")
	return s.Store.RecordFailure(ctx, keys, l, now)
}

func TestResetGoesToEveryAccountWithTheConfirmedAddressOnly(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, "shared@example.com")
	f.verify(bobID, "shared@example.com")
	f.addUser("carol", "u-carol", "carol's long password", false)
	u := f.user("u-carol")
	u.Email = "shared@example.com" // not confirmed: may be anyone's
	if err := f.store.UpdateUser(f.ctx(), u); err != nil {
		t.Fatal(err)
	}
	f.askReset(f.browser(), "shared@example.com")
	ms := f.mails()
	var who []string
	for _, m := range ms {
		who = append(who, m.UserID)
	}
	slices.Sort(who)
	if !slices.Equal(who, []string{aliceID, bobID}) {
		t.Errorf("links went to %v, want alice and bob", who)
	}
	f.askReset(f.browser(), "carol")
	if ms := f.mails(); len(ms) != 0 {
		t.Errorf("a link went to an unconfirmed address: %+v", ms)
	}
}

func TestResetLinkIsRefusedReusedExpiredOrInAnotherBrowser(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(bobID, bobMail) // bob has no second factor: the link leads to the password

	t.Run("reused", func(t *testing.T) {
		b := f.browser()
		f.askReset(b, bob)
		link := f.resetLink(bobMail)
		if page := b.get(link); !hasForm(page.body, "/recover/reset/password") {
			t.Fatalf("no password form:\n%.2000s", page.body)
		}
		if got := b.newPassword(tokenOf(t, link), newPass); got.status != http.StatusOK {
			t.Fatalf("reset: %d\n%.2000s", got.status, got.body)
		}
		f.mails()
		if got := b.newPassword(tokenOf(t, link), "yet another long password"); got.status != http.StatusGone || !f.passwordIs(bobID, newPass) {
			t.Errorf("a used link: %d", got.status)
		}
	})
	t.Run("expired", func(t *testing.T) {
		b := f.browser()
		f.askReset(b, bob)
		link := f.resetLink(bobMail)
		f.clock.Advance(15*time.Minute + time.Second)
		if got := b.get(link); got.status != http.StatusGone || !says(got.body, "expired") {
			t.Errorf("an expired link: %d\n%.1000s", got.status, got.body)
		}
		if got := b.newPassword(tokenOf(t, link), "expired long password"); got.status != http.StatusGone || f.passwordIs(bobID, "expired long password") {
			t.Errorf("a password through an expired link: %d", got.status)
		}
	})
	t.Run("another browser", func(t *testing.T) {
		b, thief := f.browser(), f.browser()
		thief.binding() // has a browser cookie of its own
		f.askReset(b, bob)
		link := f.resetLink(bobMail)
		for _, c := range []*browser{thief, f.browser()} {
			if got := c.get(link); got.status != http.StatusForbidden || hasForm(got.body, "/recover/reset/password") {
				t.Errorf("the link in another browser: %d\n%.1000s", got.status, got.body)
			}
			if got := c.newPassword(tokenOf(t, link), "thief's long password"); got.status != http.StatusForbidden {
				t.Errorf("a password from another browser: %d", got.status)
			}
		}
		if f.passwordIs(bobID, "thief's long password") {
			t.Fatal("another browser reset the password")
		}
		if ev := f.audit(storage.EventRecoveryResetRefused); len(ev) == 0 || ev[len(ev)-1].Reason != "opened in another browser" {
			t.Errorf("audit: %+v", ev)
		}
		// The browser that asked still can.
		if got := b.get(link); got.status != http.StatusOK {
			t.Errorf("the asking browser: %d", got.status)
		}
	})
}

func TestResetRequestsAreThrottledAlikeForEveryName(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	b := f.browser()
	var last map[string]response = map[string]response{}
	for _, account := range []string{alice, "nobody"} {
		for range 3 {
			f.askReset(b, account)
		}
		got := b.post("/recover", url.Values{"account": {account}})
		if got.status != http.StatusTooManyRequests || got.header.Get("Retry-After") == "" {
			t.Fatalf("the 4th request for %q in an hour: %d\n%.1000s", account, got.status, got.body)
		}
		last[account] = got
	}
	if ms := f.mails(); len(ms) != 3 {
		t.Errorf("%d links sent, want 3", len(ms))
	}
	if a, n := last[alice], last["nobody"]; a.header.Get("Retry-After") != n.header.Get("Retry-After") {
		t.Errorf("throttled answers differ: %q vs %q", a.header.Get("Retry-After"), n.header.Get("Retry-After"))
	}
	f.clock.Advance(time.Hour + time.Minute)
	f.askReset(b, alice)
	if ms := f.mails(); len(ms) != 1 {
		t.Errorf("after the hour: %d links", len(ms))
	}
}

func TestResetCodesCountAgainstTheSignInThrottle(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	f.askReset(b, alice)
	token := tokenOf(t, f.resetLink(aliceMail))
	throttled := false
	for i := range 12 {
		got := b.resetCode(token, "totp", f.wrongTOTP(secret))
		if got.status == http.StatusTooManyRequests {
			throttled = i == throttle.MaxCodeFailures // the sign-in's per-challenge limit
			break
		}
	}
	if !throttled {
		t.Fatal("wrong codes on a reset link are not throttled like sign-in codes")
	}
	if got := b.resetCode(token, "totp", f.totp(secret)); got.status != http.StatusTooManyRequests {
		t.Errorf("the right code while throttled: %d", got.status)
	}
}

// ---- lost second factor ----

// stuckAtCode starts a sign-in at mfa as b and enters the password: the
// request waits for the code the person no longer has.
func (f *fixture) stuckAtCode(b *browser, pw string) string {
	f.t.Helper()
	id := f.request(b, mfaClient)
	f.mustContinue(b.password(id, alice, pw), id)
	p := b.open(id)
	if !hasForm(p.body, "/login/otp") || !strings.Contains(p.body, `href="/recover/factors"`) {
		f.t.Fatalf("want the code page with a lost-factor link:\n%.2000s", p.body)
	}
	return id
}

func TestRecoveryRequestWaitsForTheCoolingOffAndCanBeCancelledFromTheEmail(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	f.recoveryCodes(aliceID)
	b := f.browser()

	// Without a password in this browser there is nothing to file.
	if got := b.post("/recover/factors", nil); got.status != http.StatusUnauthorized {
		t.Fatalf("filing without the password: %d", got.status)
	}
	f.stuckAtCode(b, alicePass)
	if page := b.get("/recover/factors"); !hasForm(page.body, "/recover/factors") {
		t.Fatalf("no way to file a request:\n%.2000s", page.body)
	}
	if got := b.post("/recover/factors", nil); got.status != http.StatusOK || !says(got.body, "Your request was filed.") {
		t.Fatalf("filing: %d\n%.2000s", got.status, got.body)
	}
	ms := f.mails()
	if len(ms) != 1 || ms[0].Message.To != aliceMail || !strings.Contains(ms[0].Message.Subject, "replace the sign-in methods") {
		t.Fatalf("notice: %+v", ms)
	}
	cancel := linkIn(t, f, ms[0], "/recover/cancel?")
	if ev := f.audit(storage.EventRecoveryRequested); len(ev) != 1 {
		t.Errorf("audit: %+v", ev)
	}

	// Before the cooling-off nothing but the password works.
	f.clock.Advance(72*time.Hour - time.Minute)
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors/use", nil); got.status != http.StatusForbidden {
		t.Fatalf("using the request early: %d\n%.1000s", got.status, got.body)
	}
	if fs, _ := f.store.ListFactors(f.ctx(), aliceID); len(fs) != 1 {
		t.Fatalf("factors changed before the cooling-off: %+v", fs)
	}

	// Opening the cancel link changes nothing (mail scanners open links);
	// its form cancels, from any browser, signed in or not.
	q, _ := url.Parse(cancel)
	if page := f.browser().get(cancel); page.status != http.StatusOK || !hasForm(page.body, "/recover/cancel") {
		t.Fatalf("cancel page: %d\n%.1000s", page.status, page.body)
	}
	req, err := f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	if err != nil || req.Status != storage.RecoveryPending {
		t.Fatalf("after opening the cancel link: %+v %v", req, err)
	}
	if got := f.browser().post("/recover/cancel", q.Query()); got.status != http.StatusOK || !says(got.body, "cancelled") {
		t.Fatalf("cancel: %d\n%.1000s", got.status, got.body)
	}
	if got := f.browser().post("/recover/cancel", q.Query()); got.status != http.StatusGone {
		t.Errorf("cancel twice: %d", got.status)
	}
	f.clock.Advance(time.Hour)
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors/use", nil); got.status != http.StatusForbidden {
		t.Fatalf("using a cancelled request: %d", got.status)
	}
	if fs, _ := f.store.ListFactors(f.ctx(), aliceID); len(fs) != 1 {
		t.Fatalf("factors changed by a cancelled request: %+v", fs)
	}
	_ = secret
}

func TestRecoveryRequestAfterTheCoolingOffReplacesTheFactors(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	f.recoveryCodes(aliceID)
	other := f.browser()
	f.signInMFA(other, alice, alicePass, secret)
	b := f.browser()
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing: %d", got.status)
	}
	f.mails()
	f.clock.Advance(72 * time.Hour)
	// The password from more than ten minutes ago is not enough.
	if got := b.post("/recover/factors/use", nil); got.status != http.StatusUnauthorized {
		t.Fatalf("using the request on an old password: %d", got.status)
	}
	f.stuckAtCode(b, alicePass)
	got := b.post("/recover/factors/use", nil)
	if got.status != http.StatusSeeOther || got.location != "/account?notice=recovered" {
		t.Fatalf("using the request: %d %q\n%.1000s", got.status, got.location, got.body)
	}
	if fs, _ := f.store.ListFactors(f.ctx(), aliceID); len(fs) != 0 {
		t.Errorf("old factors left: %+v", fs)
	}
	if n, _ := f.store.CountRecoveryCodes(f.ctx(), aliceID); n != 0 {
		t.Errorf("%d old recovery codes left", n)
	}
	if ss := f.sessions(aliceID); len(ss) != 1 {
		t.Errorf("sessions: %d, want this browser's only", len(ss))
	}
	if ev := f.audit(storage.EventRecoveryFactorsReplaced); len(ev) != 1 || ev[0].Details["removed"] != "1" {
		t.Errorf("audit: %+v", ev)
	}
	if req, _ := f.store.LatestRecoveryRequest(f.ctx(), aliceID); req.Status != storage.RecoveryUsed {
		t.Errorf("request status %q, want used", req.Status)
	}
	// Used once.
	if got := b.post("/recover/factors/use", nil); got.status != http.StatusForbidden {
		t.Errorf("using it again: %d", got.status)
	}
	// The portal says what happened and sets up the new authenticator app
	// (the bootstrap: a fresh password, no second factor).
	if home := b.get("/account?notice=recovered"); !says(home.body, "Set up a new authenticator app or passkey now.") {
		t.Errorf("portal after the recovery: %d\n%.1500s", home.status, home.body)
	}
	if page := b.get("/account/totp"); page.status != http.StatusOK || !hasForm(page.body, "/account/totp") {
		t.Errorf("setting up a new app after the recovery: %d %q\n%.1500s", page.status, page.location, page.body)
	}
}

func TestRecoveryRequestsAreThrottled(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	f.enrollTOTP(aliceID)
	b := f.browser()
	for i := range 4 {
		f.stuckAtCode(b, alicePass)
		got := b.post("/recover/factors", nil)
		if i == 3 {
			if got.status != http.StatusTooManyRequests {
				t.Fatalf("the 4th request in a day: %d", got.status)
			}
			break
		}
		if got.status != http.StatusOK {
			t.Fatalf("request %d: %d\n%.1000s", i, got.status, got.body)
		}
		// Cancelled (so a new one may be filed), the requests still count.
		req, _ := f.store.LatestRecoveryRequest(f.ctx(), aliceID)
		if err := f.store.DecideRecoveryRequest(f.ctx(), req.ID, storage.RecoveryPending, storage.RecoveryCancelled, aliceID, "", f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
	}
}

func TestAdminApprovesOrDeniesARecoveryRequest(t *testing.T) {
	f := newFixture(t, withMail(), withAdminACR(acrMFA))
	f.makeAdmin(bobID)
	bobSecret := f.enrollTOTP(bobID)
	f.verify(aliceID, aliceMail)
	f.enrollTOTP(aliceID)
	ab, admin := f.browser(), f.browser()
	admin.ip = elsewhereIP
	f.signInMFA(admin, bob, bobPass, bobSecret)

	f.stuckAtCode(ab, alicePass)
	if got := ab.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing: %d", got.status)
	}
	req, _ := f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	list := admin.get("/admin/recovery")
	if list.status != http.StatusOK || !hasForm(list.body, "/admin/recovery/"+req.ID+"/approve") || !says(list.body, alice) {
		t.Fatalf("console list: %d\n%.3000s", list.status, list.body)
	}
	if got := admin.post("/admin/recovery/"+req.ID+"/approve", nil); got.status != http.StatusBadRequest {
		t.Fatalf("approving without a reason: %d", got.status)
	}
	if got := admin.post("/admin/recovery/"+req.ID+"/deny", url.Values{"reason": {"caller could not prove who they are"}}); got.status != http.StatusSeeOther {
		t.Fatalf("deny: %d\n%.1000s", got.status, got.body)
	}
	if got := admin.post("/admin/recovery/"+req.ID+"/approve", url.Values{"reason": {"changed my mind"}}); got.status != http.StatusConflict {
		t.Fatalf("approving a denied request: %d", got.status)
	}
	f.clock.Advance(73 * time.Hour)
	f.stuckAtCode(ab, alicePass)
	if got := ab.post("/recover/factors/use", nil); got.status != http.StatusForbidden {
		t.Fatalf("using a denied request: %d", got.status)
	}

	// A new request, approved early, is usable at once.
	if got := ab.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing again: %d", got.status)
	}
	req, _ = f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	f.signInMFA(admin, bob, bobPass, bobSecret)
	if got := admin.post("/admin/recovery/"+req.ID+"/approve", url.Values{"reason": {"verified on a video call"}}); got.status != http.StatusSeeOther {
		t.Fatalf("approve: %d\n%.1000s", got.status, got.body)
	}
	if got := ab.post("/recover/factors/use", nil); got.status != http.StatusSeeOther {
		t.Fatalf("using an approved request: %d\n%.1000s", got.status, got.body)
	}
	ev := f.audit(storage.EventRecoveryDecided)
	if len(ev) != 2 || ev[0].Outcome != "denied" || ev[1].Outcome != "approved" || ev[1].ActorID != bobID || ev[1].Reason != "verified on a video call" {
		t.Errorf("audit: %+v", ev)
	}
}

// The invariant of issue 22: knowing the password, controlling the
// mailbox, or both, never reaches a session above single-factor without
// the second factor or the cooling-off.
func TestNoRecoveryPathSkipsTheSecondFactor(t *testing.T) {
	type attacker struct {
		password, email bool
	}
	for _, c := range []struct {
		name string
		who  attacker
		try  func(t *testing.T, f *fixture, b *browser) string // returns the password to sign in with
	}{
		{"the password alone", attacker{password: true}, func(t *testing.T, f *fixture, b *browser) string { return alicePass }},
		{"the password and a request still cooling off", attacker{password: true}, func(t *testing.T, f *fixture, b *browser) string {
			f.stuckAtCode(b, alicePass)
			b.post("/recover/factors", nil)
			f.clock.Advance(71 * time.Hour)
			f.stuckAtCode(b, alicePass)
			if got := b.post("/recover/factors/use", nil); got.status != http.StatusForbidden {
				t.Fatalf("used early: %d", got.status)
			}
			return alicePass
		}},
		{"the mailbox: a reset link", attacker{email: true}, func(t *testing.T, f *fixture, b *browser) string {
			f.askReset(b, alice)
			link := f.resetLink(aliceMail)
			b.get(link)
			b.newPassword(tokenOf(t, link), newPass)
			b.resetCode(tokenOf(t, link), "recovery", "not-a-code")
			b.newPassword(tokenOf(t, link), newPass)
			return newPass
		}},
		{"the mailbox and the password: a reset, then sign-in from the new device", attacker{password: true, email: true}, func(t *testing.T, f *fixture, b *browser) string {
			// Pretend the reset went through as far as a link can take it
			// for an account without the factor being asked: the floor
			// still needs the second factor from this new device.
			f.askReset(b, alice)
			link := f.resetLink(aliceMail)
			b.newPassword(tokenOf(t, link), newPass)
			return alicePass
		}},
		{"the mailbox and the password: cancelling and re-filing", attacker{password: true, email: true}, func(t *testing.T, f *fixture, b *browser) string {
			f.stuckAtCode(b, alicePass)
			b.post("/recover/factors", nil)
			ms := f.mails()
			q, _ := url.Parse(linkIn(t, f, ms[len(ms)-1], "/recover/cancel?"))
			b.post("/recover/cancel", q.Query())
			b.post("/recover/factors", nil)
			f.clock.Advance(time.Hour)
			f.stuckAtCode(b, alicePass)
			b.post("/recover/factors/use", nil)
			return alicePass
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, withMail())
			f.verify(aliceID, aliceMail)
			f.enrollTOTP(aliceID)
			f.recoveryCodes(aliceID)
			f.mails()
			b := f.browser()
			b.ip = elsewhereIP
			pw := c.try(t, f, b)
			if fs, _ := f.store.ListFactors(f.ctx(), aliceID); len(fs) != 1 {
				t.Fatalf("the second factor was removed: %+v", fs)
			}
			// Whatever was done, a sign-in at mfa still waits for the code.
			id := f.request(b, mfaClient)
			r := b.password(id, alice, pw)
			if r.status == http.StatusSeeOther && r.location == "/login?id="+url.QueryEscape(id) {
				r = b.open(id)
			}
			if r.location == f.callback(f.ctx(), id) {
				t.Fatalf("reached mfa without the second factor")
			}
			if !hasForm(r.body, "/login/otp") && !hasForm(r.body, "/login/password") && !hasForm(r.body, "/login/recovery") {
				t.Fatalf("want a factor page, got %d %q\n%.1500s", r.status, r.location, r.body)
			}
		})
	}
}

// After a reset by email, a sign-in at the lowest level from a device new
// to the account needs the second factor for a while; a known one does not.
func TestResetRaisesTheFloorForNewDevicesOnly(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, aliceMail)
	secret := f.enrollTOTP(aliceID)
	known := f.browser()
	f.signInMFA(known, alice, alicePass, secret)
	f.mails()
	b := f.browser()
	b.ip = elsewhereIP
	f.askReset(b, alice)
	link := f.resetLink(aliceMail)
	f.clock.Advance(time.Minute)
	b.resetCode(tokenOf(t, link), "totp", f.totp(secret))
	if got := b.newPassword(tokenOf(t, link), newPass); got.status != http.StatusOK {
		t.Fatalf("reset: %d", got.status)
	}
	f.clock.Advance(time.Minute)
	// The known browser signs in at sfa with the password alone.
	f.signIn(known, alice, newPass)
	// A new browser is asked for the code.
	nb := f.browser()
	nb.ip = elsewhereIP
	id := f.request(nb, appClient)
	f.mustContinue(nb.password(id, alice, newPass), id)
	if p := nb.open(id); !hasForm(p.body, "/login/otp") {
		t.Fatalf("a new device after a reset: want the code page, got %d %q\n%.1500s", p.status, p.location, p.body)
	}
}

func TestPortalLeadsToANewFactorAfterARecoveryCodeSignIn(t *testing.T) {
	f := newFixture(t)
	f.enrollTOTP(aliceID)
	codes := f.recoveryCodes(aliceID)
	b := f.browser()
	id := f.request(b, appClient, acrValues(acrMFA))
	f.mustContinue(b.password(id, alice, alicePass), id)
	f.mustContinue(b.code("/login/recovery", id, codes[0]), id)
	f.mustComplete(b.open(id), id)
	home := f.portalHome(b)
	if !says(home, "You signed in with a recovery code.") {
		t.Errorf("no nudge to a new factor after a recovery code:\n%.2000s", home)
	}
}

// portalHome signs b in to the portal (the session it has) and returns
// the overview.
func (f *fixture) portalHome(b *browser) string {
	f.t.Helper()
	got := b.get("/account")
	for range 5 {
		if got.status != http.StatusSeeOther {
			break
		}
		loc := got.location
		if strings.HasPrefix(loc, f.srv.URL) {
			loc = strings.TrimPrefix(loc, f.srv.URL)
		}
		if !strings.HasPrefix(loc, "/") {
			f.t.Fatalf("portal redirects away to %s", loc)
		}
		got = b.get(loc)
	}
	return got.body
}

// Without a confirmed address nobody could cancel a request, so the
// cooling-off alone never makes it usable: only an admin's approval does.
func TestRecoveryRequestWithoutAConfirmedAddressNeedsAnAdmin(t *testing.T) {
	f := newFixture(t, withMail())
	f.enrollTOTP(aliceID) // no confirmed address
	b := f.browser()
	f.stuckAtCode(b, alicePass)
	if got := b.post("/recover/factors", nil); got.status != http.StatusOK {
		t.Fatalf("filing: %d", got.status)
	}
	if ms := f.mails(); len(ms) != 0 {
		t.Errorf("mail to an unconfirmed address: %+v", ms)
	}
	f.clock.Advance(30 * 24 * time.Hour)
	f.stuckAtCode(b, alicePass)
	if page := b.get("/recover/factors"); !says(page.body, "Only your administrator can approve it") || hasForm(page.body, "/recover/factors/use") {
		t.Fatalf("page after the cooling-off:\n%.1500s", page.body)
	}
	if got := b.post("/recover/factors/use", nil); got.status != http.StatusForbidden {
		t.Fatalf("used without anyone told: %d", got.status)
	}
	req, _ := f.store.LatestRecoveryRequest(f.ctx(), aliceID)
	if err := f.store.DecideRecoveryRequest(f.ctx(), req.ID, storage.RecoveryPending, storage.RecoveryApproved, bobID, "checked in person", f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := b.post("/recover/factors/use", nil); got.status != http.StatusSeeOther {
		t.Fatalf("an approved request: %d", got.status)
	}
}

// The rows counting reset requests are swept once no rule looks at them.
func TestResetThrottleRowsAreSwept(t *testing.T) {
	f := newFixture(t, withMail())
	f.askReset(f.browser(), "nobody")
	f.clock.Advance(3 * time.Hour)
	n, err := f.ui.SweepThrottle(f.ctx())
	if err != nil || n < 2 {
		t.Fatalf("swept %d rows (%v), want the request's address and name rows", n, err)
	}
}
