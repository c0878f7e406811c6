package conformance

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/storage"
)

// The whole core flow of issue 2 with an independent RP library.
func TestCodeFlowWithPKCEAndEverythingAfter(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()

	tok := r.login(b, nil)
	c := tok.claims
	if c.Sub != "u-alice" || c.ACR != "urn:keystep:acr:sfa" || !slices.Equal(c.AMR, []string{"pwd"}) {
		t.Fatalf("claims = %+v", c)
	}
	if c.AuthTime != e.clock.Now().Unix() || c.SID == "" {
		t.Fatalf("auth_time %d (want %d), sid %q", c.AuthTime, e.clock.Now().Unix(), c.SID)
	}

	// Userinfo.
	ui, err := r.provider.UserInfo(t.Context(), oauthSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	if ui.Subject != "u-alice" {
		t.Fatalf("userinfo sub = %q", ui.Subject)
	}

	// Introspection carries acr and auth_time (RFC 9470 §6.2).
	status, intro, _ := e.postForm("/oauth/introspect", url.Values{"token": {tok.token.AccessToken}}, rpClient, e.rpSecret)
	if status != 200 || intro["active"] != true || intro["acr"] != "urn:keystep:acr:sfa" || int64(intro["auth_time"].(float64)) != c.AuthTime {
		t.Fatalf("introspection %d %v", status, intro)
	}

	// Refresh rotates: new tokens keep acr/amr/auth_time; the old refresh
	// token is then refused and its whole family is revoked.
	e.clock.Advance(time.Minute)
	first := tok.token.RefreshToken
	ref, err := r.refresh(first)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(idClaims{Sub: c.Sub, ACR: c.ACR, AMR: c.AMR, AuthTime: c.AuthTime, SID: c.SID}, ref.claims); diff != "" {
		t.Fatalf("refreshed claims (-want +got):\n%s", diff)
	}
	if ref.token.RefreshToken == first || ref.token.RefreshToken == "" {
		t.Fatal("refresh token was not rotated")
	}
	// Past the client's reuse interval (within it, the same client gets the
	// same successor: a retry, not reuse).
	e.clock.Advance(storage.DefaultRefreshReuseInterval)
	if _, err := r.refresh(first); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("reused refresh token: err = %v, want invalid_grant", err)
	}
	if _, err := r.refresh(ref.token.RefreshToken); err == nil {
		t.Fatal("the rotated-to token still works after its family was revoked")
	}
	if _, err := r.provider.UserInfo(t.Context(), oauthSource(ref)); err == nil {
		t.Fatal("the family's access token still works after reuse detection")
	}

	// Revocation (RFC 7009) of a fresh login's access token.
	tok2 := r.login(e.browser(), nil)
	status, _, _ = e.postForm("/revoke", url.Values{"token": {tok2.token.AccessToken}}, rpClient, e.rpSecret)
	if status != 200 {
		t.Fatalf("revoke status %d", status)
	}
	if _, err := r.provider.UserInfo(t.Context(), oauthSource(tok2)); err == nil {
		t.Fatal("revoked access token still accepted by userinfo")
	}

	// RP-initiated logout with an exact post_logout_redirect_uri.
	end := e.issuer + "/end_session?" + url.Values{"id_token_hint": {tok.token.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpLogout}, "state": {"bye"}}.Encode()
	p := b.get(end)
	if p.redirect == nil || p.redirect.String() != rpLogout+"?state=bye" {
		t.Fatalf("logout ended at %+v", p)
	}
	// The session is gone: prompt=none now gets login_required.
	a := r.authURL(url.Values{"prompt": {"none"}})
	if got := r.rpError(b.get(a.url), a); got != "login_required" {
		t.Fatalf("prompt=none after logout: %q", got)
	}
}

func oauthSource(t tokens) oauth2TokenSource { return oauth2TokenSource{t.token.AccessToken} }

// oidcc-prompt-none-not-logged-in
func TestPromptNoneNotLoggedIn(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(url.Values{"prompt": {"none"}})
	p := b.get(a.url)
	if got := r.rpError(p, a); got != "login_required" {
		t.Fatalf("error = %q", got)
	}
}

// oidcc-prompt-none-logged-in
func TestPromptNoneLoggedIn(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	first := r.login(b, nil)
	e.clock.Advance(5 * time.Second)
	a := r.authURL(url.Values{"prompt": {"none"}})
	tok := r.mustExchange(r.code(b.get(a.url), a), a)
	if tok.claims.AuthTime != first.claims.AuthTime {
		t.Fatalf("silent login changed auth_time %d → %d", first.claims.AuthTime, tok.claims.AuthTime)
	}
}

// oidcc-prompt-login: the user must sign in again and auth_time moves.
func TestPromptLoginGivesLaterAuthTime(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	first := r.login(b, nil)
	e.clock.Advance(2 * time.Second)
	a := r.authURL(url.Values{"prompt": {"login"}})
	p := b.get(a.url)
	if !p.has("/login/password") {
		t.Fatalf("prompt=login did not ask for the password again: %d %s", p.status, p.body)
	}
	tok := r.mustExchange(r.code(b.signIn(p, alice, alicePass), a), a)
	if tok.claims.AuthTime <= first.claims.AuthTime {
		t.Fatalf("auth_time %d not after %d", tok.claims.AuthTime, first.claims.AuthTime)
	}
}

