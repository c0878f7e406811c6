package conformance

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// Requests that name a confidential client but do not authenticate as it
// (duplicated client_id, no secret, wrong method, revoke and introspect
// without credentials) are never charged to that client.
func TestRequestsNamingAClientDoNotChargeIt(t *testing.T) {
	e := rateEnv(t)
	e.addClient(storage.Client{ID: "evil", Name: "evil", SecretHash: factor.HashToken("evil-secret"), AuthMethod: "client_secret_post",
		GrantTypes: []string{"client_credentials"}, FirstParty: true, RateLimit: 1000})
	type attempt struct{ method, path, body, basicUser, basicPass string }
	attempts := []attempt{
		{"POST", "/oauth/token", "grant_type=client_credentials&client_id=busy&client_id=evil&client_secret=evil-secret", "", ""},
		{"POST", "/revoke", "token=x&client_id=busy", "", ""},
		{"POST", "/oauth/introspect", "token=x&client_id=busy", "", ""},
		{"GET", "/oauth/token", "", "busy", ""},
		{"GET", "/revoke", "", "busy", ""},
		{"GET", "/oauth/introspect", "", "busy", ""},
		{"OPTIONS", "/oauth/token", "", "busy", ""},
		{"POST", "/revoke", "token=x", "busy", ""},
		{"POST", "/oauth/introspect", "token=x", "busy", ""},
		{"POST", "/revoke", "token=x&client_id=busy&client_secret=", "", ""},
	}
	ip := 100
	for _, a := range attempts {
		for range 4 {
			ip++
			req, _ := http.NewRequest(a.method, e.issuer+a.path, strings.NewReader(a.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", "198.51.100."+strconv.Itoa(ip%250))
			if a.basicUser != "" {
				req.SetBasicAuth(a.basicUser, a.basicPass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(resp)
			if resp.StatusCode < 400 {
				t.Logf("%s %s %q: %d %.200s", a.method, a.path, a.body, resp.StatusCode, body)
			}
		}
	}
	if got := e.statuses(20, "203.0.113.67", "busy", "busy-secret"); got[http.StatusOK] != 20 {
		t.Errorf("busy after requests that named it without authenticating: %v, want its whole burst of 20", got)
	}
}

// An opaque access token issued by a refresh near the end of its family's
// life outlives the family. Revoking the family (RFC 7009 with the refresh
// token, or reuse detection) marks only the family's row; once the sweep
// deletes the expired family, the access token must stay revoked.
func TestRevokedFamilyOpaqueAccessTokenStaysRevokedAfterTheSweep(t *testing.T) {
	e := newEnv(t)
	const id, secret = "opaque-rp", "opaque-secret"
	e.addClient(storage.Client{ID: id, Name: "Opaque", SecretHash: factor.HashToken(secret),
		RedirectURIs: []string{rpRedirect}, AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "RS256", FirstParty: true, AccessTokenFormat: "opaque"})
	r := e.rp(id, secret)
	tok := r.login(e.browser(), nil)
	e.clock.Advance(30*24*time.Hour - time.Minute) // the family has a minute left
	// The ID token's exp follows the real clock, so go-oidc's verifier on
	// the advanced test clock refuses it: refresh by hand.
	status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.token.RefreshToken}}, id, secret)
	access, _ := out["access_token"].(string)
	refresh, _ := out["refresh_token"].(string)
	if status != http.StatusOK || access == "" || refresh == "" {
		t.Fatalf("refresh: %d %v", status, out)
	}
	active := func() bool {
		_, intro, _ := e.postForm("/oauth/introspect", url.Values{"token": {access}}, id, secret)
		_, uerr := r.provider.UserInfo(t.Context(), oauth2TokenSource{access})
		if (uerr == nil) != (intro["active"] == true) {
			t.Fatalf("userinfo (err %v) and introspection (%v) disagree", uerr, intro)
		}
		return uerr == nil
	}
	if !active() {
		t.Fatal("the access token is not active")
	}
	if status, _, _ := e.postForm("/revoke", url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}}, id, secret); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if active() {
		t.Fatal("active right after its family was revoked")
	}
	e.clock.Advance(2 * time.Minute) // the family has expired, its access token has not
	if _, err := e.store.DeleteExpiredTokens(t.Context(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if active() {
		t.Fatal("the access token of a revoked family is active again once the family was swept")
	}
}

// The CLI is another process: its revocations (sign-out, disable, factor
// reset) reach a JWT access token the server has cached as live within the
// token-state cache's 2 seconds of real time, at userinfo and introspection
// alike, and a refresh is refused at once.
func TestCLIRevocationsEndACachedJWTAccessToken(t *testing.T) {
	for _, c := range []struct {
		name string
		do   func(e *env) error
	}{
		{"sign out", func(e *env) error {
			_, err := ssCLI(e).SignOut(t.Context(), admin.Actor{ID: "cli", Reason: "review 17"}, "u-alice", "", e.clock.Now())
			return err
		}},
		{"disable", func(e *env) error {
			_, err := ssCLI(e).SetDisabled(t.Context(), admin.Actor{ID: "cli", Reason: "review 17"}, "u-alice", true, e.clock.Now())
			return err
		}},
		{"reset factors", func(e *env) error {
			return ssCLI(e).ResetFactors(t.Context(), admin.Actor{ID: "cli", Reason: "review 17"}, "u-alice", e.clock.Now())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.rp(rpClient, e.rpSecret)
			tok := r.login(e.browser(), nil)
			if !famLive(t, e, r, tok) { // cached as live now
				t.Fatal("not active")
			}
			if err := c.do(e); err != nil {
				t.Fatal(err)
			}
			if _, err := r.refresh(tok.token.RefreshToken); err == nil {
				t.Error("refresh works after the CLI ended access")
			}
			time.Sleep(2100 * time.Millisecond)
			if famLive(t, e, r, tok) {
				t.Error("the JWT access token is active 2 s after the CLI ended access")
			}
		})
	}
}

// A revoked client-credentials JWT has no row but its record in
// revoked_access_tokens, kept until "now + accessTokenTTL" at revocation.
// When the clock at revocation is behind the clock that issued the token
// (a step back, or another instance's skew), that record is swept while
// the token's own exp is still ahead: the revoked token is active again.
func TestRevokedJWTStaysRevokedAfterAClockStepBack(t *testing.T) {
	e := newEnv(t)
	status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rpClient, e.rpSecret)
	token, _ := out["access_token"].(string)
	if status != http.StatusOK || token == "" {
		t.Fatalf("client credentials: %d %v", status, out)
	}
	active := func() bool {
		_, intro, _ := e.postForm("/oauth/introspect", url.Values{"token": {token}}, rpClient, e.rpSecret)
		return intro["active"] == true
	}
	if !active() {
		t.Fatal("not active")
	}
	e.clock.Advance(-10 * time.Minute) // the clock steps back
	e.postForm("/revoke", url.Values{"token": {token}}, rpClient, e.rpSecret)
	if active() {
		t.Fatal("active after its client revoked it")
	}
	e.clock.Advance(16 * time.Minute) // 6 minutes after issue by the issuing clock: exp is 9 minutes ahead
	if _, err := e.store.DeleteExpiredTokens(t.Context(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // past the token-state cache
	if active() {
		t.Fatal("the revoked token is active again once its revocation record was swept")
	}
}

// An IPv6 host is handed a /64 (RFC 6177, RFC 7136): counting each of its
// addresses on its own lets one host escape the address limit by changing
// the interface identifier on every request.
func TestIPv6AddressesOfOneSubnetShareTheAddressLimit(t *testing.T) {
	e := rateEnv(t)
	limited := 0
	for i := range 8 {
		if e.grant("2001:db8:1:2::"+strconv.Itoa(i+1), "", "").StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 3 {
		t.Fatalf("8 requests without credentials from 8 addresses of one /64: %d limited, want 3 (address burst 5)", limited)
	}
	if e.grant("2001:db8:1:3::1", "", "").StatusCode == http.StatusTooManyRequests {
		t.Error("another /64 was limited")
	}
}
