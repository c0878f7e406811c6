package login_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var (
	short    = storage.ThrottleRule{Limit: 3, Window: 15 * time.Minute, Base: time.Minute, Max: time.Hour}
	roomy    = storage.ThrottleRule{Limit: 1000, Window: 15 * time.Minute, Base: time.Minute, Max: time.Hour}
	hardLock = storage.ThrottleRule{Limit: 3, Window: 24 * time.Hour, Base: 24 * time.Hour, Max: 24 * time.Hour}
)

// attempt is one password post and what it must get: 303 back to the
// dispatcher (right), 401 (checked and wrong) or 429 (refused unchecked,
// with Retry-After).
type attempt struct {
	username, password string
	want               int
	retryAfter         string // for 429
	text               string // for 429: a phrase of the page
}

func wrong(user string) attempt {
	return attempt{username: user, password: "not the password", want: http.StatusUnauthorized}
}

func right(user, password string) attempt {
	return attempt{username: user, password: password, want: http.StatusSeeOther}
}

func refused(user, password, retryAfter, text string) attempt {
	return attempt{username: user, password: password, want: http.StatusTooManyRequests, retryAfter: retryAfter, text: text}
}

// TestPasswordThrottle pins the password limits at the handler: every guess
// is reserved before it is checked, and once a limit is reached the answer
// is 429 with Retry-After and the password is not checked at all, right or
// wrong. Attempts come from one browser at home unless a row moves it.
func TestPasswordThrottle(t *testing.T) {
	// The page says how long to wait; for a minute it says "Wait 1
	// minutes", which the rows do not pin.
	const wait = "Too many attempts. Wait "
	for _, tt := range []struct {
		name     string
		opts     []option
		attempts []attempt
		checked  int // password checks audited (login.password events)
	}{
		{
			name: "wrong passwords up to the account and address limit, then 429 even for the right one",
			opts: []option{rules(map[string]storage.ThrottleRule{storage.ScopeAccountIP: short})},
			attempts: []attempt{wrong(alice), wrong(alice), wrong(alice),
				refused(alice, alicePass, "60", wait), refused(alice, "not the password", "60", wait)},
			checked: 3,
		},
		{
			name: "an unknown username is throttled exactly like a real one",
			opts: []option{rules(map[string]storage.ThrottleRule{storage.ScopeAccountIP: short})},
			attempts: []attempt{wrong("mallory"), wrong("mallory"), wrong("mallory"),
				refused("mallory", "anything at all", "60", wait)},
			checked: 3,
		},
		{
			name: "a right password forgives the short-term failures before it",
			opts: []option{rules(map[string]storage.ThrottleRule{storage.ScopeAccountIP: short})},
			attempts: []attempt{wrong(alice), wrong(alice), right(alice, alicePass),
				wrong(alice), wrong(alice), wrong(alice), refused(alice, alicePass, "60", wait)},
			checked: 6,
		},
		{
			name: "other accounts from the same address keep their own budget",
			opts: []option{rules(map[string]storage.ThrottleRule{storage.ScopeAccountIP: short})},
			attempts: []attempt{wrong(alice), wrong(alice), wrong(alice), refused(alice, alicePass, "60", wait),
				right(bob, bobPass)},
			checked: 4,
		},
		{
			name: "too many failures from one address block it for every account",
			opts: []option{withStuffingLimit(-1), rules(map[string]storage.ThrottleRule{storage.ScopeIP: short})},
			attempts: []attempt{wrong("u1"), wrong("u2"), wrong("u3"),
				refused(alice, alicePass, "60", wait)},
			checked: 3,
		},
		{
			name: "too many accounts failing from one address refuse new usernames for an hour",
			opts: []option{withStuffingLimit(2)},
			attempts: []attempt{wrong("u1"), wrong("u2"),
				refused(alice, alicePass, "3600", "Too many attempts. Wait an hour and try again.")},
			checked: 2,
		},
		{
			name:     "an account already tried from the address is still checked",
			opts:     []option{withStuffingLimit(2)},
			attempts: []attempt{wrong("u1"), wrong(alice), right(alice, alicePass), wrong("u1")},
			checked:  4,
		},
		{
			name: "a success takes its account's place among those tried from the address back",
			opts: []option{withStuffingLimit(2)},
			attempts: []attempt{right(alice, alicePass), wrong("u1"), wrong("u2"),
				refused("u3", "x", "3600", "")},
			checked: 3,
		},
		{
			name: "the hard lock for new places refuses with a way out for the owner",
			opts: []option{rules(map[string]storage.ThrottleRule{scopeAccountLock: hardLock, storage.ScopeAccountIP: roomy})},
			attempts: []attempt{wrong(alice), wrong(alice), wrong(alice),
				refused(alice, alicePass, "86400", "Too many failed sign-ins from new devices. Sign in on a device you've used before, or with a passkey, or wait 24 hours.")},
			checked: 3,
		},
		{
			name: "a success does not refill the hard-lock budget",
			opts: []option{rules(map[string]storage.ThrottleRule{scopeAccountLock: hardLock, storage.ScopeAccountIP: roomy})},
			attempts: []attempt{wrong(alice), wrong(alice), right(alice, alicePass), wrong(alice),
				refused(alice, alicePass, "86400", "")},
			checked: 4,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts...)
			for i, a := range tt.attempts {
				// Each attempt in a browser of its own, all from one
				// address: a session a right password made must not answer
				// for the next attempt. The right passwords are posted and
				// never opened: no sign-in completes, so none makes a
				// device or network known.
				b := f.browser()
				id := f.request(b, appClient)
				checkAttempt(t, f, b.password(id, a.username, a.password), a, i)
			}
			if got := len(f.audit("login.password")); got != tt.checked {
				t.Errorf("%d passwords checked, want %d", got, tt.checked)
			}
			if refusals := countWant(tt.attempts, http.StatusTooManyRequests); len(f.audit("login.throttled")) != refusals {
				t.Errorf("%d login.throttled events, want %d", len(f.audit("login.throttled")), refusals)
			}
		})
	}
}

