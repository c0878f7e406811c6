package conformance

// Issue 17: one row per token family. A refresh rotates the family's row
// in place; a rotated token presented again by the same client within its
// reuse interval is a retry (parallel refreshes, a lost response) and gets
// the same successor; after the interval, or from another client, it is
// reuse and revokes the family. JWT access tokens have no row: userinfo and
// introspection answer from the family they name.

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// famLive reports what userinfo and introspection say of an access token:
// both must agree.
func famLive(t *testing.T, e *env, r *rp, tok tokens) bool {
	t.Helper()
	_, uerr := r.provider.UserInfo(t.Context(), oauthSource(tok))
	status, intro, _ := e.postForm("/oauth/introspect", url.Values{"token": {tok.token.AccessToken}}, rpClient, e.rpSecret)
	if status != http.StatusOK {
		t.Fatalf("introspection: %d %v", status, intro)
	}
	if (uerr == nil) != (intro["active"] == true) {
		t.Fatalf("userinfo (err %v) and introspection (%v) disagree", uerr, intro)
	}
	return uerr == nil
}

// Put in front of an app, oauth2-proxy refreshes once per parallel request
// with the same token. Every one of them gets the same successor, the
// family lives on, and nothing is audited as reuse.
func TestFamilyParallelRefreshesGetTheSameSuccessor(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	e.clock.Advance(time.Hour) // the access token's refresh period is long past

	const n = 6
	got := make([]tokens, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = r.refresh(tok.token.RefreshToken) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("refresh %d of %d parallel ones: %v", i+1, n, err)
		}
		if got[i].token.RefreshToken != got[0].token.RefreshToken {
			t.Fatalf("refresh %d got another successor", i+1)
		}
		if !famLive(t, e, r, got[i]) {
			t.Fatalf("the access token of refresh %d is not active", i+1)
		}
	}
	if got[0].token.RefreshToken == tok.token.RefreshToken {
		t.Fatal("the refresh token was not rotated")
	}
	if _, err := r.refresh(got[0].token.RefreshToken); err != nil {
		t.Fatalf("the successor: %v", err)
	}
	if ev := e.protoAudit(storage.EventTokenRefreshReuse); len(ev) != 0 {
		t.Fatalf("parallel refreshes audited as reuse: %+v", ev)
	}
}

