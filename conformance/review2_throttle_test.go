package conformance

// Issue 15, throttling and factor verification: each test reproduces a
// finding of the second review (items 2, 3, 6, 7 and 11) against a real
// server on a simulated clock.

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/login/factor"
)

// ---- item 2: a stranger cannot lock the owner out ----

// rtOwnerSignIn signs alice in with her password from b (prompt=login, so
// the password is checked every time) and fails the test unless the RP
// gets a code.
func rtOwnerSignIn(t *testing.T, e *env, r *rp, b *browser, when string) {
	t.Helper()
	a := r.authURL(url.Values{"prompt": {"login"}})
	p := b.get(a.url)
	if !p.has("/login/password") {
		t.Fatalf("%s: no password form for the owner: %d %v\n%.1500s", when, p.status, p.redirect, p.body)
	}
	p = b.signIn(p, alice, alicePass)
	if p.redirect == nil {
		t.Fatalf("%s: the owner could not sign in: %d Retry-After %q\n%.1500s", when, p.status, p.header.Get("Retry-After"), p.body)
	}
	// The code is the sign-in; the library stamps tokens with the real
	// time, which the simulated days have left behind.
	r.code(p, a)
}

// rtGuesses plays a patient attacker: wrong passwords for user, each from a
// fresh browser at addr(i), waiting out every Retry-After, until the clock
// reaches until. It returns when each password was checked (401) and the
// status and Retry-After of every answer.
func rtGuesses(t *testing.T, e *env, r *rp, user string, addr func(i int) string, until time.Time) (checked []time.Time, answers []string) {
	t.Helper()
	for i := 0; e.clock.Now().Before(until); i++ {
		b := e.browser().from(addr(i))
		id := b.get(r.authURL(nil).url).hidden("id")
		if id == "" {
			t.Fatalf("guess %d: no sign-in page", i)
		}
		p := b.wrongPassword(id, user)
		answers = append(answers, strconv.Itoa(p.status)+" "+p.header.Get("Retry-After"))
		switch p.status {
		case http.StatusUnauthorized:
			checked = append(checked, e.clock.Now())
			e.clock.Advance(time.Second)
		case http.StatusTooManyRequests:
			secs, err := strconv.Atoi(p.header.Get("Retry-After"))
			if err != nil || secs < 1 {
				t.Fatalf("guess %d: Retry-After %q", i, p.header.Get("Retry-After"))
			}
			e.clock.Advance(min(time.Duration(secs)*time.Second, until.Sub(e.clock.Now())))
		default:
			t.Fatalf("guess %d: %d\n%.1500s", i, p.status, p.body)
		}
	}
	return checked, answers
}

// rtHardLocked reports whether an answer of rtGuesses is the hard lock: a
// refusal for most of a day.
func rtHardLocked(answer string) bool {
	var status, secs int
	_, _ = fmt.Sscan(answer, &status, &secs)
	return status == http.StatusTooManyRequests && secs > 12*3600
}