func checkAttempt(t *testing.T, f *fixture, got response, a attempt, i int) {
	t.Helper()
	if got.status != a.want {
		t.Fatalf("attempt %d (%s): status %d, want %d\n%.1500s", i+1, a.username, got.status, a.want, got.body)
	}
	if a.want != http.StatusTooManyRequests {
		if got.header.Get("Retry-After") != "" {
			t.Errorf("attempt %d: Retry-After %q on a %d", i+1, got.header.Get("Retry-After"), got.status)
		}
		return
	}
	if ra := got.header.Get("Retry-After"); ra != a.retryAfter {
		t.Errorf("attempt %d: Retry-After %q, want %q", i+1, ra, a.retryAfter)
	}
	if !says(got.body, a.text) {
		t.Errorf("attempt %d: page does not say %q:\n%.1500s", i+1, a.text, got.body)
	}
}

func countWant(as []attempt, status int) int {
	n := 0
	for _, a := range as {
		if a.want == status {
			n++
		}
	}
	return n
}

// A block ends when Retry-After says, and a failure past the limit blocks
// twice as long as the one before (progressive delay).
func TestPasswordBlockEndsAndDoubles(t *testing.T) {
	f := newFixture(t, rules(map[string]storage.ThrottleRule{storage.ScopeAccountIP: short}))
	b := f.browser()
	id := f.request(b, appClient)
	for i, a := range []attempt{wrong(alice), wrong(alice), wrong(alice), refused(alice, alicePass, "60", "")} {
		checkAttempt(t, f, b.password(id, a.username, a.password), a, i)
	}
	f.clock.Advance(time.Minute)
	for i, a := range []attempt{wrong(alice), refused(alice, alicePass, "120", "Wait 2 minutes")} {
		checkAttempt(t, f, b.password(id, a.username, a.password), a, i)
	}
	f.clock.Advance(2 * time.Minute)
	f.mustContinue(b.password(id, alice, alicePass), id)
}

