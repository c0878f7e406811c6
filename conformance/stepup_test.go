package conformance

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

const (
	acrSFA = "urn:keystep:acr:sfa"
	acrMFA = "urn:keystep:acr:mfa"
	papeMF = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
)

// enrollTOTP gives the user an authenticator app directly in storage, the
// way the portal stores it, and returns its secret.
func (e *env) enrollTOTP(userID string) string {
	e.t.Helper()
	key, err := factor.NewTOTPKey("Keystep", userID)
	if err != nil {
		e.t.Fatal(err)
	}
	sealer, err := factor.NewSealer(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	f := storage.Factor{ID: "f-" + userID, UserID: userID, Kind: "totp", Name: "Phone", Secret: sealer.Seal([]byte(key.Secret), []byte("totp:"+userID)), CreatedAt: e.clock.Now()}
	if err := e.store.CreateFactor(context.Background(), f); err != nil {
		e.t.Fatal(err)
	}
	return key.Secret
}

func (e *env) recoveryCodes(userID string) []string {
	e.t.Helper()
	codes, err := factor.NewRecoveryCodes(10)
	if err != nil {
		e.t.Fatal(err)
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = e.recoveryHash(userID, c)
	}
	if err := e.store.ReplaceRecoveryCodes(context.Background(), userID, hashes, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	return codes
}

// recoveryHash is the stored form of a user's recovery code, as the portal
// stores it.
func (e *env) recoveryHash(userID, code string) string {
	e.t.Helper()
	sealer, err := factor.NewSealer(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	return factor.RecoveryCodeMAC(sealer, userID, code)
}

func (e *env) totp(secret string) string {
	e.t.Helper()
	c, err := factor.TOTPCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (b *browser) submitCode(p page, action, code string) page {
	b.e.t.Helper()
	if !p.has(action) {
		b.e.t.Fatalf("expected a form posting to %s, got %d at %s:\n%.3000s", action, p.status, p.url, p.body)
	}
	return b.post(action, url.Values{"id": {p.hidden("id")}, "code": {code}})
}

// Password session at sfa; the RP asks for mfa; only the code is asked.
func TestStepUpAsksOnlyTheMissingFactor(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	first := r.login(b, nil)
	if first.claims.ACR != acrSFA {
		t.Fatalf("first acr %s", first.claims.ACR)
	}

	e.clock.Advance(30 * time.Second)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := b.get(a.url)
	if p.has("/login/password") || strings.Contains(p.body, `type="password"`) {
		t.Fatal("step-up asked for the password again while it was fresh")
	}
	if !strings.Contains(p.body, "Acme Payroll needs you to confirm") {
		t.Fatalf("the page does not say who asks:\n%s", p.body)
	}
	tok := r.mustExchange(r.code(b.submitCode(p, "/login/otp", e.totp(secret)), a), a)
	c := tok.claims
	if c.ACR != acrMFA || c.Sub != first.claims.Sub {
		t.Fatalf("acr %q sub %q", c.ACR, c.Sub)
	}
	for _, m := range []string{"pwd", "otp", "mfa"} {
		if !slices.Contains(c.AMR, m) {
			t.Fatalf("amr %v lacks %s", c.AMR, m)
		}
	}
	// auth_time is the earliest factor of the satisfying set: the password.
	if c.AuthTime != first.claims.AuthTime {
		t.Fatalf("auth_time %d, want the password's %d", c.AuthTime, first.claims.AuthTime)
	}
	// The session now holds mfa: another app asking for mfa needs nothing.
	a = r.authURL(url.Values{"acr_values": {papeMF}})
	tok = r.mustExchange(r.code(b.get(a.url), a), a)
	if tok.claims.ACR != papeMF {
		t.Fatalf("alias request answered with %q, want the alias as sent", tok.claims.ACR)
	}
}

// A wrong code is refused with a plain message; five end the request.
func TestWrongCodesAreLimitedPerChallenge(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := b.get(a.url)
	for i := range 4 {
		p = b.submitCode(p, "/login/otp", "000000")
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "That code didn") {
			t.Fatalf("attempt %d: %d", i, p.status)
		}
	}
	p = b.submitCode(p, "/login/otp", "000000")
	if got := r.rpError(p, a); got != "access_denied" {
		t.Fatalf("after five wrong codes: %q", got)
	}
}

// Essential acr the user cannot reach → unmet_authentication_requirements.
func TestEssentialUnreachableIsUnmet(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	a := r.authURL(url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["phr"]}}}`}})
	if got := r.rpError(b.goBack(b.get(a.url)), a); got != "unmet_authentication_requirements" {
		t.Fatalf("error %q", got)
	}
	// Same, with the user not yet signed in: the password comes first, then the verdict.
	b2 := e.browser()
	a = r.authURL(url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + acrMFA + `"]}}}`}})
	if got := r.rpError(b2.goBack(b2.signIn(b2.get(a.url), alice, alicePass)), a); got != "unmet_authentication_requirements" {
		t.Fatalf("error %q", got)
	}
}

// Voluntary acr_values the user cannot reach → the session's true acr.
func TestVoluntaryUnreachableGetsTrueACR(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	a := r.authURL(url.Values{"acr_values": {"phr " + acrMFA}})
	tok := r.mustExchange(r.code(b.get(a.url), a), a)
	if tok.claims.ACR != acrSFA {
		t.Fatalf("acr %q, want the true %q", tok.claims.ACR, acrSFA)
	}
}

// A client minimum the user cannot reach is an error even when the RP asked for nothing.
func TestClientMinimumUnreachable(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "bank", Name: "Bank", SecretHash: factor.HashToken("x"), RedirectURIs: []string{rpRedirect},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, MinACR: acrMFA, FirstParty: true})
	r := e.rp("bank", "x")
	b := e.browser()
	a := r.authURL(nil)
	if got := r.rpError(b.goBack(b.signIn(b.get(a.url), alice, alicePass)), a); got != "unmet_authentication_requirements" {
		t.Fatalf("error %q", got)
	}
}

