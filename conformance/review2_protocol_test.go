package conformance

// Issue 15, the protocol surface: the browser binding at
// /authorize/callback, PKCE at the token endpoint, who may introspect a
// token and how clients authenticate, loopback redirect URIs of native
// apps, and the audit rows a grant writes. Helpers are prefixed "proto".

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// ---- helpers ----

// protoAuth is how a test client authenticates at the token, introspection
// and revocation endpoints.
type protoAuth struct {
	id     string
	method string // "basic", "post", "jwt" or "none"
	secret string
	key    *ecdsa.PrivateKey // for "jwt"
	// assertion, when set, is sent as is instead of a fresh one (replays).
	assertion string
}

// protoAssertion signs a fresh private_key_jwt client assertion (RFC 7523 §3).
func (e *env) protoAssertion(id string, key *ecdsa.PrivateKey) string {
	e.t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{e.issuer},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: randomString()}).Serialize()
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// protoJWTClient registers a confidential private_key_jwt client for the
// code flow and returns its key.
func (e *env) protoJWTClient(id string, grants ...string) *ecdsa.PrivateKey {
	e.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	e.addClient(storage.Client{ID: id, Name: "Key client " + id, AuthMethod: "private_key_jwt", JWKS: string(raw),
		RedirectURIs: []string{rpRedirect}, GrantTypes: grants, IDTokenAlg: "ES256", FirstParty: true})
	return key
}

// protoSecretClient registers a confidential client with a secret.
func (e *env) protoSecretClient(id, method string, grants ...string) protoAuth {
	e.t.Helper()
	secret := "secret-of-" + id
	e.addClient(storage.Client{ID: id, Name: "Client " + id, SecretHash: factor.HashToken(secret), AuthMethod: method,
		RedirectURIs: []string{rpRedirect}, GrantTypes: grants, IDTokenAlg: "RS256", FirstParty: true})
	m := "basic"
	if method == "client_secret_post" {
		m = "post"
	}
	return protoAuth{id: id, method: m, secret: secret}
}