// TestPasswordBudgetsPerPlace pins that the per-account budgets are kept
// per place: a stranger who spends the budget of new places does not stop
// the owner on a device or a network she has signed in from.
func TestPasswordBudgetsPerPlace(t *testing.T) {
	for _, tt := range []struct {
		name  string
		scope string
		rule  storage.ThrottleRule
		text  string
	}{
		{name: "the short-term account budget", scope: storage.ScopeAccount, rule: short, text: "Too many attempts."},
		{name: "the hard-lock budget", scope: scopeAccountLock, rule: hardLock, text: "Too many failed sign-ins from new devices."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, rules(map[string]storage.ThrottleRule{tt.scope: tt.rule, storage.ScopeAccountIP: roomy}))
			owner := f.browser()
			f.signIn(owner, alice, alicePass) // her device and home network are known now

			stranger := f.browser()
			stranger.ip = elsewhereIP
			sid := f.request(stranger, appClient)
			for range 3 {
				checkAttempt(t, f, stranger.password(sid, alice, "guess"), wrong(alice), 0)
			}
			got := stranger.password(sid, alice, alicePass)
			if got.status != http.StatusTooManyRequests || !says(got.body, tt.text) {
				t.Fatalf("stranger: got %d, want 429 saying %q", got.status, tt.text)
			}

			// The owner, on her device, and on another browser at home.
			oid := f.request(owner, appClient)
			f.mustContinue(owner.password(oid, alice, alicePass), oid)
			laptop := f.browser()
			lid := f.request(laptop, appClient)
			f.mustContinue(laptop.password(lid, alice, alicePass), lid)
		})
	}
}

// codeLimits are small code limits: the app locks after 3 wrong codes in a
// row, the account allows 10 wrong codes in 15 minutes.
func codeLimits(extra map[string]storage.ThrottleRule) option {
	set := map[string]storage.ThrottleRule{scopeFactorLock: {Limit: 3, Window: 100 * 365 * 24 * time.Hour, Base: 100 * 365 * 24 * time.Hour, Max: 100 * 365 * 24 * time.Hour}}
	for k, v := range extra {
		set[k] = v
	}
	return rules(set)
}

// codePage opens a new request asking for mfa from a password session and
// checks it shows the code page.
func codePage(t *testing.T, f *fixture, b *browser) string {
	t.Helper()
	id := f.request(b, appClient, acrValues(acrMFA))
	if p := b.open(id); !hasForm(p.body, "/login/otp") {
		t.Fatalf("want the code page, got %d %q\n%.1500s", p.status, p.location, p.body)
	}
	return id
}

// TestWrongCodesLockTheApp pins the lock of a code factor: wrong codes in
// a row lock it; a locked factor is neither checked nor offered first; the
// other factor leads, and proving it lifts the lock (NIST SP 800-63B
// §5.2.2).
func TestWrongCodesLockTheApp(t *testing.T) {
	f := newFixture(t, codeLimits(nil))
	secret := f.enrollTOTP(aliceID)
	codes := f.recoveryCodes(aliceID)
	b := f.browser()
	f.signIn(b, alice, alicePass)
	id := codePage(t, f, b)

	for i := range 2 {
		got := b.code("/login/otp", id, f.wrongTOTP(secret))
		if got.status != http.StatusUnauthorized || !says(got.body, "That code didn't work") {
			t.Fatalf("wrong code %d: got %d, want 401", i+1, got.status)
		}
	}
	got := b.code("/login/otp", id, f.wrongTOTP(secret))
	if got.status != http.StatusForbidden || hasForm(got.body, "/login/otp") || !says(got.body, "Your authenticator app is locked") {
		t.Fatalf("third wrong code: got %d, want 403 with the app locked and no code form\n%.1500s", got.status, got.body)
	}
	if evs := f.audit("factor.locked"); len(evs) != 1 || evs[0].Details["factor"] != "totp" {
		t.Errorf("factor.locked %+v, want one for totp", evs)
	}

	// The dispatcher now leads with the recovery code and says why.
	page := b.open(id)
	if page.status != http.StatusOK || !hasForm(page.body, "/login/recovery") || !says(page.body, "Your authenticator app is locked") {
		t.Fatalf("after the lock: got %d, want the recovery page with the note\n%.1500s", page.status, page.body)
	}
	// The right code is not checked while the app is locked.
	f.clock.Advance(30 * time.Second)
	locked := b.code("/login/otp", id, f.totp(secret))
	if locked.status != http.StatusForbidden {
		t.Fatalf("right code on a locked app: got %d %q, want 403", locked.status, locked.location)
	}
	if evs := f.audit("stepup.throttled"); len(evs) != 1 || evs[0].Reason != "factor locked" {
		t.Errorf("stepup.throttled %+v, want one \"factor locked\"", evs)
	}
	if ss := f.sessions(aliceID); len(ss) != 1 || len(ss[0].Factors) != 1 {
		t.Errorf("sessions %+v: a factor was added while locked", ss)
	}

	// A recovery code proves another factor: the request completes and the
	// app's lock is lifted, as a sign-in on another browser shows.
	f.mustContinue(b.code("/login/recovery", id, codes[0]), id)
	f.mustComplete(b.open(id), id)
	f.clock.Advance(30 * time.Second)
	other := f.browser()
	f.signIn(other, alice, alicePass)
	next := codePage(t, f, other)
	f.mustContinue(other.code("/login/otp", next, f.totp(secret)), next)
}