// rtMostIn24h is the largest number of times within any 24 hours.
func rtMostIn24h(ts []time.Time) int {
	most := 0
	for i := range ts {
		n := 0
		for _, u := range ts[i:] {
			if u.Sub(ts[i]) < 24*time.Hour {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// The password budget an attacker from places the owner never signed in
// from can use up (README, "Abuse resistance").
const rtStrangerBudget = 100

// Item 2: the hard lock (100 failures / 24 h) was keyed by the username
// alone, so anyone could lock anyone out for a day, again and again. Now
// failures from places the owner has never signed in from count in a
// budget of their own: the owner keeps signing in from a known device (and
// a known network), while the attacker still gets no more than 100 guesses
// a day, from one address or from many.
func TestReview2StrangersCannotLockTheOwnerOut(t *testing.T) {
	tests := []struct {
		name string
		addr func(i int) string
		// newDeviceAtHome: the owner also signs in from a new browser on
		// her home network (the attacker is not on it).
		newDeviceAtHome bool
		budget          int // the most guesses the attacker may make in 24 h
	}{
		{"one address", func(int) string { return "203.0.113.5" }, true, rtStrangerBudget},
		{"a new address on a new network for every guess", func(i int) string { return fmt.Sprintf("100.%d.%d.9", 64+i/250%64, i%250) }, true, rtStrangerBudget},
		// Someone on the owner's own network (an office, a shared NAT)
		// spends the known-network budget instead, never the device's.
		{"addresses on the owner's own network", func(i int) string { return "198.51.100." + strconv.Itoa(20+i%200) }, false, rtStrangerBudget},
		// Both at once: the most anyone without the owner's browser gets.
		{"the owner's network and new networks in turn", func(i int) string {
			if i%2 == 0 {
				return "198.51.100." + strconv.Itoa(20+i%200)
			}
			return fmt.Sprintf("100.%d.%d.9", 64+i/250%64, i%250)
		}, false, 2 * rtStrangerBudget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, behindProxy)
			r := e.rp(rpClient, e.rpSecret)
			home := establish(t, e, r) // alice's browser at 198.51.100.10
			start := e.clock.Now()
			var checked []time.Time
			const days = 2
			for day := 1; day <= days; day++ {
				c, _ := rtGuesses(t, e, r, alice, tt.addr, start.Add(time.Duration(day)*24*time.Hour))
				checked = append(checked, c...)
				rtOwnerSignIn(t, e, r, home, fmt.Sprintf("day %d, her own browser", day))
				if tt.newDeviceAtHome {
					rtOwnerSignIn(t, e, r, e.browser().from("198.51.100.200"), fmt.Sprintf("day %d, a new browser at home", day))
				}
			}
			most := rtMostIn24h(checked)
			if most > tt.budget {
				t.Errorf("the attacker had %d passwords checked within 24 h, the stated budget is %d", most, tt.budget)
			}
			if len(checked) > days*tt.budget {
				t.Errorf("the attacker had %d passwords checked in %d days, at most %d allowed", len(checked), days, days*tt.budget)
			}
			t.Logf("%s: %d passwords checked in %d simulated days (at most %d in any 24 h); the owner signed in every day", tt.name, len(checked), days, most)
		})
	}
}

// What the owner sees on a new device on a new network while a stranger
// has spent the new-places budget: the password is refused with a page
// that names the ways still open, and a passkey signs her in — password
// locks never touch a passkey sign-in.
func TestReview2PasskeySignInIgnoresPasswordLocks(t *testing.T) {
	e := newEnv(t, behindProxy, onLocalhost)
	r := e.rp(rpClient, e.rpSecret)
	k := e.softEnroll(alice, alicePass)
	_, answers := rtGuesses(t, e, r, alice, func(int) string { return "203.0.113.5" }, e.clock.Now().Add(8*time.Hour))
	if !slices.ContainsFunc(answers, rtHardLocked) {
		t.Fatalf("the stranger never reached the hard lock: %v", answers)
	}

	owner := e.browser().from("192.0.2.50") // a new laptop in a hotel
	a := r.authURL(nil)
	p := owner.signIn(owner.get(a.url), alice, alicePass)
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "a device you&#39;ve used before, or with a passkey") {
		t.Fatalf("the password from a new place: want 429 naming the other ways, got %d\n%.1500s", p.status, p.body)
	}
	a, id := owner.softPasswordless(r, nil)
	status, out := owner.rvPostJSON("/login/webauthn/options", map[string]string{"id": id})
	pk, _ := out["publicKey"].(map[string]any)
	challenge, _ := pk["challenge"].(string)
	if status != http.StatusOK || challenge == "" {
		t.Fatalf("passkey options: %d %v", status, out)
	}
	status, out = owner.rvPostJSON("/login/webauthn/verify", map[string]any{"id": id, "credential": k.assertion(e, challenge, softTweak{})})
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || next == "" {
		t.Fatalf("the passkey was refused: %d %v", status, out)
	}
	r.code(owner.get(e.issuer+next), a) // not exchanged: see rtOwnerSignIn
}

// Unknown usernames meet the same limits at the same points, hard lock
// included: the answers to a stranger reveal nothing about which accounts
// exist.
func TestReview2LockoutDoesNotRevealAccounts(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	establish(t, e, r)
	run := func(user string, net int) []string {
		_, answers := rtGuesses(t, e, r, user, func(i int) string { return fmt.Sprintf("10.%d.%d.%d", net, i/200, 1+i%200) }, e.clock.Now().Add(26*time.Hour))
		return answers
	}
	real, fake := run(alice, 1), run("mallory", 2)
	if !slices.ContainsFunc(real, rtHardLocked) {
		t.Fatalf("the hard lock was never reached: %v", real)
	}
	if !slices.Equal(real, fake) {
		i := 0
		for i < min(len(real), len(fake)) && real[i] == fake[i] {
			i++
		}
		t.Fatalf("a real and an unknown account are answered differently from attempt %d on:\nalice:   %v\nmallory: %v", i+1, real[i:min(len(real), i+20)], fake[i:min(len(fake), i+20)])
	}
}

// ---- item 3: a hard cap on code guesses ----

// rtCodePage opens a new mfa request with prompt=login in b, signs in with
// the password (which must not reset any code count) and shows the page
// for method.
func rtCodePage(t *testing.T, e *env, r *rp, b *browser, method string) (authRequest, page) {
	t.Helper()
	e.clock.Advance(time.Second) // prompt=login: factors from before the request do not count
	a := r.authURL(url.Values{"acr_values": {acrMFA}, "prompt": {"login"}})
	p := b.get(a.url)
	if id := p.hidden("id"); !p.has("/login/password") && id != "" { // a passkey leads
		p = b.get(e.issuer + "/login?method=pwd&id=" + url.QueryEscape(id))
	}
	p = b.signIn(p, alice, alicePass)
	if id := p.hidden("id"); id != "" && method != "" {
		p = b.get(e.issuer + "/login?method=" + method + "&id=" + url.QueryEscape(id))
	}
	return a, p
}

// rtWrongTOTP is a code that matches none of the steps accepted now.
func rtWrongTOTP(t *testing.T, e *env, secret string) string {
	t.Helper()
	var near []string
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, err := factor.TOTPCode(secret, e.clock.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		near = append(near, c)
	}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !slices.Contains(near, c) {
			return c
		}
	}
	t.Fatal("no wrong code")
	return ""
}