// protoCall posts form to path, authenticating as a says.
func (e *env) protoCall(path string, form url.Values, a protoAuth) (int, map[string]any) {
	e.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	switch a.method {
	case "post":
		f.Set("client_id", a.id)
		f.Set("client_secret", a.secret)
	case "jwt":
		if a.assertion == "" {
			a.assertion = e.protoAssertion(a.id, a.key)
		}
		f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		f.Set("client_assertion", a.assertion)
	case "none":
		f.Set("client_id", a.id)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if a.method == "basic" {
		req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// protoQuery is an authorization request for the code flow; challenge may
// be empty (no PKCE).
func protoQuery(clientID, redirect, challenge string) url.Values {
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid offline_access"}, "state": {"st-" + randomString()}, "nonce": {randomString()}}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	return q
}

// protoCode runs the authorization request q in b (signing in when asked)
// and returns the code the RP received.
func (e *env) protoCode(b *browser, q url.Values) string {
	e.t.Helper()
	p := b.get(e.issuer + "/authorize?" + q.Encode())
	if p.has("/login/password") {
		p = b.signIn(p, alice, alicePass)
	}
	if p.redirect == nil || p.redirect.Query().Get("code") == "" {
		e.t.Fatalf("no code: %d %v\n%.1500s", p.status, p.redirect, p.body)
	}
	return p.redirect.Query().Get("code")
}

// protoNoCode fails when resp sends the browser anywhere with a code.
func protoNoCode(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	loc, err := resp.Location()
	if err == nil && loc.Query().Get("code") != "" {
		t.Fatalf("%s: the response carries a code: %s", what, loc)
	}
}

func (e *env) protoAudit(typ storage.EventType) []storage.AuditEvent {
	e.t.Helper()
	ev, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// ---- 1. the browser binding at /authorize/callback ----

// The guard on /authorize/callback and the library must read the same
// request ID: a POST body used to win over the guarded query, so an
// attacker's browser could collect a victim's finished request. Only GET
// (what the login's 303 leads to) and exactly one id are accepted.
func TestProtoCallbackReadsOneIDByGETOnly(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	victim, attacker := e.browser(), e.browser()

	// The victim signs in; the redirect to the callback is held back, as
	// when its URL leaks before the browser follows it.
	va := r.authURL(nil)
	vp := victim.get(va.url)
	form := url.Values{"id": {vp.hidden("id")}, "username": {alice}, "password": {alicePass}}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/login/password", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var callback *url.URL
	for range 5 {
		resp, err := victim.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("sign-in did not lead to the callback: %d %v", resp.StatusCode, err)
		}
		if loc.Path == "/authorize/callback" {
			callback = loc
			break
		}
		req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
	}
	if callback == nil {
		t.Fatal("sign-in did not lead to the callback")
	}
	victimID := callback.Query().Get("id")

	// The attacker has a request of their own, bound to their browser.
	own := attacker.get(r.authURL(nil).url).hidden("id")
	if own == "" || victimID == "" || own == victimID {
		t.Fatal("setup: no request IDs")
	}
	send := func(method string, query, body url.Values) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, e.issuer+"/authorize/callback?"+query.Encode(), strings.NewReader(body.Encode()))
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := attacker.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		name        string
		method      string
		query, body url.Values
		want        int // 0: any status without a code
	}{
		{"a POST body naming the victim's request", http.MethodPost, url.Values{"id": {own}}, url.Values{"id": {victimID}}, http.StatusMethodNotAllowed},
		{"a POST with only the victim's request in the body", http.MethodPost, url.Values{}, url.Values{"id": {victimID}}, http.StatusMethodNotAllowed},
		{"a POST of the attacker's own request", http.MethodPost, url.Values{"id": {own}}, nil, http.StatusMethodNotAllowed},
		{"a GET naming both requests in the query", http.MethodGet, url.Values{"id": {own, victimID}}, nil, http.StatusBadRequest},
		{"a GET naming them the other way round", http.MethodGet, url.Values{"id": {victimID, own}}, nil, http.StatusBadRequest},
		{"a GET with an empty id", http.MethodGet, url.Values{"id": {""}}, nil, http.StatusBadRequest},
		{"a GET with the victim's request in a body", http.MethodGet, url.Values{"id": {own}}, url.Values{"id": {victimID}}, 0},
		{"a GET of the victim's request from the attacker's browser", http.MethodGet, url.Values{"id": {victimID}}, nil, http.StatusForbidden},
	} {
		resp := send(c.method, c.query, c.body)
		protoNoCode(t, c.name, resp)
		if c.want != 0 && resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}

	// The victim's request was neither redeemed nor spoiled: their own
	// browser still gets its code, and the RP can redeem it.
	vc := victim.get(callback.String())
	r.mustExchange(r.code(vc, va), va)
}

// ---- 4. PKCE at the token endpoint, for every client ----

// RFC 9700 §2.1.1 and §4.8.2: a code issued with a code_challenge is only
// redeemed with its code_verifier, whatever the client authentication; a
// code issued without one refuses any code_verifier. A failed redemption
// spends the code.
func TestProtoPKCEBindsTheCodeForEveryClient(t *testing.T) {
	e := newEnv(t)
	basic := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}
	post := e.protoSecretClient("rp-post", "client_secret_post", "authorization_code")
	keyed := protoAuth{id: "rp-jwt", method: "jwt"}
	keyed.key = e.protoJWTClient(keyed.id, "authorization_code")
	b := e.browser()
	exchange := func(a protoAuth, code, verifier string) (int, map[string]any) {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}}
		if verifier != "" {
			f.Set("code_verifier", verifier)
		}
		return e.protoCall("/oauth/token", f, a)
	}
	for _, a := range []protoAuth{basic, post, keyed} {
		t.Run(a.id, func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			for _, c := range []struct {
				name      string
				challenge string
				send      string
				ok        bool
			}{
				{"a challenge and its verifier", s256(verifier), verifier, true},
				{"a challenge and no verifier", s256(verifier), "", false},
				{"a challenge and another verifier", s256(verifier), oauth2.GenerateVerifier(), false},
				{"no challenge and no verifier", "", "", true},
				{"no challenge and a verifier", "", verifier, false},
			} {
				code := e.protoCode(b, protoQuery(a.id, rpRedirect, c.challenge))
				status, out := exchange(a, code, c.send)
				if c.ok {
					if status != 200 || out["access_token"] == nil {
						t.Errorf("%s: %d %v", c.name, status, out)
					}
					continue
				}
				if status != 400 || out["error"] != "invalid_grant" || out["access_token"] != nil {
					t.Errorf("%s: %d %v, want 400 invalid_grant", c.name, status, out)
				}
				// The failed attempt spent the code: the right verifier
				// no longer redeems it either.
				right := ""
				if c.challenge != "" {
					right = verifier
				}
				if status, out := exchange(a, code, right); out["access_token"] != nil {
					t.Errorf("%s: the code still redeems after a failed attempt: %d", c.name, status)
				}
			}
		})
	}
}