// Locked with no other way, the page says who can unlock it.
func TestLockedAppWithNoOtherWay(t *testing.T) {
	f := newFixture(t, codeLimits(nil))
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	f.signIn(b, alice, alicePass)
	id := codePage(t, f, b)
	for range 3 {
		b.code("/login/otp", id, f.wrongTOTP(secret))
	}
	got := b.open(id)
	if got.status != http.StatusForbidden || !says(got.body, "Ask your administrator to unlock it.") || hasForm(got.body, "/login/otp") {
		t.Fatalf("got %d, want 403 telling to ask the administrator\n%.1500s", got.status, got.body)
	}
}

// TestCodeLimits pins the other code limits: a request is abandoned after
// 5 wrong codes; the account's short-term budget answers 429; a right code
// forgives the wrong ones before it.
func TestCodeLimits(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opts  []option
		steps []int // for each post: 0 a wrong code, 1 the right one, 2 the one used before, -1 a new browser and request
		want  []int // the status of each post
		final string
	}{
		{
			name:  "five wrong codes for one request end it with access_denied",
			steps: []int{0, 0, 0, 0, 0},
			want:  []int{401, 401, 401, 401, 303},
			final: "access_denied",
		},
		{
			name:  "codes past the account's budget are answered 429, the right one too",
			opts:  []option{rules(map[string]storage.ThrottleRule{storage.ScopeFactorAccount: short})},
			steps: []int{0, 0, 0, 1},
			want:  []int{401, 401, 401, 429},
		},
		{
			name:  "a right code forgives the wrong ones before it",
			opts:  []option{rules(map[string]storage.ThrottleRule{storage.ScopeFactorAccount: short})},
			steps: []int{0, 0, 1, -1, 0, 0},
			want:  []int{401, 401, 303, 0, 401, 401},
		},
		{
			name:  "a code accepted once does not pass again",
			steps: []int{1, -1, 2},
			want:  []int{303, 0, 401},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts...)
			secret := f.enrollTOTP(aliceID)
			b := f.browser()
			f.signIn(b, alice, alicePass)
			id := codePage(t, f, b)
			var used string
			var last response
			for i, s := range tt.steps {
				switch s {
				case -1:
					f.clock.Advance(time.Second) // the same time step: a used code stays used
					b = f.browser()
					f.signIn(b, alice, alicePass)
					id = codePage(t, f, b)
					continue
				case 0:
					last = b.code("/login/otp", id, f.wrongTOTP(secret))
				case 1:
					used = f.totp(secret)
					last = b.code("/login/otp", id, used)
				case 2:
					last = b.code("/login/otp", id, used)
				}
				if last.status != tt.want[i] {
					t.Fatalf("post %d: status %d, want %d\n%.1500s", i+1, last.status, tt.want[i], last.body)
				}
				if last.status == http.StatusTooManyRequests && last.header.Get("Retry-After") == "" {
					t.Errorf("post %d: 429 without Retry-After", i+1)
				}
			}
			if tt.final != "" {
				checkDispatch(t, f, id, last, dispatchWant{oauthErr: tt.final})
			}
		})
	}
}

