package conformance

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/postgres"
	"github.com/keystep/keystep/storage/sqlite"
)

// Issue 21: per-client policy at the token endpoint, and a policy version
// saved on one instance deciding the next sign-in on another without a
// restart, while a sign-in in flight is decided to its end under the
// version it began with.

const payrollWrite = "payroll:write"

// policyService is the admin.Service whose saved versions take effect
// through pols (an instance's Server.Policies), as the console's is.
func policyService(t *testing.T, st storage.Store, key []byte, clk *clock, pols *policy.Live) *admin.Service {
	t.Helper()
	ak, err := storage.NewAuditKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &admin.Service{Store: st, Policies: pols, BuiltIn: idp.AccountClientID,
		Audit: &web.Auditor{Store: st, Key: ak, Log: slog.New(slog.DiscardHandler), Now: clk.Now}}
}

// savePolicy saves doc as the next version from the active one and
// returns its number.
func savePolicy(t *testing.T, a *admin.Service, doc policy.Document, now time.Time) int64 {
	t.Helper()
	v, changed, err := a.SavePolicy(context.Background(), admin.Actor{ID: "cli", Reason: "issue 21 test"}, "test", doc, a.Policies.Current().Version, now)
	if err != nil || !changed {
		t.Fatalf("save policy: changed=%v err=%v", changed, err)
	}
	return v.Number
}

// clientPolicy is a document with one client's policy.
func clientPolicy(id string, cp policy.ClientPolicy) policy.Document {
	return policy.Document{ClientPolicies: map[string]policy.ClientPolicy{id: cp}}
}

// lastEvent is the newest audit event of typ for clientID.
func lastEvent(t *testing.T, st storage.Store, typ storage.EventType, clientID string) storage.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].ClientID == clientID {
			return evs[i]
		}
	}
	t.Fatalf("no %s event for %s", typ, clientID)
	return storage.AuditEvent{}
}

// tokenPost redeems a code or a refresh token at the token endpoint.
func tokenPost(e *env, form url.Values) (int, map[string]any) {
	e.t.Helper()
	status, body, _ := e.postForm("/oauth/token", form, rpClient, e.rpSecret)
	return status, body
}

// A client's token lifetimes shorten the server's: the access token's
// expires_in at the code exchange is the one of the version the sign-in
// was parsed under, at a refresh the active version's; the refresh family
// ends by the client's refresh lifetime, and by a shorter one an admin
// sets later.
func TestClientTokenLifetimes(t *testing.T) {
	e := newEnv(t)
	a := policyService(t, e.store, e.key, e.clock, e.server.Policies())
	r := e.rp(rpClient, e.rpSecret)
	code := func() (string, authRequest) {
		au := r.authURL(nil) // openid profile offline_access
		b := e.browser()
		return r.code(b.signIn(b.get(au.url), alice, alicePass), au), au
	}
	redeem := func(c string, au authRequest) map[string]any {
		t.Helper()
		status, body := tokenPost(e, url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {rpRedirect}, "code_verifier": {au.verifier}})
		if status != http.StatusOK {
			t.Fatalf("code exchange: %d %v", status, body)
		}
		return body
	}
	refresh := func(rt string) (int, map[string]any) {
		return tokenPost(e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	expiresIn := func(body map[string]any) int {
		n, _ := body["expires_in"].(float64)
		return int(n)
	}

	// The server's lifetime, for the control.
	c0, a0 := code()
	if got := expiresIn(redeem(c0, a0)); got != 900 {
		t.Fatalf("server's access token lifetime: expires_in %d, want 900", got)
	}

	// A client's longer lifetime changes nothing: it only shortens.
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{AccessTokenLifetime: "2h"}), e.clock.Now())
	c1, a1 := code()
	if got := expiresIn(redeem(c1, a1)); got != 900 {
		t.Fatalf("a longer client lifetime: expires_in %d, want 900", got)
	}

	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{AccessTokenLifetime: "5m", RefreshTokenLifetime: "1h"}), e.clock.Now())
	// A sign-in parsed under this version, redeemed after the next one
	// is active, gets this version's lifetime.
	c2, a2 := code()
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{AccessTokenLifetime: "10m", RefreshTokenLifetime: "1h"}), e.clock.Now())
	tok := redeem(c2, a2)
	if got := expiresIn(tok); got != 300 {
		t.Fatalf("code exchange under the version the sign-in was parsed under: expires_in %d, want 300", got)
	}
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh token: %v", tok)
	}
	// A refresh is under the active version.
	e.clock.Advance(30 * time.Minute)
	status, body := refresh(rt)
	if status != http.StatusOK || expiresIn(body) != 600 {
		t.Fatalf("refresh under the active version: %d expires_in %d, want 200 and 600 (%v)", status, expiresIn(body), body)
	}
	rt, _ = body["refresh_token"].(string)
	// The family ends an hour after the code exchange, rotation or not.
	e.clock.Advance(31 * time.Minute)
	if status, body := refresh(rt); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh after the client's refresh lifetime: %d %v, want invalid_grant", status, body)
	}

	// An admin shortening the refresh lifetime ends families older than
	// the new one at their next refresh.
	c3, a3 := code()
	rt, _ = redeem(c3, a3)["refresh_token"].(string)
	e.clock.Advance(20 * time.Minute)
	savePolicy(t, a, clientPolicy(rpClient, policy.ClientPolicy{RefreshTokenLifetime: "15m"}), e.clock.Now())
	if status, body := refresh(rt); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh of a family older than the active refresh lifetime: %d %v, want invalid_grant", status, body)
	}
}