// rtCodeCase is one guessable factor.
type rtCodeCase struct {
	method, action string
	right          func(e *env) string // the right code now
	wrong          func(e *env) string
}

func rtCodeCases(t *testing.T, e *env) []rtCodeCase {
	secret := e.enrollTOTP("u-alice")
	codes := e.recoveryCodes("u-alice")
	used := 0
	return []rtCodeCase{
		{"totp", "/login/otp", func(e *env) string { return e.totp(secret) }, func(e *env) string { return rtWrongTOTP(t, e, secret) }},
		{"recovery", "/login/recovery", func(*env) string { used++; return codes[used-1] }, func(*env) string { return "aaaa-bbbb-cccc" }},
	}
}

// rtGuessCodes submits n wrong codes for c from b, four per request (the
// fifth would end the request) and 16 minutes apart (past the per-account
// window), a day passing after every 24: a patient attacker who holds the
// password. Every one must be checked.
func rtGuessCodes(t *testing.T, e *env, r *rp, b *browser, c rtCodeCase, n int) {
	t.Helper()
	for done := 0; done < n; {
		_, p := rtCodePage(t, e, r, b, c.method)
		for k := 0; k < 4 && done < n; k++ {
			p = b.submitCode(p, c.action, c.wrong(e))
			// Checked and refused: "didn't work" (the 100th also locks:
			// 403 with the locked page).
			if p.status != http.StatusUnauthorized && p.status != http.StatusForbidden || !strings.Contains(p.body, "didn&#39;t work") {
				t.Fatalf("wrong %s code %d: %d %v\n%.1500s", c.method, done+1, p.status, p.redirect, p.body)
			}
			done++
			if done%24 == 0 {
				e.clock.Advance(24 * time.Hour)
			}
		}
		e.clock.Advance(16 * time.Minute)
	}
}

