package conformance

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/storage"
)

// behindProxy trusts the loopback proxy, so tests can speak from many IPs
// with X-Forwarded-For (DESIGN §6: only configured proxies are believed).
func behindProxy(c *idp.Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

func (b *browser) from(ip string) *browser {
	b.ip = ip
	return b
}

func (b *browser) wrongPassword(id, user string) page {
	return b.post("/login/password", url.Values{"id": {id}, "username": {user}, "password": {"wrong password"}})
}

func (e *env) auditTypes(typ storage.EventType) int {
	e.t.Helper()
	ev, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(ev)
}

// Five wrong passwords from one address block that account there, with
// 429 and Retry-After — even for the right password — while the same
// account still works from another address (no lockout-as-DoS).
func TestPasswordGuessingIsThrottledPerAccountAndIP(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	attacker := e.browser().from("203.0.113.7")
	a := r.authURL(nil)
	id := attacker.get(a.url).hidden("id")
	for i := range 5 {
		if p := attacker.wrongPassword(id, alice); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, p.status)
		}
	}
	p := attacker.post("/login/password", url.Values{"id": {id}, "username": {alice}, "password": {alicePass}})
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("6th attempt: %d", p.status)
	}
	if secs, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", p.header.Get("Retry-After"))
	}
	if e.auditTypes("login.throttled") == 0 {
		t.Fatal("throttling was not audited")
	}
	t.Logf("brute force on one account from one address: 5 passwords checked, the 6th (the right one) refused with 429, Retry-After %s s", p.header.Get("Retry-After"))
	// Alice at home is not locked out.
	home := e.browser().from("198.51.100.20")
	r.login(home, nil)
	// And after the block expires the attacker's address may try again.
	e.clock.Advance(2 * time.Minute)
	if p := attacker.wrongPassword(id, alice); p.status != http.StatusUnauthorized {
		t.Fatalf("after the block: %d", p.status)
	}
}

// Unknown usernames are throttled exactly like real ones.
func TestThrottlingDoesNotRevealAccounts(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	statuses := func(user string, ip string) []int {
		b := e.browser().from(ip)
		id := b.get(r.authURL(nil).url).hidden("id")
		var out []int
		for range 7 {
			out = append(out, b.wrongPassword(id, user).status)
		}
		return out
	}
	real, fake := statuses(alice, "203.0.113.1"), statuses("mallory", "203.0.113.2")
	for i := range real {
		if real[i] != fake[i] {
			t.Fatalf("statuses differ: %v vs %v", real, fake)
		}
	}
}

// Parallel guesses cannot exceed the limit: the counters are atomic.
func TestParallelGuessesCannotExceedTheLimit(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser().from("203.0.113.9")
	id := b.get(r.authURL(nil).url).hidden("id")
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.wrongPassword(id, alice)
		}()
	}
	wg.Wait()
	ev, _ := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: "login.password", Outcome: "failure"})
	if len(ev) != 5 {
		t.Fatalf("%d passwords were checked, want exactly 5", len(ev))
	}
}

// A success forgives the failures before it (NIST SP 800-63B §5.2.2).
func TestSuccessClearsTheAccountIPCounter(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser().from("192.0.2.44")
	id := b.get(r.authURL(nil).url).hidden("id")
	for range 4 {
		b.wrongPassword(id, alice)
	}
	r.login(b, nil)
	b2 := e.browser().from("192.0.2.44")
	id = b2.get(r.authURL(nil).url).hidden("id")
	for i := range 4 {
		if p := b2.wrongPassword(id, alice); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d after a success: %d", i+1, p.status)
		}
	}
}

// Authenticator-app guesses are limited per account across challenges.
func TestCodeGuessingIsThrottledPerAccount(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	tries := 0
	for tries < 20 {
		a := r.authURL(url.Values{"acr_values": {acrMFA}})
		p := b.get(a.url)
		for range 4 {
			tries++
			p = b.submitCode(p, "/login/otp", "000000")
			if p.status == http.StatusTooManyRequests {
				if tries != 11 {
					t.Fatalf("blocked after %d wrong codes, want 11th", tries)
				}
				return
			}
		}
	}
	t.Fatal("20 wrong codes across challenges were never throttled")
}

// Credential stuffing tries one password per account, so per-account limits
// never fire: after 10 different accounts fail from one address in an
// hour, new usernames from it are refused.
func TestCredentialStuffingIsThrottledPerAddress(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser().from("198.18.0.5")
	id := b.get(r.authURL(nil).url).hidden("id")
	for i := range 10 {
		if p := b.wrongPassword(id, "victim"+strconv.Itoa(i)); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, p.status)
		}
	}
	p := b.post("/login/password", url.Values{"id": {id}, "username": {alice}, "password": {alicePass}})
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("11th account from the same address: %d", p.status)
	}
	t.Logf("credential stuffing from one address: 10 accounts tried, the 11th (alice, right password) refused with 429, Retry-After %s s", p.header.Get("Retry-After"))
	// Elsewhere, alice is unaffected.
	r.login(e.browser().from("192.0.2.8"), nil)
}
