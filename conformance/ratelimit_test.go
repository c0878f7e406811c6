package conformance

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// rateEnv has an address limit of burst 5 on the token endpoint and two
// service clients: busy, with a limit of its own (10/s, burst 20), and
// other, on the server's default (burst 8). The test clock stands still,
// so no bucket refills.
func rateEnv(t *testing.T) *env {
	e := newEnv(t, behindProxy, func(c *idp.Config) {
		c.RateLimits = map[string]idp.RateLimit{"token": {PerSecond: 1, Burst: 5}, "client": {PerSecond: 4, Burst: 8}}
	})
	for _, c := range []struct {
		id    string
		limit int
	}{{"busy", 10}, {"other", 0}} {
		e.addClient(storage.Client{ID: c.id, Name: c.id, SecretHash: factor.HashToken(c.id + "-secret"), AuthMethod: "client_secret_basic",
			GrantTypes: []string{"client_credentials"}, FirstParty: true, RateLimit: c.limit})
	}
	return e
}

// grant asks for a client_credentials token from ip as clientID with
// secret (no credentials when clientID is empty).
func (e *env) grant(ip, clientID, secret string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", ip)
	if clientID != "" {
		req.SetBasicAuth(clientID, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// statuses makes n grants and counts the answers by status.
func (e *env) statuses(n int, ip, clientID, secret string) map[int]int {
	out := map[int]int{}
	for range n {
		out[e.grant(ip, clientID, secret).StatusCode]++
	}
	return out
}

// A busy app's backend calls from one address: its authenticated requests
// count against its own limit, not the address's (issue 17). Over its
// limit it gets 429 with Retry-After in the OAuth error shape, and neither
// another client nor its address pays for it.
func TestBusyClientHasItsOwnLimit(t *testing.T) {
	e := rateEnv(t)
	const ip = "203.0.113.10"
	if got := e.statuses(20, ip, "busy", "busy-secret"); got[http.StatusOK] != 20 {
		t.Fatalf("20 grants of a client with burst 20 from one address (address burst 5): %v, want all 200", got)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", ip)
	req.SetBasicAuth("busy", "busy-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, `"error":"temporarily_unavailable"`) {
		t.Fatalf("the 21st grant: %d %s, want 429 temporarily_unavailable", resp.StatusCode, body)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if got := e.statuses(5, ip, "busy", "busy-secret"); got[http.StatusTooManyRequests] != 5 {
		t.Errorf("5 more grants of the throttled client: %v, want all 429", got)
	}
	if got := e.statuses(8, ip, "other", "other-secret"); got[http.StatusOK] != 8 {
		t.Errorf("another client from the same address, burst 8 by the server's default: %v, want all 200", got)
	}
	if got := e.statuses(1, ip, "", ""); got[http.StatusTooManyRequests] != 0 {
		t.Errorf("an unauthenticated request from the address after 33 authenticated ones: %v, want it served", got)
	}
}

// Requests that do not authenticate a client are held to the address's
// limit, and naming a client with a wrong secret spends nothing of that
// client's: anyone can name a client.
func TestUnauthenticatedFloodIsHeldToTheAddressLimit(t *testing.T) {
	e := rateEnv(t)
	const ip = "203.0.113.20"
	if got := e.statuses(8, ip, "", ""); got[http.StatusTooManyRequests] != 3 {
		t.Fatalf("8 requests without credentials: %v, want 3 refused with 429 (address burst 5)", got)
	}
	const guesser = "203.0.113.21"
	if got := e.statuses(8, guesser, "busy", "guess"); got[http.StatusTooManyRequests] != 3 || got[http.StatusOK] != 0 {
		t.Fatalf("8 wrong secrets for busy: %v, want 5 refused as unauthorised and 3 with 429", got)
	}
	if got := e.statuses(1, guesser, "busy", "busy-secret"); got[http.StatusTooManyRequests] != 1 {
		t.Errorf("the right secret from the flooding address: %v, want 429 (the address is over its limit)", got)
	}
	if got := e.statuses(20, "203.0.113.22", "busy", "busy-secret"); got[http.StatusOK] != 20 {
		t.Errorf("busy from its own address after the guesses: %v, want its whole burst of 20", got)
	}
}

// A public client is not authenticated: each of its users' requests count
// against their address, never against a client-wide bucket one user could
// empty for all.
func TestPublicClientRequestsCountPerAddress(t *testing.T) {
	e := rateEnv(t)
	e.addClient(storage.Client{ID: "rate-spa", Name: "SPA", Public: true, AuthMethod: "none", RedirectURIs: []string{"https://spa.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, RequirePKCE: true})
	refresh := func(ip string) int {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"rate-spa"}, "refresh_token": {"not-a-token"}}
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	limited := 0
	for range 8 {
		if refresh("203.0.113.30") == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 3 {
		t.Fatalf("8 requests of a public client from one address: %d limited, want 3 (address burst 5)", limited)
	}
	if refresh("203.0.113.31") == http.StatusTooManyRequests {
		t.Error("the public client was limited at another address")
	}
}

// The console's client form sets a client's rate limit, and says so when
// what was typed is not a number.
func TestAdminClientFormSetsTheRateLimit(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	f := newClientForm("metered")
	f.Set("rate_limit", "lots")
	if p := b.post("/admin/clients", f); p.status != http.StatusBadRequest || !strings.Contains(p.body, "Rate limit: enter a whole number") || !strings.Contains(p.body, `value="lots"`) {
		t.Fatalf("a rate limit that is not a number: %d\n%.3000s", p.status, p.body)
	}
	f.Set("rate_limit", "2500")
	if p := b.post("/admin/clients", f); p.status != http.StatusOK {
		t.Fatalf("create: %d\n%.3000s", p.status, p.body)
	}
	c, err := e.store.ClientByID(t.Context(), "metered")
	if err != nil || c.RateLimit != 2500 {
		t.Fatalf("stored rate limit %d, %v", c.RateLimit, err)
	}
	if p := b.get(e.issuer + "/admin/clients/metered"); !strings.Contains(p.body, `value="2500"`) {
		t.Errorf("the edit form does not show the rate limit:\n%.3000s", p.body)
	}
}

// The console's client form sets a client's refresh retry window (issue 17),
// and refuses one that is no duration or longer than a minute.
func TestAdminClientFormSetsTheRefreshReuseInterval(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	f := newClientForm("retrying")
	for _, bad := range []string{"soon", "5m"} {
		f.Set("refresh_reuse_interval", bad)
		if p := b.post("/admin/clients", f); p.status != http.StatusBadRequest || !strings.Contains(p.body, "refresh reuse interval") || !strings.Contains(p.body, `name="refresh_reuse_interval" type="text" autocomplete="off" value="`+bad) {
			t.Fatalf("refresh reuse interval %q: %d\n%.3000s", bad, p.status, p.body)
		}
	}
	f.Set("refresh_reuse_interval", "3s")
	if p := b.post("/admin/clients", f); p.status != http.StatusOK {
		t.Fatalf("create: %d\n%.3000s", p.status, p.body)
	}
	c, err := e.store.ClientByID(t.Context(), "retrying")
	if err != nil || c.RefreshReuseInterval != 3*time.Second {
		t.Fatalf("stored interval %v, %v", c.RefreshReuseInterval, err)
	}
	if p := b.get(e.issuer + "/admin/clients/retrying"); !strings.Contains(p.body, `value="3s"`) {
		t.Errorf("the edit form does not show the interval:\n%.3000s", p.body)
	}
}

// The PAR endpoint is limited like the token endpoint: unauthenticated
// floods count against their address.
func TestPARIsRateLimitedLikeTheTokenEndpoint(t *testing.T) {
	e := rateEnv(t)
	got := map[int]int{}
	for range 8 {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/par", strings.NewReader("client_id=nobody"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got[resp.StatusCode]++
	}
	if got[http.StatusUnauthorized] != 5 || got[http.StatusTooManyRequests] != 3 {
		t.Fatalf("statuses %v, want 5×401 then 3×429", got)
	}
}