// ---- 8. introspection and client authentication ----

// RFC 7662 §2.1, §4: introspection answers only the token's own client (or
// a client in its audience); anyone else learns {"active":false}.
func TestProtoIntrospectionOnlyForTheTokensClient(t *testing.T) {
	e := newEnv(t)
	other := e.protoSecretClient("rp-other", "client_secret_basic", "authorization_code")
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	own := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}

	token := url.Values{"token": {tok.token.AccessToken}}
	if status, out := e.protoCall("/oauth/introspect", token, other); status != 200 || out["active"] != false || len(out) != 1 {
		t.Fatalf("another client introspected the token: %d %v", status, out)
	}
	if status, out := e.protoCall("/oauth/introspect", token, own); status != 200 || out["active"] != true || out["sub"] != "u-alice" {
		t.Fatalf("the token's own client: %d %v", status, out)
	}
}

// One client authentication for token, introspection and revocation: the
// registered method only, and a private_key_jwt assertion is spent once
// wherever it is presented.
func TestProtoClientAuthenticationIsTheRegisteredMethodEverywhere(t *testing.T) {
	e := newEnv(t)
	post := e.protoSecretClient("rp-post", "client_secret_post", "client_credentials")
	keyed := protoAuth{id: "svc-jwt", method: "jwt"}
	keyed.key = e.protoJWTClient(keyed.id, "client_credentials")
	basic := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}

	token := func(a protoAuth) string {
		t.Helper()
		status, out := e.protoCall("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, a)
		at, _ := out["access_token"].(string)
		if status != 200 || at == "" {
			t.Fatalf("%s (%s): client_credentials %d %v", a.id, a.method, status, out)
		}
		return at
	}
	tokens := map[string]string{basic.id: token(basic), post.id: token(post), keyed.id: token(keyed)}

	wrong := func(a protoAuth, method string) protoAuth { a.method = method; return a }
	for _, c := range []struct {
		name string
		a    protoAuth
	}{
		{"a client_secret_basic client sending its secret in the body", wrong(basic, "post")},
		{"a client_secret_post client sending its secret in HTTP Basic", wrong(post, "basic")},
		{"a client_secret_basic client sending no secret", wrong(basic, "none")},
	} {
		for _, path := range []string{"/oauth/token", "/oauth/introspect", "/revoke"} {
			f := url.Values{"grant_type": {"client_credentials"}, "token": {tokens[c.a.id]}}
			if path != "/oauth/token" {
				f.Del("grant_type")
			}
			status, out := e.protoCall(path, f, c.a)
			if status < 400 || out["error"] != "invalid_client" {
				t.Errorf("%s at %s: %d %v, want invalid_client", c.name, path, status, out)
			}
		}
	}
	// Nothing was revoked by the refused calls.
	for _, a := range []protoAuth{basic, post, keyed} {
		if status, out := e.protoCall("/oauth/introspect", url.Values{"token": {tokens[a.id]}}, a); status != 200 || out["active"] != true {
			t.Errorf("%s: own token after refused calls: %d %v", a.id, status, out)
		}
	}

	// A private_key_jwt assertion is single use at every endpoint, and one
	// spent at the token endpoint is spent for introspection too.
	for _, path := range []string{"/oauth/introspect", "/revoke", "/oauth/token"} {
		once := keyed
		once.assertion = e.protoAssertion(keyed.id, keyed.key)
		f := url.Values{"token": {tokens[keyed.id]}}
		if path == "/oauth/token" {
			f = url.Values{"grant_type": {"client_credentials"}}
		}
		if path == "/revoke" {
			f.Set("token", "not-a-token") // keep the token for the checks below
		}
		if status, out := e.protoCall(path, f, once); status != 200 {
			t.Fatalf("%s: first use of an assertion: %d %v", path, status, out)
		}
		for _, again := range []string{"/oauth/introspect", "/revoke", "/oauth/token"} {
			g := url.Values{"token": {tokens[keyed.id]}}
			if again == "/oauth/token" {
				g = url.Values{"grant_type": {"client_credentials"}}
			}
			if status, out := e.protoCall(again, g, once); status < 400 || out["error"] != "invalid_client" {
				t.Errorf("assertion used at %s replayed at %s: %d %v", path, again, status, out)
			}
		}
	}
	// A public client identifies itself, with its ID in the body or in HTTP
	// Basic with an empty password, and may revoke (RFC 7009 §2.1) but not
	// introspect; a secret it does not have is refused.
	spa := protoAuth{id: publicClient, method: "none"}
	if status, out := e.protoCall("/revoke", url.Values{"token": {"not-a-token"}}, spa); status != 200 {
		t.Errorf("public client at /revoke: %d %v", status, out)
	}
	if status, out := e.protoCall("/revoke", url.Values{"token": {"not-a-token"}}, protoAuth{id: publicClient, method: "basic"}); status != 200 {
		t.Errorf("public client in HTTP Basic without a password at /revoke: %d %v", status, out)
	}
	for _, a := range []protoAuth{spa, {id: publicClient, method: "basic", secret: "guess"}, {id: publicClient, method: "post", secret: "guess"}} {
		if status, out := e.protoCall("/oauth/introspect", url.Values{"token": {tokens[basic.id]}}, a); status < 400 || out["active"] != nil {
			t.Errorf("public client (%s) at /oauth/introspect: %d %v", a.method, status, out)
		}
	}
	// The grant types stay per client whatever the authentication.
	codeOnly := protoAuth{id: "rp-jwt-code", method: "jwt"}
	codeOnly.key = e.protoJWTClient(codeOnly.id, "authorization_code")
	if status, out := e.protoCall("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, codeOnly); status < 400 || out["error"] != "unauthorized_client" {
		t.Errorf("client_credentials for a client without that grant: %d %v", status, out)
	}

	// A client_secret_post client is fine in the body at every endpoint.
	for _, path := range []string{"/oauth/introspect", "/revoke"} {
		if status, out := e.protoCall(path, url.Values{"token": {"not-a-token"}}, post); status != 200 {
			t.Errorf("client_secret_post at %s: %d %v", path, status, out)
		}
	}
}