// prompt=none with a lower session → login_required, no page.
func TestPromptNoneWithLowerSession(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	a := r.authURL(url.Values{"prompt": {"none"}, "acr_values": {acrMFA}})
	if got := r.rpError(b.get(a.url), a); got != "login_required" {
		t.Fatalf("error %q", got)
	}
}

// The same TOTP code cannot be used twice, even from another session.
func TestTOTPCodeIsAcceptedOnce(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b1, b2 := e.browser(), e.browser()
	r.login(b1, nil)
	r.login(b2, nil)
	code := e.totp(secret)
	a1 := r.authURL(url.Values{"acr_values": {acrMFA}})
	r.code(b1.submitCode(b1.get(a1.url), "/login/otp", code), a1)
	a2 := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := b2.submitCode(b2.get(a2.url), "/login/otp", code)
	if p.redirect != nil || p.status != http.StatusUnauthorized {
		t.Fatalf("the replayed code was accepted: %+v", p.redirect)
	}
}

// 20 parallel submissions of one recovery code: exactly one succeeds.
func TestRecoveryCodeRace(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	codes := e.recoveryCodes("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	const n = 20
	type attempt struct {
		b *browser
		a authRequest
		p page
	}
	attempts := make([]attempt, n)
	for i := range attempts {
		b := e.browser()
		r.login(b, nil)
		a := r.authURL(url.Values{"acr_values": {acrMFA}, "method": {"recovery"}})
		p := b.get(a.url)
		p = b.get(e.issuer + "/login?method=recovery&id=" + url.QueryEscape(p.hidden("id")))
		attempts[i] = attempt{b: b, a: a, p: p}
	}
	var wg sync.WaitGroup
	results := make([]page, n)
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := attempts[i]
			results[i] = at.b.post("/login/recovery", url.Values{"id": {at.p.hidden("id")}, "code": {codes[0]}})
		}()
	}
	wg.Wait()
	ok := 0
	for _, p := range results {
		if p.redirect != nil && p.redirect.Query().Get("code") != "" {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d parallel uses of one recovery code succeeded", ok, n)
	}
	left, err := e.store.CountRecoveryCodes(context.Background(), "u-alice")
	if err != nil || left != 9 {
		t.Fatalf("left %d %v", left, err)
	}
}