// rtRightCode submits the right code for c in a new request and reports
// whether the RP got a code.
func rtRightCode(t *testing.T, e *env, r *rp, b *browser, c rtCodeCase) (bool, page) {
	t.Helper()
	e.clock.Advance(time.Minute) // a fresh TOTP step
	a, p := rtCodePage(t, e, r, b, c.method)
	if !p.has(c.action) {
		return false, p
	}
	p = b.submitCode(p, c.action, c.right(e))
	if p.redirect == nil {
		return false, p
	}
	r.code(p, a) // not exchanged: see rtOwnerSignIn
	return true, p
}

// Item 3: authenticator-app and recovery-code guesses were only slowed
// down (~950 a day). NIST SP 800-63B §5.2.2: after 100 consecutive failures
// the factor is locked — the right code is refused too, however many days
// pass — until the owner proves another second factor or an admin unlocks.
func TestReview2HundredWrongCodesLockTheFactor(t *testing.T) {
	for i, method := range []string{"totp", "recovery"} {
		t.Run(method, func(t *testing.T) {
			e, adminSecret := adminEnv(t)
			cases := rtCodeCases(t, e)
			c, other := cases[i], cases[1-i]
			r := e.rp(rpClient, e.rpSecret)
			b := e.browser()
			r.login(b, nil)
			rtGuessCodes(t, e, r, b, c, 100)

			// The 101st guess, the right code, days later: refused.
			e.clock.Advance(3 * 24 * time.Hour)
			_, p := rtCodePage(t, e, r, b, c.method)
			p = b.post(c.action, url.Values{"id": {p.hidden("id")}, "code": {c.right(e)}})
			if p.redirect != nil {
				t.Fatalf("the right %s code after 100 wrong ones was accepted", c.method)
			}
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "locked") {
				t.Fatalf("the 101st %s code: want the locked page (403), got %d\n%.2000s", c.method, p.status, p.body)
			}
			// The locked page offers the other way in, and that way lifts the lock.
			if !strings.Contains(p.body, "method="+other.method) {
				t.Fatalf("the locked page does not offer the %s:\n%.2000s", other.method, p.body)
			}
			if _, p := rtCodePage(t, e, r, b, ""); c.method == "totp" && (!p.has(other.action) || !strings.Contains(p.body, "locked")) {
				t.Fatalf("a new request still leads with the locked %s: %d\n%.2000s", c.method, p.status, p.body)
			}
			if ok, p := rtRightCode(t, e, r, b, other); !ok {
				t.Fatalf("the %s did not work: %d\n%.2000s", other.method, p.status, p.body)
			}
			if ok, p := rtRightCode(t, e, r, b, c); !ok {
				t.Fatalf("the %s stayed locked after the owner proved the %s: %d\n%.2000s", c.method, other.method, p.status, p.body)
			}

			// Only a success of the factor itself resets its count:
			// 99 wrong, right, 99 wrong, right.
			e.clock.Advance(24 * time.Hour)
			for round := range 2 {
				rtGuessCodes(t, e, r, b, c, 99)
				if ok, p := rtRightCode(t, e, r, b, c); !ok {
					t.Fatalf("round %d: the right %s code after 99 wrong ones: %d\n%.2000s", round, c.method, p.status, p.body)
				}
			}

			// Locked again; an admin unlocks it in the console.
			rtGuessCodes(t, e, r, b, c, 100)
			if ok, _ := rtRightCode(t, e, r, b, c); ok {
				t.Fatalf("the %s was not locked the second time", c.method)
			}
			admin := e.browser()
			admin.adminLogin(adminSecret)
			if p := admin.get(e.issuer + "/admin/users/u-alice"); !strings.Contains(p.body, c.method+" locked</span>") {
				t.Fatalf("the console does not show the %s locked:\n%.3000s", c.method, p.body)
			}
			if p := admin.post("/admin/users/u-alice/unlock", nil); !strings.Contains(p.body, "The account was unlocked") {
				t.Fatalf("unlock: %d\n%.2000s", p.status, p.body)
			}
			if ok, p := rtRightCode(t, e, r, b, c); !ok {
				t.Fatalf("the %s stayed locked after the admin unlocked it: %d\n%.2000s", c.method, p.status, p.body)
			}
		})
	}
}