// oidcc-max-age-1: after more than max_age seconds the user signs in again.
func TestMaxAge1(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	first := r.login(b, nil)
	e.clock.Advance(2 * time.Second)
	a := r.authURL(url.Values{"max_age": {"1"}})
	p := b.get(a.url)
	if !p.has("/login/password") {
		t.Fatalf("max_age=1 did not ask again: %d", p.status)
	}
	tok := r.mustExchange(r.code(b.signIn(p, alice, alicePass), a), a)
	if tok.claims.AuthTime <= first.claims.AuthTime {
		t.Fatalf("auth_time %d not after %d", tok.claims.AuthTime, first.claims.AuthTime)
	}
}

// oidcc-max-age-10000: a recent session is reused and auth_time is present.
func TestMaxAge10000(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	first := r.login(b, nil)
	a := r.authURL(url.Values{"max_age": {"10000"}})
	tok := r.mustExchange(r.code(b.get(a.url), a), a)
	if tok.claims.AuthTime != first.claims.AuthTime || tok.claims.AuthTime == 0 {
		t.Fatalf("auth_time %d, want %d", tok.claims.AuthTime, first.claims.AuthTime)
	}
}

// oidcc-codereuse: the second redemption fails and revokes the first's tokens.
func TestCodeReuseRevokesTokens(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	code := r.code(b.signIn(b.get(a.url), alice, alicePass), a)
	if len(code) < 22 {
		t.Fatalf("code %q is too short for 128 bits", code)
	}
	tok := r.mustExchange(code, a)
	if _, err := r.exchange(code, a); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("second exchange: %v", err)
	}
	if _, err := r.provider.UserInfo(t.Context(), oauthSource(tok)); err == nil {
		t.Fatal("access token from a replayed code still works")
	}
	if _, err := r.refresh(tok.token.RefreshToken); err == nil {
		t.Fatal("refresh token from a replayed code still works")
	}
}

// A public client must use PKCE; the token call without a verifier fails.
func TestPublicClientNeedsPKCE(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	q := url.Values{"client_id": {publicClient}, "redirect_uri": {rpRedirect}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st"}}
	p := b.get(e.issuer + "/authorize?" + q.Encode())
	if p.redirect == nil || p.redirect.Query().Get("error") != "invalid_request" {
		t.Fatalf("no PKCE: %+v", p)
	}
	// With S256 it works, and the ID token is signed with the client's ES256.
	r := e.rp(publicClient, "")
	tok := r.login(e.browser(), nil)
	if tok.claims.Sub != "u-alice" {
		t.Fatal("no login")
	}
	if alg := jwtAlg(t, tok.token.Extra("id_token").(string)); alg != "ES256" {
		t.Fatalf("ID token alg %s, want the client's ES256", alg)
	}
	if alg := jwtAlg(t, tok.token.AccessToken); alg != "ES256" {
		t.Fatalf("access token alg %s, want ES256", alg)
	}
}

// The confidential client registered RS256: its ID tokens use it (OIDC Core §15.1).
func TestIDTokenAlgorithmPerClient(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	if alg := jwtAlg(t, tok.token.Extra("id_token").(string)); alg != "RS256" {
		t.Fatalf("ID token alg %s, want RS256", alg)
	}
	if alg := jwtAlg(t, tok.token.AccessToken); alg != "ES256" {
		t.Fatalf("JWT access token alg %s, want ES256", alg)
	}
}

func TestTokenResponseIsNotCached(t *testing.T) {
	e := newEnv(t)
	_, _, h := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rpClient, e.rpSecret)
	if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
		t.Fatalf("headers %v", h)
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rpClient, e.rpSecret)
	if status != 200 || out["access_token"] == nil {
		t.Fatalf("%d %v", status, out)
	}
	status, out, _ = e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rpClient, "wrong")
	if status < 400 || out["error"] != "invalid_client" {
		t.Fatalf("wrong secret: %d %v", status, out)
	}
}

func TestUserinfoChallengeOn401(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer not-a-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// Third-party clients get a consent page once; the choice is remembered,
// and "Don't allow" ends the request with access_denied.
func TestConsentForThirdPartyClients(t *testing.T) {
	e := newEnv(t)
	r := e.rp(publicClient, "")
	b := e.browser()
	a := r.authURL(nil)
	p := b.signIn(b.get(a.url), alice, alicePass)
	if !p.has("/login/consent") {
		t.Fatalf("no consent page for a third-party client: %d", p.status)
	}
	deny := b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"deny"}})
	if got := r.rpError(deny, a); got != "access_denied" {
		t.Fatalf("deny gave %q", got)
	}
	a = r.authURL(nil)
	p = b.get(a.url)
	p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	r.mustExchange(r.code(p, a), a)
	// Remembered: the next request goes straight through.
	a = r.authURL(nil)
	r.mustExchange(r.code(b.get(a.url), a), a)
	// prompt=none with consent needed would be consent_required; with
	// prompt=consent the page shows again.
	a = r.authURL(url.Values{"prompt": {"consent"}})
	if p := b.get(a.url); !p.has("/login/consent") {
		t.Fatal("prompt=consent did not show the consent page")
	}
}
