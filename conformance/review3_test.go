package conformance

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// Issue 16 review: what "parse once" must not change.

// A client's minimum raised while a sign-in is under way applies to it:
// before issue 16 the login read the client's floor when it decided, and
// DESIGN §3.3 says nothing lowers the target. Storing the floor at
// /authorize must not let a request started a moment before the change
// finish below the new floor (an administrator raising a client's level
// in response to an incident expects it to hold from then on).
func TestReview3ClientFloorRaisedMidSignInApplies(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	p := b.get(a.url) // the password page: the request is stored

	ctx := context.Background()
	c, err := e.store.ClientByID(ctx, rpClient)
	if err != nil {
		t.Fatal(err)
	}
	c.MinACR = acrMFA
	if err := e.store.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // past the client cache (clientCacheTTL, real time)

	p = b.signIn(p, alice, alicePass)
	if p.redirect != nil {
		q := p.redirect.Query()
		if q.Get("code") != "" {
			tok := r.mustExchange(q.Get("code"), a)
			t.Fatalf("a code at acr %q after the client's floor was raised to %s", tok.claims.ACR, acrMFA)
		}
		t.Fatalf("redirected with %q, want the code page", q.Get("error"))
	}
	if !p.has("/login/otp") {
		t.Fatalf("want the authenticator-app step, got %d:\n%.1500s", p.status, p.body)
	}
}

// What held: the request's acr is read from one parsed form wherever its
// parts come from, and a drifted or someone else's session answers
// prompt=none with login_required.
func TestReview3RequestPartsAndSessionsThatHeld(t *testing.T) {
	e := newEnv(t, behindProxy)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	home := e.browser().from("198.51.100.10")
	r.login(home, nil) // an sfa session

	// post sends an authorization request as a form POST, with some
	// parameters in the query.
	post := func(b *browser, a authRequest, body url.Values, keep bool) page {
		u, _ := url.Parse(a.url)
		q := u.Query()
		for k := range body {
			if !keep {
				q.Del(k)
			}
		}
		u.RawQuery = q.Encode()
		req, _ := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(body.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return b.do(req)
	}
	essentialMFA := `{"id_token":{"acr":{"essential":true,"values":["` + acrMFA + `"]}}}`

	t.Run("claims in a POST body are enforced", func(t *testing.T) {
		a := r.authURL(nil)
		p := post(home, a, url.Values{"claims": {essentialMFA}}, false)
		if p.redirect != nil || !p.has("/login/otp") {
			t.Fatalf("want the code step, got %d %v", p.status, p.redirect)
		}
	})
	t.Run("claims in the body and a lower acr_values in the query: the essential claim wins", func(t *testing.T) {
		a := r.authURL(url.Values{"acr_values": {acrSFA}})
		p := post(home, a, url.Values{"claims": {essentialMFA}}, false)
		if p.redirect != nil || !p.has("/login/otp") {
			t.Fatalf("want the code step, got %d %v", p.status, p.redirect)
		}
	})
	t.Run("claims both in the query and the body are refused", func(t *testing.T) {
		a := r.authURL(url.Values{"claims": {`{"id_token":{"acr":{"values":["` + acrSFA + `"]}}}`}})
		p := post(home, a, url.Values{"claims": {essentialMFA}}, true)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "more than once") {
			t.Fatalf("want a refusal page for two claims, got %d %v", p.status, p.redirect)
		}
	})
	t.Run("prompt=none with a drifted session", func(t *testing.T) {
		thief := e.browser().from("203.0.113.77")
		thief.ua = "curl/8.0"
		rvSteal(t, e, home, thief)
		a := r.authURL(url.Values{"prompt": {"none"}})
		if got := r.rpError(thief.get(a.url), a); got != "login_required" {
			t.Fatalf("error %q", got)
		}
	})
	t.Run("prompt=none with an id_token_hint of another user", func(t *testing.T) {
		bob := e.addUser("bob", "bob's long enough passphrase")
		bb := e.browser().from("198.51.100.10")
		a := r.authURL(nil)
		p := bb.signIn(bb.get(a.url), "bob", "bob's long enough passphrase")
		if p.has("/login/consent") {
			p = bb.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
		}
		tok := r.mustExchange(r.code(p, a), a)
		if tok.claims.Sub != bob.ID {
			t.Fatalf("sub %q", tok.claims.Sub)
		}
		raw, _ := tok.token.Extra("id_token").(string)
		a = r.authURL(url.Values{"prompt": {"none"}, "id_token_hint": {raw}})
		if got := r.rpError(home.get(a.url), a); got != "login_required" {
			t.Fatalf("alice's session answered a request for bob: %q", got)
		}
	})
}

// DESIGN §3.3: every change to a person's factors is shown in the portal's
// activity. The portal reads the newest 200 events and shows those it has
// words for, so whoever holds one of the user's refresh tokens (or signs
// in to an app, with token.issued rows) can push a factor change out of
// view with 200 silent token grants after making it.
func TestReview3TokenGrantsCannotHideAFactorChangeFromTheActivity(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil) // the attacker's app session, with a refresh token

	b := e.browser()
	b.portalLogin()
	p := b.submitCode(b.get(e.issuer+"/account/totp"), "/login/otp", e.totp(secret))
	if !secretRE.MatchString(p.body) {
		t.Fatalf("no enrollment page after step-up:\n%.2000s", p.body)
	}
	b.post("/account/totp/delete", url.Values{"factor": {"f-u-alice"}})
	if home := b.get(e.issuer + "/account"); !strings.Contains(home.body, "Removed a way to sign in") {
		t.Fatal("activity does not show the removal before any grant")
	}

	rt := tok.token.RefreshToken
	for i := range 201 {
		next, err := r.refresh(rt)
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		rt = next.token.RefreshToken
	}
	if home := b.get(e.issuer + "/account"); !strings.Contains(home.body, "Removed a way to sign in") {
		t.Fatal("201 refresh grants pushed the factor removal out of the portal's activity")
	}
}

// DESIGN §3.3: a phishable session cannot mint phishing resistance. A
// passkey added from a session below phr counts as mfa until it has
// cooled off and been used from a known place, or an administrator
// confirms it. With a console below phr (admin.acr mfa), an administrator
// whose password and code were relayed could add the relaying party's
// passkey in the portal and confirm it in the console herself: the
// confirmation must come from another administrator (the console already
// says so to an admin whose own key is pending, adminPending).
func TestReview3AnAdminCannotConfirmHerOwnPasskey(t *testing.T) {
	e, secret := adminEnv(t, onLocalhost)
	ctx := context.Background()
	pending := storage.Factor{ID: "k-ada", UserID: adaID, Kind: storage.FactorWebAuthn, Name: "relayed key", Secret: []byte(`{}`), CreatedAt: e.clock.Now()}
	b := e.browser()
	b.adminLogin(secret)
	if err := e.store.CreateFactor(ctx, pending); err != nil { // as the portal adds it from this mfa session
		t.Fatal(err)
	}
	b.post("/admin/users/"+adaID+"/confirm-passkey", url.Values{"factor": {pending.ID}, "reason": {"mine"}})
	f, err := e.store.FactorByID(ctx, pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !f.TrustedAt.IsZero() {
		t.Fatal("an administrator at mfa confirmed her own passkey: it now counts as phishing-resistant")
	}
}