// RFC 7009 §2.1: a client cannot revoke another client's tokens.
func TestProtoRevocationOfAnotherClientsTokenChangesNothing(t *testing.T) {
	e := newEnv(t)
	other := e.protoSecretClient("rp-other", "client_secret_basic", "authorization_code")
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	for _, c := range []struct{ token, hint string }{
		{tok.token.AccessToken, ""}, {tok.token.AccessToken, "access_token"},
		{tok.token.RefreshToken, ""}, {tok.token.RefreshToken, "refresh_token"},
	} {
		f := url.Values{"token": {c.token}}
		if c.hint != "" {
			f.Set("token_type_hint", c.hint)
		}
		if status, out := e.protoCall("/revoke", f, other); status >= 500 {
			t.Fatalf("revoke: %d %v", status, out)
		}
	}
	if _, err := r.provider.UserInfo(t.Context(), oauthSource(tok)); err != nil {
		t.Fatalf("another client revoked the access token: %v", err)
	}
	if _, err := r.refresh(tok.token.RefreshToken); err != nil {
		t.Fatalf("another client revoked the refresh token: %v", err)
	}
	if n := len(e.protoAudit("token.revoked")); n != 0 {
		t.Fatalf("%d token.revoked rows for refused revocations", n)
	}
}

// ---- 10. loopback redirect URIs of native apps ----