// Recovery codes reach mfa but never phr.
func TestRecoveryCodeGivesMFA(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	codes := e.recoveryCodes("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := b.get(a.url)
	p = b.get(e.issuer + "/login?method=recovery&id=" + url.QueryEscape(p.hidden("id")))
	if !strings.Contains(p.body, "You have 10 unused codes") {
		t.Fatalf("remaining count not shown:\n%s", p.body)
	}
	tok := r.mustExchange(r.code(b.submitCode(p, "/login/recovery", strings.ToUpper(codes[3])), a), a)
	if tok.claims.ACR != acrMFA || !slices.Contains(tok.claims.AMR, "otp") {
		t.Fatalf("claims %+v", tok.claims)
	}
	a = r.authURL(url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["phr"]}}}`}})
	if got := r.rpError(b.goBack(b.get(a.url)), a); got != "unmet_authentication_requirements" {
		t.Fatalf("phr with a recovery code: %q", got)
	}
}

// Jumping straight to the callback while a factor is pending yields no code.
func TestCallbackWhileFactorPending(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := b.get(a.url)
	if !p.has("/login/otp") {
		t.Fatal("no code page")
	}
	cb := b.get(e.issuer + "/authorize/callback?id=" + url.QueryEscape(p.hidden("id")))
	if cb.redirect != nil && cb.redirect.Query().Get("code") != "" {
		t.Fatal("callback issued a code while the second factor was pending")
	}
}

// A refresh token from an sfa grant never returns mfa, even after the
// session stepped up (OIDC Core §12.2, RFC 9470 §6.1).
func TestRefreshNeverRaisesACR(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	low := r.login(b, nil)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	r.mustExchange(r.code(b.submitCode(b.get(a.url), "/login/otp", e.totp(secret)), a), a)
	ref, err := r.refresh(low.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if ref.claims.ACR != acrSFA || slices.Contains(ref.claims.AMR, "otp") {
		t.Fatalf("refreshed claims %+v", ref.claims)
	}
	status, intro, _ := e.postForm("/oauth/introspect", url.Values{"token": {ref.token.AccessToken}}, rpClient, e.rpSecret)
	if status != 200 || intro["acr"] != acrSFA {
		t.Fatalf("introspection of refreshed token: %v", intro)
	}
}

// The session ID rotates whenever the set of completed factors changes.
func TestSessionRotatesOnStepUp(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	r.login(b, nil)
	before := sessionCookie(b, e)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	r.code(b.submitCode(b.get(a.url), "/login/otp", e.totp(secret)), a)
	after := sessionCookie(b, e)
	if before == "" || after == "" || before == after {
		t.Fatalf("session cookie did not rotate: %q → %q", before, after)
	}
	// The old cookie is worth nothing now.
	thief := e.browser()
	u, _ := url.Parse(e.issuer)
	thief.client.Jar.SetCookies(u, []*http.Cookie{{Name: "ks_session", Value: before}})
	if p := thief.get(e.issuer + "/account"); p.redirect == nil && strings.Contains(p.body, "Hello, alice") {
		t.Fatal("the pre-step-up cookie still opens the account")
	}
}

func sessionCookie(b *browser, e *env) string {
	u, _ := url.Parse(e.issuer)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "ks_session" {
			return c.Value
		}
	}
	return ""
}
