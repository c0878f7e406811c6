package conformance

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/postgres"
)

// pgSchema makes an empty schema on the server named by
// KEYSTEP_TEST_POSTGRES and returns a DSN that uses it. Without a server
// the test skips locally and fails under CI (.ci/run starts one).
func pgSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("KEYSTEP_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KEYSTEP_TEST_POSTGRES is not set; CI must run the two-instance test")
		}
		t.Skip("KEYSTEP_TEST_POSTGRES is not set")
	}
	name := "keystep_multi_" + strings.ToLower(rand.Text())
	exec := func(sql string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE SCHEMA " + name)
	t.Cleanup(func() { exec("DROP SCHEMA " + name + " CASCADE") })
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + name
}

// Two Keystep instances on one PostgreSQL behind one load balancer: every
// piece of state is shared (issue 10).
func TestTwoInstancesOnPostgreSQL(t *testing.T) {
	dsn := pgSchema(t)
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	clk := newClock()

	var target atomic.Int32 // which instance the balancer sends to
	var instances [2]http.Handler
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		instances[target.Load()].ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)
	var stores [2]storage.Store
	for i := range 2 {
		st, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores[i] = st
		srv, err := idp.NewServer(ctx, idp.Config{
			Issuer: lb.URL, Store: st, MasterKey: key, Policy: stepup.DefaultPolicy(),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.Now, Hasher: factor.NewTestPasswordHasher(),
		})
		if err != nil {
			t.Fatal(err)
		}
		instances[i] = srv
	}
	// Direct lines to each instance, for the race below.
	direct := [2]*httptest.Server{httptest.NewServer(instances[0]), httptest.NewServer(instances[1])}
	for _, d := range direct {
		t.Cleanup(d.Close)
	}

	e := &env{t: t, store: stores[0], clock: clk, issuer: lb.URL, key: key, srv: lb, rpSecret: "s3cret-multi"}
	e.addUser(alice, alicePass)
	e.addClient(storage.Client{ID: rpClient, Name: "Acme Payroll", SecretHash: factor.HashToken(e.rpSecret),
		RedirectURIs: []string{rpRedirect}, AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "RS256", FirstParty: true})
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)

	// Sign in on A, step up on B, refresh on A.
	b := e.browser()
	target.Store(0)
	low := r.login(b, nil)
	target.Store(1)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := b.get(a.url)
	if !p.has("/login/otp") {
		t.Fatalf("instance B did not see the session from A: %d", p.status)
	}
	high := r.mustExchange(r.code(b.submitCode(p, "/login/otp", e.totp(secret)), a), a)
	if high.claims.ACR != acrMFA || high.claims.Sub != low.claims.Sub {
		t.Fatalf("step-up on B: %+v", high.claims)
	}
	target.Store(0)
	ref, err := r.refresh(high.token.RefreshToken)
	if err != nil || ref.claims.ACR != acrMFA {
		t.Fatalf("refresh on A: %v %+v", err, ref.claims)
	}

	// One code redeemed at both at once: one success.
	e.clock.Advance(time.Second)
	a = r.authURL(url.Values{"prompt": {"login"}})
	code := r.code(b.signIn(b.get(a.url), alice, alicePass), a)
	var wg sync.WaitGroup
	var ok atomic.Int32
	for _, d := range direct {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {a.verifier}}
			req, _ := http.NewRequest(http.MethodPost, d.URL+"/oauth/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(rpClient, e.rpSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("the code was redeemed %d times across two instances", ok.Load())
	}

	// Throttling counts failures from both instances.
	attacker := e.browser().from("203.0.113.66")
	id := attacker.get(r.authURL(nil).url).hidden("id")
	for i := range 5 {
		target.Store(int32(i % 2))
		if p := attacker.wrongPassword(id, alice); p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, p.status)
		}
	}
	for i := range 2 {
		target.Store(int32(i))
		if p := attacker.wrongPassword(id, alice); p.status != http.StatusTooManyRequests {
			t.Fatalf("instance %d let a 6th guess through: %d", i, p.status)
		}
	}

	// A JWT access token has no row: each instance answers from its
	// family, caching the answer for at most two seconds (README,
	// "Refresh tokens"). A revocation on A is seen on A at once and on B
	// within that bound.
	tok := ref // the family refreshed on A above
	active := func(i int) bool {
		form := url.Values{"token": {tok.token.AccessToken}}
		req, _ := http.NewRequest(http.MethodPost, direct[i].URL+"/oauth/introspect", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rpClient, e.rpSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out["active"] == true
	}
	if !active(1) || !active(0) {
		t.Fatal("the access token is not active")
	}
	form := url.Values{"token": {tok.token.RefreshToken}}
	req, _ := http.NewRequest(http.MethodPost, direct[0].URL+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rpClient, e.rpSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke on A: %v %v", resp, err)
	}
	if active(0) {
		t.Fatal("A says active after its own revocation")
	}
	time.Sleep(2*time.Second + 200*time.Millisecond)
	if active(1) {
		t.Fatal("B says active after the stated bound")
	}

	// The audit chain, written by both, verifies.
	events, err := stores[1].ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := storage.NewAuditKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.VerifyAuditChain(auditKey, events); err != nil || len(events) < 10 {
		t.Fatalf("%d events: %v", len(events), err)
	}
}
