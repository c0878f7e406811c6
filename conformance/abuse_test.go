package conformance

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// Bursts on the protocol endpoints get 429 with Retry-After, per address,
// and the server keeps answering others.
func TestEndpointRateLimits(t *testing.T) {
	e := newEnv(t, behindProxy, func(c *idp.Config) {
		c.RateLimits = map[string]idp.RateLimit{"token": {PerSecond: 1, Burst: 5}, "authorize": {PerSecond: 1, Burst: 3}}
	})
	call := func(ip string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", nil)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", ip)
		req.SetBasicAuth(rpClient, e.rpSecret)
		req.Body = http.NoBody
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	limited := 0
	for range 8 {
		if resp := call("203.0.113.1"); resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}
	}
	if limited != 3 {
		t.Fatalf("%d of 8 burst requests limited, want 3 (burst 5)", limited)
	}
	if resp := call("203.0.113.2"); resp.StatusCode == http.StatusTooManyRequests {
		t.Fatal("another address was limited too")
	}
	b := e.browser().from("203.0.113.3")
	r := e.rp(rpClient, e.rpSecret)
	codes := []int{}
	for range 5 {
		codes = append(codes, b.get(r.authURL(nil).url).status)
	}
	if codes[3] != http.StatusTooManyRequests || codes[4] != http.StatusTooManyRequests {
		t.Fatalf("authorize statuses %v", codes)
	}
}

// Without a trusted proxy, X-Forwarded-For is ignored: an attacker cannot
// pick a fresh address per guess to dodge per-address limits.
func TestSpoofedForwardedForIsIgnored(t *testing.T) {
	e := newEnv(t) // no trusted proxies
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	id := b.get(r.authURL(nil).url).hidden("id")
	for i := range 5 {
		b.ip = "198.51.100." + strconv.Itoa(i+1) // a new "address" each time
		if p := b.wrongPassword(id, alice); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, p.status)
		}
	}
	b.ip = "198.51.100.99"
	if p := b.wrongPassword(id, alice); p.status != http.StatusTooManyRequests {
		t.Fatalf("the spoofed header reset the per-address limit: %d", p.status)
	}
	ev, _ := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: "login.password"})
	for _, x := range ev {
		if x.IP != "127.0.0.1" {
			t.Fatalf("audit recorded the spoofed address %q", x.IP)
		}
	}
}

// 50 parallel wrong codes for one challenge never get more checks than the
// limit allows (5 per sign-in request).
func TestParallelCodeGuessesStayWithinTheLimit(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	p := b.get(r.authURL(url.Values{"acr_values": {acrMFA}}).url)
	id := p.hidden("id")
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.post("/login/otp", url.Values{"id": {id}, "code": {"000000"}})
		}()
	}
	wg.Wait()
	ev, _ := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: "stepup.factor", Outcome: "failure"})
	if len(ev) > 5 {
		t.Fatalf("%d codes were checked, the limit is 5", len(ev))
	}
	t.Logf("50 parallel guesses: %d checked, the rest refused", len(ev))
}

// A sensitive scope raises the floor even when the app asks for nothing.
func TestSensitiveScopeRaisesTheFloor(t *testing.T) {
	e := newEnv(t, behindProxy, withRisk(func(c *signin.RiskConfig) { c.SensitiveScopes = []string{"profile"} }))
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	establish(t, e, r)
	// A new device on a known network is low risk alone...
	plain := e.browser().from("198.51.100.77")
	a := r.authURL(url.Values{"scope": {"openid"}})
	if code := r.code(plain.signIn(plain.get(a.url), alice, alicePass), a); code == "" {
		t.Fatal("no code")
	}
	// ...and medium with a sensitive scope: the second factor is asked.
	other := e.browser().from("198.51.100.78")
	a = r.authURL(url.Values{"scope": {"openid profile"}})
	if p := other.signIn(other.get(a.url), alice, alicePass); !p.has("/login/otp") {
		t.Fatalf("a sensitive scope did not raise the floor: %d", p.status)
	}
}