// Each recovery code works once; the page counts what is left.
func TestRecoveryCodeWorksOnce(t *testing.T) {
	f := newFixture(t)
	codes := f.recoveryCodes(aliceID)
	b := f.browser()
	f.signIn(b, alice, alicePass)
	id := f.request(b, appClient, acrValues(acrMFA))
	if p := b.open(id); !hasForm(p.body, "/login/recovery") || !says(p.body, "You have 10 unused codes") {
		t.Fatalf("want the recovery page with 10 codes, got %d", p.status)
	}
	f.mustContinue(b.code("/login/recovery", id, codes[3]), id)
	f.mustComplete(b.open(id), id)
	if evs := f.audit("factor.recovery_code_used"); len(evs) != 1 || evs[0].Details["remaining"] != "9" {
		t.Errorf("factor.recovery_code_used %+v, want one with 9 remaining", evs)
	}

	f.clock.Advance(time.Minute)
	next := f.request(b, appClient, acrValues(acrMFA), maxAge(30))
	if p := b.open(next); !hasForm(p.body, "/login/password") {
		t.Fatalf("max_age=30 a minute later: want the password page, got %d", p.status)
	}
	f.mustContinue(b.password(next, alice, alicePass), next)
	if p := b.open(next); !says(p.body, "You have 9 unused codes") {
		t.Fatalf("want the recovery page with 9 codes, got %d\n%.1500s", p.status, p.body)
	}
	again := b.code("/login/recovery", next, codes[3])
	if again.status != http.StatusUnauthorized || !says(again.body, "Each code works once") {
		t.Errorf("a spent code: got %d, want 401", again.status)
	}
	f.mustContinue(b.code("/login/recovery", next, codes[4]), next)
}

// A passwordless assertion from a blocked address is refused before the
// ceremony is even looked at.
func TestPasskeySignInFromBlockedAddress(t *testing.T) {
	f := newFixture(t, withPasskeys(t), withStuffingLimit(-1), rules(map[string]storage.ThrottleRule{storage.ScopeIP: short}))
	b := f.browser()
	id := f.request(b, appClient)
	for i, u := range []string{"u1", "u2", "u3"} {
		checkAttempt(t, f, b.password(id, u, "x"), wrong(u), i)
	}
	got := b.postJSON("/login/webauthn/verify", map[string]any{"id": id, "credential": map[string]string{}})
	if got.status != http.StatusTooManyRequests {
		t.Fatalf("got %d %s, want 429", got.status, got.body)
	}
}

// The maintenance sweep deletes failure rows no rule reads any more, and
// never the factor lock's: a lock that counts wrong codes across any span
// of time outlives any sweep (issue 17: bounded files).
func TestSweepKeepsTheFactorLock(t *testing.T) {
	f := newFixture(t, codeLimits(nil))
	secret := f.enrollTOTP(aliceID)
	if r := f.browser().password(f.request(f.browser(), appClient), alice, "not the password"); r.status == http.StatusSeeOther {
		t.Fatalf("a wrong password signed in: %+v", r)
	}
	b := f.browser()
	f.signIn(b, alice, alicePass)
	id := codePage(t, f, b)
	for range 3 {
		b.code("/login/otp", id, f.wrongTOTP(secret))
	}

	f.clock.Advance(400 * 24 * time.Hour)
	n, err := f.ui.SweepThrottle(f.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("the sweep deleted nothing; the wrong password's rows are long past every window")
	}

	other := f.browser()
	f.signIn(other, alice, alicePass)
	next := f.request(other, mfaClient)
	if got := other.open(next); got.status != http.StatusForbidden || !says(got.body, "Your authenticator app is locked") {
		t.Fatalf("after the sweep: got %d, want the app still locked\n%.1500s", got.status, got.body)
	}
}