// RFC 8252 §7.3: only the port of a registered loopback redirect URI may
// vary; scheme, host, path and query must match.
func TestProtoLoopbackRedirectOnlyThePortVaries(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "cli", Name: "Command line", Public: true, Native: true, AuthMethod: "none",
		RedirectURIs: []string{"http://127.0.0.1/cb", "http://[::1]/cb6"}, GrantTypes: []string{"authorization_code"},
		IDTokenAlg: "ES256", RequirePKCE: true, FirstParty: true})
	verifier := oauth2.GenerateVerifier()
	for _, c := range []struct {
		redirect string
		ok       bool
	}{
		{"http://127.0.0.1/cb", true},
		{"http://127.0.0.1:53123/cb", true},
		{"http://[::1]:40000/cb6", true},
		{"https://127.0.0.1:53123/cb", false},
		{"https://localhost:53123/cb", false},
		{"http://localhost:53123/cb", false},
		{"http://[::1]:53123/cb", false},
		{"http://127.0.0.2:53123/cb", false},
		{"http://127.0.0.1:53123/cb6", false},
		{"http://127.0.0.1:53123/cb?x=1", false},
		{"http://127.0.0.1:53123/cb/", false},
		{"http://user@127.0.0.1:53123/cb", false},
		{"http://127.0.0.1:53123/cb#f", false},
	} {
		b := e.browser()
		p := b.get(e.issuer + "/authorize?" + protoQuery("cli", c.redirect, s256(verifier)).Encode())
		if c.ok {
			if !p.has("/login/password") {
				t.Errorf("%s: refused: %d %v\n%.800s", c.redirect, p.status, p.redirect, p.body)
			}
			continue
		}
		if p.redirect != nil || p.status != http.StatusBadRequest {
			t.Errorf("%s: accepted (%d, redirect %v)", c.redirect, p.status, p.redirect)
		}
	}

	// The whole flow works on a port the app picked.
	b := e.browser()
	q := protoQuery("cli", "http://127.0.0.1:61000/cb", s256(verifier))
	code := e.protoCode(b, q)
	status, out := e.protoCall("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"http://127.0.0.1:61000/cb"}, "code_verifier": {verifier}}, protoAuth{id: "cli", method: "none"})
	if status != 200 || out["id_token"] == nil {
		t.Fatalf("loopback code exchange: %d %v", status, out)
	}
}

// The same rule holds for a native app's post_logout_redirect_uri.
func TestProtoLoopbackPostLogoutOnlyThePortVaries(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "cli", Name: "Command line", Public: true, Native: true, AuthMethod: "none",
		RedirectURIs: []string{"http://127.0.0.1/cb"}, PostLogoutRedirectURIs: []string{"http://127.0.0.1/bye"},
		GrantTypes: []string{"authorization_code"}, IDTokenAlg: "ES256", RequirePKCE: true, FirstParty: true})
	for _, c := range []struct {
		uri string
		ok  bool
	}{
		{"http://127.0.0.1:5000/bye", true},
		{"http://localhost:5000/bye", false},
		{"https://127.0.0.1:5000/bye", false},
		{"http://[::1]:5000/bye", false},
	} {
		b := e.browser()
		p := b.get(e.issuer + "/end_session?" + url.Values{"client_id": {"cli"}, "post_logout_redirect_uri": {c.uri}}.Encode())
		if c.ok != (p.redirect != nil && strings.HasPrefix(p.redirect.String(), c.uri)) {
			t.Errorf("%s: ok=%v, got %d %v", c.uri, c.ok, p.status, p.redirect)
		}
	}
}