// A response lost on the way (or a crash between the rotation and the
// response): the client presents the old token again and gets the very
// token it missed.
func TestFamilyRetryAfterALostResponseGetsTheSameSuccessor(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	lost, err := r.refresh(tok.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(storage.DefaultRefreshReuseInterval - time.Second)
	again, err := r.refresh(tok.token.RefreshToken)
	if err != nil {
		t.Fatalf("retry within the reuse interval: %v", err)
	}
	if again.token.RefreshToken != lost.token.RefreshToken {
		t.Fatal("the retry got another successor than the lost response")
	}
	if _, err := r.refresh(again.token.RefreshToken); err != nil {
		t.Fatalf("the successor: %v", err)
	}
}

// After the reuse interval a rotated token is reuse (OAuth 2.0 Security
// BCP §4.14.2): the family is revoked, its successor and every access token
// of it with it, and the reuse is audited.
func TestFamilyReplayAfterTheIntervalRevokesTheFamily(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	next, err := r.refresh(tok.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if !famLive(t, e, r, tok) || !famLive(t, e, r, next) {
		t.Fatal("the family's access tokens are not active")
	}
	e.clock.Advance(storage.DefaultRefreshReuseInterval)
	if _, err := r.refresh(tok.token.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("replay after the interval: %v, want invalid_grant", err)
	}
	if _, err := r.refresh(next.token.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("the successor after the replay: %v, want invalid_grant", err)
	}
	for i, at := range []tokens{tok, next} {
		if famLive(t, e, r, at) {
			t.Errorf("access token %d of the revoked family is active", i)
		}
	}
	if ev := e.protoAudit(storage.EventTokenRefreshReuse); len(ev) != 1 || ev[0].UserID != "u-alice" || ev[0].ClientID != rpClient {
		t.Fatalf("reuse audit rows: %+v", ev)
	}
}

// Any older generation is reuse too, not only the one just rotated away.
func TestFamilyAnyOlderGenerationIsReuse(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	first := r.login(e.browser(), nil)
	cur := first
	for range 3 {
		var err error
		if cur, err = r.refresh(cur.token.RefreshToken); err != nil {
			t.Fatal(err)
		}
	}
	// Within the interval of the last rotation, but two generations old.
	if _, err := r.refresh(first.token.RefreshToken); err == nil {
		t.Fatal("generation 0 worked after three rotations")
	}
	if _, err := r.refresh(cur.token.RefreshToken); err == nil {
		t.Fatal("the current token works after an older generation was replayed")
	}
}

// The rotated token presented by another client within the interval is
// not a retry: only the family's own client may retry.
func TestFamilyRetryByAnotherClientIsReuse(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	next, err := r.refresh(tok.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	spa := e.rp(publicClient, "")
	if _, err := spa.refresh(tok.token.RefreshToken); err == nil {
		t.Fatal("another client refreshed with the rotated token")
	}
	if _, err := r.refresh(next.token.RefreshToken); err == nil {
		t.Fatal("the family lives on after another client presented its rotated token")
	}
}

// A client's reuse interval is its own: with none, the first replay is
// reuse.
func TestFamilyReuseIntervalIsPerClient(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "strict-rp", Name: "Strict", SecretHash: factor.HashToken(e.rpSecret),
		RedirectURIs: []string{rpRedirect}, AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "ES256", FirstParty: true,
		RefreshReuseInterval: -1})
	r := e.rp("strict-rp", e.rpSecret)
	tok := r.login(e.browser(), nil)
	next, err := r.refresh(tok.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.refresh(tok.token.RefreshToken); err == nil {
		t.Fatal("a client without a reuse interval retried")
	}
	if _, err := r.refresh(next.token.RefreshToken); err == nil {
		t.Fatal("the family lives on after the replay")
	}
}

// RFC 7009: revoking a JWT access token ends it alone; revoking the refresh
// token ends the family, its access tokens included. Userinfo and
// introspection agree at every step.
func TestFamilyRevocationAtUserinfoAndIntrospection(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	next, err := r.refresh(tok.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if !famLive(t, e, r, tok) { // cached as active now
		t.Fatal("not active before the revocation")
	}
	if status, _, _ := e.postForm("/revoke", url.Values{"token": {tok.token.AccessToken}}, rpClient, e.rpSecret); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if famLive(t, e, r, tok) {
		t.Fatal("the revoked access token is active")
	}
	if !famLive(t, e, r, next) {
		t.Fatal("revoking one access token ended its sibling")
	}
	// Another client cannot revoke it (RFC 7009 §2.1).
	e.postForm("/revoke", url.Values{"token": {next.token.AccessToken}}, publicClient, "")
	if !famLive(t, e, r, next) {
		t.Fatal("another client revoked the access token")
	}
	// The refresh token: the whole family.
	if status, _, _ := e.postForm("/revoke", url.Values{"token": {next.token.RefreshToken}, "token_type_hint": {"refresh_token"}}, rpClient, e.rpSecret); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if famLive(t, e, r, next) {
		t.Fatal("an access token of the revoked family is active")
	}
	if _, err := r.refresh(next.token.RefreshToken); err == nil {
		t.Fatal("the revoked refresh token works")
	}
}

// A client-credentials JWT has no family: it is revoked on its own, by its
// client only.
func TestFamilyClientCredentialsTokenIsRevocable(t *testing.T) {
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
	e.postForm("/revoke", url.Values{"token": {token}}, publicClient, "")
	if !active() {
		t.Fatal("another client revoked it")
	}
	e.postForm("/revoke", url.Values{"token": {token}}, rpClient, e.rpSecret)
	if active() {
		t.Fatal("active after its client revoked it")
	}
}

// Logout (RP-initiated, end_session) ends the browser session and, since
// issue 20, the tokens issued under it at the same moment (the session
// ends everywhere: its apps are sent a back-channel logout); userinfo,
// introspection and refresh agree after it.
func TestFamilyLogoutEndsTheSessionAndItsTokens(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	tok := r.login(b, nil)
	if !famLive(t, e, r, tok) {
		t.Fatal("not active before the logout")
	}
	end := e.issuer + "/end_session?" + url.Values{"id_token_hint": {tok.token.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpLogout}}.Encode()
	if p := b.get(end); p.redirect == nil {
		t.Fatalf("logout: %d", p.status)
	}
	ssSignedOut(t, r, b)
	if famLive(t, e, r, tok) {
		t.Fatal("the access token outlived the browser session")
	}
	if _, err := r.refresh(tok.token.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("refresh after logout: %v, want invalid_grant", err)
	}
}

// A code exchange without offline_access gets no refresh token, but its
// JWT access token still has a family, so a replayed code ends it
// (RFC 6749 §4.1.2).
func TestFamilyCodeReplayEndsAnAccessTokenWithoutRefresh(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	r.oauth.Scopes = []string{"openid"}
	b := e.browser()
	a := r.authURL(nil)
	code := r.code(b.signIn(b.get(a.url), alice, alicePass), a)
	tok := r.mustExchange(code, a)
	if tok.token.RefreshToken != "" {
		t.Fatal("a refresh token without offline_access")
	}
	if !famLive(t, e, r, tok) {
		t.Fatal("not active")
	}
	if _, err := r.exchange(code, a); err == nil {
		t.Fatal("the code was redeemed twice")
	}
	if famLive(t, e, r, tok) {
		t.Fatal("active after its code was replayed")
	}
}

// Refresh tokens issued before families keep working: the first refresh
// upgrades one into a family, and presenting it again after the interval
// is reuse that ends the family it became.
func TestFamilyRefreshTokenFromBeforeFamiliesKeepsWorking(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	now := e.clock.Now()
	old, err := factor.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	id := factor.HashToken(old)
	g := storage.Grant{GrantID: "ar-old", ClientID: rpClient, Subject: "u-alice", Scopes: []string{"openid", "profile", "offline_access"},
		Audience: []string{rpClient}, ACR: "urn:keystep:acr:sfa", AMR: []string{"pwd"}, AuthTime: now.Add(-time.Hour), SessionID: "sid-old"}
	if err := e.store.CreateRefreshToken(context.Background(), storage.RefreshToken{ID: id, FamilyID: id, Grant: g, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	next, err := r.refresh(old)
	if err != nil {
		t.Fatalf("a refresh token from before families: %v", err)
	}
	if next.claims.ACR != g.ACR || next.claims.SID != g.SessionID || next.claims.AuthTime != g.AuthTime.Unix() {
		t.Fatalf("refreshed claims %+v, want the grant's", next.claims)
	}
	again, err := r.refresh(old) // a retry within the interval
	if err != nil || again.token.RefreshToken != next.token.RefreshToken {
		t.Fatalf("retry of the upgrade: %v", err)
	}
	e.clock.Advance(storage.DefaultRefreshReuseInterval)
	if _, err := r.refresh(old); err == nil {
		t.Fatal("the upgraded token worked after the interval")
	}
	if _, err := r.refresh(next.token.RefreshToken); err == nil {
		t.Fatal("the family it became lives on after the reuse")
	}
}

// Refreshing an existing family writes no row: one family row, no access
// token rows, however many refreshes.
func TestFamilyRefreshesDoNotGrowTheDatabase(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	cur := r.login(e.browser(), nil)
	for i := range 20 {
		var err error
		if cur, err = r.refresh(cur.token.RefreshToken); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dbDir, "keystep.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for table, want := range map[string]int{"refresh_families": 1, "refresh_tokens": 0, "access_tokens": 0} {
		var n int
		if err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM %s", table)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s has %d rows after 20 refreshes, want %d", table, n, want)
		}
	}
}

// Of a chain of refresh tokens from before families, only the token that
// was upgraded is the family's generation 0: an older one, rotated before
// the upgrade, is reuse even within the interval.
func TestFamilyOlderTokenOfAPreFamilyChainIsReuse(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	ctx := context.Background()
	now := e.clock.Now()
	g := storage.Grant{GrantID: "ar-old", ClientID: rpClient, Subject: "u-alice", Scopes: []string{"openid", "offline_access"},
		Audience: []string{rpClient}, ACR: "urn:keystep:acr:sfa", AMR: []string{"pwd"}, AuthTime: now, SessionID: "sid-old"}
	older, _ := factor.NewToken()
	current, _ := factor.NewToken()
	family := factor.HashToken(older)
	// The chain as the old code left it: older rotated into current.
	for _, rt := range []storage.RefreshToken{
		{ID: family, FamilyID: family, Grant: g, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour), UsedAt: now.Add(-time.Minute)},
		{ID: factor.HashToken(current), FamilyID: family, Grant: g, CreatedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)},
	} {
		if err := e.store.CreateRefreshToken(ctx, rt, nil); err != nil {
			t.Fatal(err)
		}
	}
	next, err := r.refresh(current)
	if err != nil {
		t.Fatalf("the current token of the chain: %v", err)
	}
	if _, err := r.refresh(older); err == nil {
		t.Fatal("an older token of the chain passed as a retry")
	}
	if _, err := r.refresh(next.token.RefreshToken); err == nil {
		t.Fatal("the family lives on after an older token of its chain was replayed")
	}
}

// Refreshes are summarised in the audit log: the family's first refresh
// writes a token.issued row, later ones within the hour none, and the first
// after it one row that counts every refresh since (issue 17: refreshing
// does not grow the database). A new family, a reuse and a revocation are
// logged as they happen.
func TestFamilyRefreshesAreSummarisedInTheAuditLog(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	rt := r.login(e.browser(), nil).token.RefreshToken
	// By hand rather than through the RP library: its ID token check runs
	// on the test clock, the library stamps exp from the wall clock.
	own := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}
	refresh := func(n int) {
		t.Helper()
		for i := range n {
			status, out := e.protoCall("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, own)
			next, _ := out["refresh_token"].(string)
			if status != 200 || next == "" {
				t.Fatalf("refresh %d: %d %v", i, status, out)
			}
			rt = next
			e.clock.Advance(time.Minute)
		}
	}
	refreshRows := func() []storage.AuditEvent {
		var out []storage.AuditEvent
		for _, ev := range e.protoAudit(storage.EventTokenIssued) {
			if ev.Details["grant_type"] == "refresh_token" {
				out = append(out, ev)
			}
		}
		return out
	}
	refresh(30)
	rows := refreshRows()
	if len(rows) != 1 || rows[0].Details["refreshes"] != "1" || rows[0].Details["family_generation"] != "1" {
		t.Fatalf("after 30 refreshes in half an hour: %d rows %+v, want one for the first", len(rows), rows)
	}
	e.clock.Advance(time.Hour)
	refresh(1)
	rows = refreshRows()
	if len(rows) != 2 || rows[1].Details["refreshes"] != "30" || rows[1].Details["family_generation"] != "31" {
		t.Fatalf("the first refresh after an hour: %d rows %+v, want a second one counting 30", len(rows), rows)
	}
	if rows[1].UserID != "u-alice" || rows[1].ClientID != rpClient || rows[1].Details["acr"] == "" {
		t.Errorf("summary row %+v, want the user, client and acr", rows[1])
	}
}