// A passkey sign-in without the password (no settle on the way) lifts a
// code factor's lock too: the owner has proven another second factor.
func TestReview2PasswordlessPasskeyLiftsACodeLock(t *testing.T) {
	e := newEnv(t, onLocalhost)
	r := e.rp(rpClient, e.rpSecret)
	k := e.softEnroll(alice, alicePass)
	c := rtCodeCases(t, e)[0]
	b := e.browser()
	r.login(b, nil)
	rtGuessCodes(t, e, r, b, c, 100)
	if ok, p := rtRightCode(t, e, r, b, c); ok || p.status != http.StatusForbidden {
		t.Fatalf("the app was not locked: %d", p.status)
	}
	owner := e.browser()
	a, id := owner.softPasswordless(r, nil)
	status, out, _ := owner.softAssert(id, k, softTweak{})
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || next == "" {
		t.Fatalf("the passkey was refused: %d %v", status, out)
	}
	r.code(owner.get(e.issuer+next), a)
	if ok, p := rtRightCode(t, e, r, b, c); !ok {
		t.Fatalf("the app stayed locked after a passkey sign-in: %d\n%.2000s", p.status, p.body)
	}
}

// ---- item 6: a code never stands in for the first factor ----

// Item 6: a session cookie replayed from another network and browser is
// asked for the password again, but posting a valid code to the code
// endpoint instead started a new session whose only factor was that code
// (acr sfa, amr otp). Every code endpoint now asks the dispatcher's own
// decision whether that method is expected, and changes nothing if not.
func TestReview2StolenSessionCannotSwapThePasswordForACode(t *testing.T) {
	e := newEnv(t, behindProxy)
	secret := e.enrollTOTP("u-alice")
	codes := e.recoveryCodes("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	home := e.browser().from("198.51.100.10")
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := home.submitCode(home.signIn(home.get(a.url), alice, alicePass), "/login/otp", e.totp(secret))
	r.mustExchange(r.code(p, a), a)

	e.clock.Advance(time.Minute)
	thief := e.browser().from("203.0.113.77")
	thief.ua = "curl/8.0"
	rvSteal(t, e, home, thief)
	for _, tc := range []struct{ action, code string }{
		{"/login/otp", e.totp(secret)},
		{"/login/recovery", codes[0]},
	} {
		a := r.authURL(nil)
		p := thief.get(a.url)
		if !p.has("/login/password") {
			t.Fatalf("drift did not ask for the password: %d %v\n%.1500s", p.status, p.redirect, p.body)
		}
		before, id := sessionCookie(thief, e), p.hidden("id")
		p = thief.post(tc.action, url.Values{"id": {id}, "code": {tc.code}})
		if p.redirect != nil {
			if code := p.redirect.Query().Get("code"); code != "" {
				tok := r.mustExchange(code, a)
				t.Fatalf("a stolen session cookie plus a code at %s got acr=%s amr=%v without the password", tc.action, tok.claims.ACR, tok.claims.AMR)
			}
			t.Fatalf("%s: redirected to the RP: %v", tc.action, p.redirect)
		}
		if p.status != http.StatusBadRequest {
			t.Fatalf("%s from a drifted session: want 400, got %d\n%.1500s", tc.action, p.status, p.body)
		}
		if after := sessionCookie(thief, e); after != before {
			t.Fatalf("%s changed the session cookie", tc.action)
		}
		// Nothing changed: the flow still wants the password.
		if p := thief.get(e.issuer + "/login?id=" + url.QueryEscape(id)); !p.has("/login/password") {
			t.Fatalf("after the refused %s: %d %v\n%.1500s", tc.action, p.status, p.redirect, p.body)
		}
	}
	if n, _ := e.store.CountRecoveryCodes(context.Background(), "u-alice"); n != 10 {
		t.Fatalf("a refused recovery code was spent: %d left", n)
	}

	// No session at all: refused the same way, and no session is made.
	stranger := e.browser().from("203.0.113.90")
	a = r.authURL(nil)
	p = stranger.get(a.url)
	e.clock.Advance(30 * time.Second)
	p = stranger.post("/login/otp", url.Values{"id": {p.hidden("id")}, "code": {e.totp(secret)}})
	if p.redirect != nil || p.status != http.StatusBadRequest {
		t.Fatalf("a code without a session: %d %v\n%.1500s", p.status, p.redirect, p.body)
	}
	if sessionCookie(stranger, e) != "" {
		t.Fatal("a code without a session made a session")
	}
}

// ---- item 7: recovery codes under a keyed hash ----

var rtCodesRE = regexp.MustCompile(`<li><code>([a-z2-9-]+)</code>`)

func rtStoredRecoveryHashes(t *testing.T, e *env) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dbDir, "keystep.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT hash FROM recovery_codes WHERE user_id = 'u-alice'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// Item 7: recovery codes were stored as unsalted SHA-256, so a copy of the
// database alone let anyone test candidates offline. They are now stored
// under HMAC-SHA256 with a key derived from the master key.
func TestReview2RecoveryCodesAreStoredUnderAKeyedHash(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	b.portalLogin()
	p := b.get(e.issuer + "/account/totp")
	m := secretRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no enrollment page:\n%.2000s", p.body)
	}
	code, _ := factor.TOTPCode(m[1], e.clock.Now())
	p = b.post("/account/totp", url.Values{"code": {code}, "name": {"Phone"}})
	var codes []string
	for _, m := range rtCodesRE.FindAllStringSubmatch(p.body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown:\n%.2000s", len(codes), p.body)
	}
	stored := rtStoredRecoveryHashes(t, e)
	if len(stored) != 10 {
		t.Fatalf("%d codes stored", len(stored))
	}
	for _, c := range codes {
		if slices.Contains(stored, factor.HashRecoveryCode(c)) {
			t.Fatalf("recovery code %s is stored as its plain SHA-256", c)
		}
	}
	// And they work.
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p = b.get(e.issuer + "/login?method=recovery&id=" + url.QueryEscape(b.get(a.url).hidden("id")))
	if tok := r.mustExchange(r.code(b.submitCode(p, "/login/recovery", codes[4]), a), a); tok.claims.ACR != acrMFA {
		t.Fatalf("acr %s", tok.claims.ACR)
	}
}