// The acceptance of issue 21 on PostgreSQL: two instances on one database.
func TestPolicyLiveAcrossInstancesPostgreSQL(t *testing.T) {
	dsn := pgSchema(t)
	testPolicyLive(t, func(t *testing.T) storage.Store {
		st, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

// The same on SQLite: two servers on one database file.
func TestPolicyLiveAcrossInstancesSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keystep.db")
	testPolicyLive(t, func(t *testing.T) storage.Store {
		st, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

// testPolicyLive: instance A saves a version making payroll:write need phr
// at the payroll app; B, following, asks the next sign-in with that scope
// for the passkey, without a restart, while a sign-in B began before the
// change is decided to its end under the old version.
func testPolicyLive(t *testing.T, open func(t *testing.T) storage.Store) {
	ctx := context.Background()
	key := make([]byte, 32)
	copy(key, "policy live test master key 32 b")
	clk := newClock()

	var target atomic.Int32
	var instances [2]*idp.Server
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		instances[target.Load()].ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)
	issuer := strings.Replace(lb.URL, "127.0.0.1", "localhost", 1) // passkeys want a host name
	var stores [2]storage.Store
	for i := range 2 {
		st := open(t)
		t.Cleanup(func() { st.Close() })
		stores[i] = st
		srv, err := idp.NewServer(ctx, idp.Config{
			Issuer: issuer, Store: st, MasterKey: key, Policy: stepup.DefaultPolicy(),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.Now, Hasher: factor.NewTestPasswordHasher(),
		})
		if err != nil {
			t.Fatal(err)
		}
		instances[i] = srv
	}
	A, B := instances[0], instances[1]
	follow, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { B.FollowPolicy(follow, 20*time.Millisecond); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	const payroll = "payroll"
	e := &env{t: t, store: stores[0], clock: clk, issuer: issuer, key: key, srv: lb, rpSecret: "s3cret-payroll"}
	e.addUser(alice, alicePass)
	e.addClient(storage.Client{ID: payroll, Name: "Acme Payroll", SecretHash: factor.HashToken(e.rpSecret),
		RedirectURIs: []string{rpRedirect}, AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "RS256", FirstParty: true})
	secret := e.enrollTOTP("u-alice")
	cred := `{"id":"AQID","publicKey":"pQECAyYgASFYIA","flags":{"userPresent":true,"userVerified":true,"backupEligible":false},"authenticator":{"signCount":3}}`
	if err := e.store.CreateFactor(ctx, storage.Factor{ID: "key1", UserID: "u-alice", Kind: storage.FactorWebAuthn, Name: "YubiKey", Secret: []byte(cred), CreatedAt: clk.Now(), TrustedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	a := policyService(t, stores[0], key, clk, A.Policies())
	waitFor := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for B.Policies().Current().Version != n {
			if time.Now().After(deadline) {
				t.Fatalf("instance B is at policy version %d, want %d", B.Policies().Current().Version, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	scope := url.Values{"scope": {"openid " + payrollWrite}}
	r := e.rp(payroll, e.rpSecret)

	// Version 1, saved on A: payroll:write needs mfa at the payroll app,
	// which prefers the authenticator app.
	v1 := savePolicy(t, a, clientPolicy(payroll, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: stepup.ACRMultiFactor},
		PreferredFactor: string(stepup.TOTP)}), clk.Now())
	waitFor(v1)

	// A sign-in begins on B under version 1.
	target.Store(1)
	old := e.browser()
	inFlight := r.authURL(scope)
	first := old.get(inFlight.url)

	// Version 2, saved on A: payroll:write needs phr there.
	v2 := savePolicy(t, a, clientPolicy(payroll, policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: stepup.ACRPhishing}}), clk.Now())
	waitFor(v2)

	// The next sign-in on B asks for the passkey: its decision's target is phr.
	clk.Advance(time.Second)
	next := e.browser()
	p := next.signIn(next.get(r.authURL(scope).url), alice, alicePass)
	if !strings.Contains(p.body, "data-passkey") || p.has("/login/otp") {
		t.Fatalf("the sign-in after version %d did not ask for the passkey: %d %s %v\n%.2000s", v2, p.status, p.url, p.redirect, p.body)
	}
	ev := lastEvent(t, stores[1], storage.EventStepupRequested, payroll)
	if ev.Details["target"] != stepup.ACRPhishing || ev.Details["offered"] != string(stepup.WebAuthn) || ev.Details[login.PolicyVersionKey] != "2" {
		t.Fatalf("stepup.requested after the change: %v, want target phr, offered webauthn, policy_version 2", ev.Details)
	}

	// The sign-in that began under version 1 ends under it: mfa, with the
	// code its preference puts first (the passkey would do as well).
	p = old.signIn(first, alice, alicePass)
	if ev := lastEvent(t, stores[1], storage.EventStepupRequested, payroll); ev.Details["target"] != stepup.ACRMultiFactor || ev.Details[login.PolicyVersionKey] != "1" ||
		ev.Details["offered"] != "totp webauthn" {
		t.Fatalf("stepup.requested of the in-flight sign-in: %v, want target mfa, offered totp webauthn, policy_version 1", ev.Details)
	}
	if !p.has("/login/otp") {
		t.Fatalf("the sign-in in flight was not decided under version %d: %d %s\n%.2000s", v1, p.status, p.url, p.body)
	}
	tok := r.mustExchange(r.code(old.submitCode(p, "/login/otp", e.totp(secret)), inFlight), inFlight)
	if tok.claims.ACR != stepup.ACRMultiFactor {
		t.Fatalf("in-flight sign-in: acr %q, want mfa", tok.claims.ACR)
	}
	if got, _ := tok.token.Extra("scope").(string); !strings.Contains(got, payrollWrite) {
		t.Errorf("token scope %q lacks %s", got, payrollWrite)
	}
	done1 := lastEvent(t, stores[1], storage.EventLoginCompleted, payroll)
	if done1.Details[login.PolicyVersionKey] != "1" || done1.Details["target"] != stepup.ACRMultiFactor {
		t.Fatalf("login.completed of the in-flight sign-in: %v, want policy_version 1, target mfa", done1.Details)
	}
}

// A scope beyond the standard ones reaches the decision and the token only
// at a client whose policy (or the server's) names a minimum for it;
// elsewhere it is dropped, as every unknown scope is.
func TestPolicyScopesReachTheirClientOnly(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "payroll", Name: "Acme Payroll", RedirectURIs: []string{rpRedirect}, AuthMethod: "none", Public: true,
		GrantTypes: []string{"authorization_code"}, IDTokenAlg: "RS256", FirstParty: true})
	a := policyService(t, e.store, e.key, e.clock, e.server.Policies())
	savePolicy(t, a, clientPolicy("payroll", policy.ClientPolicy{ScopeMinACR: map[string]string{payrollWrite: stepup.ACRMultiFactor}}), e.clock.Now())
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), url.Values{"scope": {"openid " + payrollWrite}})
	if got, _ := tok.token.Extra("scope").(string); got != "openid" {
		t.Fatalf("scope at a client whose policy does not name %s: %q, want openid", payrollWrite, got)
	}
	ev := lastEvent(t, e.store, storage.EventLoginCompleted, rpClient)
	if ev.Details["target"] != acrSFA || ev.Details[login.PolicyVersionKey] != "1" {
		t.Fatalf("login.completed %v, want target sfa under version 1", ev.Details)
	}
}