// ---- 12 and token.issued: what a grant writes to the audit log ----

// A refresh token presented again names the user and client whose family
// was revoked.
func TestProtoRefreshReuseAuditNamesUserAndClient(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	if _, err := r.refresh(tok.token.RefreshToken); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(storage.DefaultRefreshReuseInterval) // past the reuse interval
	if _, err := r.refresh(tok.token.RefreshToken); err == nil {
		t.Fatal("a rotated refresh token worked again")
	}
	ev := e.protoAudit("token.refresh_reuse")
	if len(ev) != 1 || ev[0].UserID != "u-alice" || ev[0].ClientID != rpClient {
		t.Fatalf("refresh reuse audit rows: %+v", ev)
	}
}

// Every grant writes one token.issued row with client, subject, acr, amr
// and grant type, and never a token.
func TestProtoEveryGrantWritesTokenIssued(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	tok := r.login(e.browser(), nil)
	ref, err := r.refresh(tok.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	status, cc := e.protoCall("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, protoAuth{id: rpClient, method: "basic", secret: e.rpSecret})
	if status != 200 {
		t.Fatalf("client_credentials: %d %v", status, cc)
	}
	ev := e.protoAudit("token.issued")
	if len(ev) != 3 {
		t.Fatalf("%d token.issued rows, want 3: %+v", len(ev), ev)
	}
	want := []struct{ grant, user, acr, amr string }{
		{"authorization_code", "u-alice", "urn:keystep:acr:sfa", "pwd"},
		{"refresh_token", "u-alice", "urn:keystep:acr:sfa", "pwd"},
		{"client_credentials", "", "", ""},
	}
	for i, w := range want {
		got := ev[i]
		if got.ClientID != rpClient || got.UserID != w.user || got.Outcome != "success" ||
			got.Details["grant_type"] != w.grant || got.Details["acr"] != w.acr || got.Details["amr"] != w.amr {
			t.Errorf("row %d: %+v, want %+v", i, got, w)
		}
	}
	secrets := []string{tok.token.AccessToken, tok.token.RefreshToken, tok.token.Extra("id_token").(string),
		ref.token.AccessToken, ref.token.RefreshToken, cc["access_token"].(string)}
	for _, row := range ev {
		raw, _ := json.Marshal(row)
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Fatalf("a token.issued row holds a token: %s", raw)
			}
		}
	}
}

// DESIGN §6: a grant whose token.issued row cannot be written fails.
func TestProtoGrantFailsWhenTokenIssuedCannotBeAudited(t *testing.T) {
	var fa *failingAudit
	e := newEnv(t, func(c *idp.Config) { fa = &failingAudit{Store: c.Store}; c.Store = fa })
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	code := r.code(b.signIn(b.get(a.url), alice, alicePass), a)
	fa.fail.Store(true)
	own := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}
	status, out := e.protoCall("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {rpRedirect}, "code_verifier": {a.verifier}}, own)
	if status != 500 || out["error"] != "server_error" || out["access_token"] != nil {
		t.Fatalf("code exchange without its audit row: %d %v", status, out)
	}
	status, out = e.protoCall("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, own)
	if status != 500 || out["access_token"] != nil {
		t.Fatalf("client_credentials without its audit row: %d %v", status, out)
	}
	fa.fail.Store(false)
	if ev := e.protoAudit("token.issued"); len(ev) != 0 {
		t.Fatalf("token.issued rows for failed grants: %+v", ev)
	}
}