// A code stored before the keyed hash (plain SHA-256) still works, once
// (the other one keeps recovery codes on offer for the second try).
func TestReview2LegacyRecoveryCodeWorksOnce(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	const legacy = "k7dq-m2xp-9fhr"
	if err := e.store.ReplaceRecoveryCodes(context.Background(), "u-alice", []string{factor.HashRecoveryCode(legacy), factor.HashRecoveryCode("a2b3-c4d5-e6f7")}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	r := e.rp(rpClient, e.rpSecret)
	for i, want := range []bool{true, false} {
		b := e.browser()
		r.login(b, nil)
		a := r.authURL(url.Values{"acr_values": {acrMFA}})
		p := b.get(e.issuer + "/login?method=recovery&id=" + url.QueryEscape(b.get(a.url).hidden("id")))
		p = b.submitCode(p, "/login/recovery", legacy)
		if got := p.redirect != nil && p.redirect.Query().Get("code") != ""; got != want {
			t.Fatalf("use %d of a legacy code: accepted %v, want %v (%d)", i+1, got, want, p.status)
		}
	}
}

// ---- item 11: only a later TOTP step ----

// Item 11: the replay store remembered used steps, so after the code of
// step t+1 the unused code of step t (still inside the ±1 window) was
// accepted too. RFC 6238 §5.2: accept only steps later than the last
// accepted one.
func TestReview2OlderTOTPStepIsRefusedAfterANewerOne(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b1, b2 := e.browser(), e.browser()
	r.login(b1, nil)
	r.login(b2, nil)
	now := e.clock.Now()
	next, _ := factor.TOTPCode(secret, now.Add(30*time.Second))
	cur, _ := factor.TOTPCode(secret, now)
	if next == cur {
		t.Skip("steps t and t+1 share a code")
	}
	a1 := r.authURL(url.Values{"acr_values": {acrMFA}})
	r.mustExchange(r.code(b1.submitCode(b1.get(a1.url), "/login/otp", next), a1), a1)
	a2 := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := b2.submitCode(b2.get(a2.url), "/login/otp", cur)
	if p.redirect != nil {
		t.Fatal("the code of step t was accepted after the code of step t+1")
	}
	if p.status != http.StatusUnauthorized {
		t.Fatalf("step t after t+1: %d", p.status)
	}
}
