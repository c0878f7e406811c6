package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/resource"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// dpopKey is a client's DPoP key pair, and the server nonce it last got.
type dpopKey struct {
	e     *env
	key   *ecdsa.PrivateKey
	jkt   string
	nonce string
}

func (e *env) newDPoPKey() *dpopKey {
	e.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(jose.JSONWebKey{Key: k.Public()})
	if err != nil {
		e.t.Fatal(err)
	}
	return &dpopKey{e: e, key: k, jkt: jkt}
}

// proof makes a proof for method on htu (a path of the issuer, or a whole
// URL), with ath of token when set, the key's nonce, and edit applied.
func (k *dpopKey) proof(method, htu, token string, edit map[string]any) string {
	k.e.t.Helper()
	if strings.HasPrefix(htu, "/") {
		htu = k.e.issuer + htu
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.key},
		(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: k.key.Public()}))
	if err != nil {
		k.e.t.Fatal(err)
	}
	c := map[string]any{"jti": randomString(), "htm": method, "htu": htu, "iat": k.e.clock.Now().Unix()}
	if token != "" {
		c["ath"] = dpop.ATH(token)
	}
	if k.nonce != "" {
		c["nonce"] = k.nonce
	}
	for n, v := range edit {
		if v == nil {
			delete(c, n)
		} else {
			c[n] = v
		}
	}
	b, _ := json.Marshal(c)
	jws, err := sig.Sign(b)
	if err != nil {
		k.e.t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

// dpopPost posts form to path as a authenticates, with proof in the DPoP
// header when set.
func (e *env) dpopPost(path string, form url.Values, a protoAuth, proof string) (int, map[string]any, http.Header) {
	e.t.Helper()
	f := url.Values{}
	for n, v := range form {
		f[n] = v
	}
	switch a.method {
	case "none":
		f.Set("client_id", a.id)
	case "post":
		f.Set("client_id", a.id)
		f.Set("client_secret", a.secret)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if a.method == "basic" {
		req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

// token asks the token endpoint with a proof by k, doing the nonce dance
// of RFC 9449 §8 once when asked; it fails the test unless the first
// answer was use_dpop_nonce or a success or another error.
func (k *dpopKey) token(form url.Values, a protoAuth) (int, map[string]any) {
	k.e.t.Helper()
	status, body, h := k.e.dpopPost("/oauth/token", form, a, k.proof(http.MethodPost, "/oauth/token", "", nil))
	if status == http.StatusBadRequest && body["error"] == "use_dpop_nonce" {
		if k.nonce = h.Get("DPoP-Nonce"); k.nonce == "" {
			k.e.t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
		}
		status, body, h = k.e.dpopPost("/oauth/token", form, a, k.proof(http.MethodPost, "/oauth/token", "", nil))
	}
	if n := h.Get("DPoP-Nonce"); n != "" {
		k.nonce = n
	}
	return status, body
}

// dpopCode runs the authorization request q in b and returns the code.
func (e *env) dpopCode(b *browser, q url.Values) string {
	e.t.Helper()
	p := b.get(e.issuer + "/authorize?" + q.Encode())
	if p.has("/login/password") {
		p = b.signIn(p, alice, alicePass)
	}
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	if p.redirect == nil || p.redirect.Query().Get("code") == "" {
		e.t.Fatalf("no code: %d %v\n%.1500s", p.status, p.redirect, p.body)
	}
	return p.redirect.Query().Get("code")
}

// userinfo calls /userinfo with Authorization "scheme token" and proof.
func (e *env) userinfo(scheme, token, proof string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", scheme+" "+token)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func cnfJKT(m map[string]any) string {
	cnf, _ := m["cnf"].(map[string]any)
	s, _ := cnf["jkt"].(string)
	return s
}

func codeForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {verifier}}
}

// TestDPoPPublicClient follows a public client through RFC 9449 with Keystep
// as the issuer: the nonce dance, bound tokens, their use and misuse at
// userinfo, introspection and an API behind idp/resource, and refresh bound
// to the key.
func TestDPoPPublicClient(t *testing.T) {
	e := newEnv(t)
	spa := protoAuth{id: publicClient, method: "none"}
	key, thief := e.newDPoPKey(), e.newDPoPKey()
	verifier := randomString() + randomString()
	q := protoQuery(publicClient, rpRedirect, s256(verifier))
	q.Set("dpop_jkt", key.jkt)
	code := e.dpopCode(e.browser(), q)

	// The nonce dance: a first proof without a nonce is refused and does
	// not spend the code.
	status, body, h := e.dpopPost("/oauth/token", codeForm(code, verifier), spa, key.proof(http.MethodPost, "/oauth/token", "", nil))
	if status != http.StatusBadRequest || body["error"] != "use_dpop_nonce" || h.Get("DPoP-Nonce") == "" {
		t.Fatalf("proof without a nonce: %d %v, DPoP-Nonce %q", status, body, h.Get("DPoP-Nonce"))
	}
	key.nonce = h.Get("DPoP-Nonce")
	replayed := key.proof(http.MethodPost, "/oauth/token", "", nil)
	status, body, h = e.dpopPost("/oauth/token", codeForm(code, verifier), spa, replayed)
	if status != http.StatusOK {
		t.Fatalf("code exchange with the nonce: %d %v", status, body)
	}
	if h.Get("DPoP-Nonce") == "" {
		t.Error("a token response without DPoP-Nonce")
	}
	if body["token_type"] != "DPoP" {
		t.Errorf("token_type %v, want DPoP", body["token_type"])
	}
	at, _ := body["access_token"].(string)
	rt, _ := body["refresh_token"].(string)
	idt, _ := body["id_token"].(string)
	hdr, claims := jwtParts(t, at)
	if hdr["typ"] != "at+jwt" || hdr["alg"] != "ES256" {
		t.Errorf("access token header %v, want typ at+jwt (RFC 9068 §2.1) and ES256", hdr)
	}
	if cnfJKT(claims) != key.jkt {
		t.Errorf("access token cnf %v, want jkt %s", claims["cnf"], key.jkt)
	}
	for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "acr", "amr", "auth_time", "sid"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("access token lacks %s", c)
		}
	}
	_, idClaims := jwtParts(t, idt)
	sum := sha256.Sum256([]byte(at))
	if want := base64.RawURLEncoding.EncodeToString(sum[:16]); idClaims["at_hash"] != want {
		t.Errorf("at_hash %v, want %s (the access token issued)", idClaims["at_hash"], want)
	}

	t.Run("a proof is spent once", func(t *testing.T) {
		status, body, _ := e.dpopPost("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, spa, replayed)
		if status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
			t.Errorf("replayed proof: %d %v, want invalid_dpop_proof", status, body)
		}
	})

	t.Run("userinfo takes the bound token only with a proof of its key", func(t *testing.T) {
		if status, ch := e.userinfo("DPoP", at, key.proof(http.MethodGet, "/userinfo", at, nil)); status != http.StatusOK {
			t.Fatalf("DPoP userinfo: %d %s", status, ch)
		}
		same := key.proof(http.MethodGet, "/userinfo", at, nil)
		e.userinfo("DPoP", at, same)
		for name, call := range map[string][2]string{
			"as Bearer":                      {"Bearer", ""},
			"without a proof":                {"DPoP", ""},
			"with a proof of another key":    {"DPoP", thief.proof(http.MethodGet, "/userinfo", at, nil)},
			"with a replayed proof":          {"DPoP", same},
			"with a proof for POST":          {"DPoP", key.proof(http.MethodPost, "/userinfo", at, nil)},
			"with a proof for /oauth/token":  {"DPoP", key.proof(http.MethodGet, "/oauth/token", at, nil)},
			"with a proof for another token": {"DPoP", key.proof(http.MethodGet, "/userinfo", at+"x", nil)},
			"with a proof without ath":       {"DPoP", key.proof(http.MethodGet, "/userinfo", "", nil)},
		} {
			status, ch := e.userinfo(call[0], at, call[1])
			if status != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP error=") {
				t.Errorf("%s: %d %q, want 401 with a DPoP challenge", name, status, ch)
			}
		}
	})

	t.Run("an API behind idp/resource takes the bound token only with a proof of its key", func(t *testing.T) {
		const api = "https://api.example"
		v, err := resource.Open(context.Background(), e.issuer, resource.WithClock(e.clock.Now), resource.WithPublicURL(api))
		if err != nil {
			t.Fatal(err)
		}
		h := v.Require(resource.Requirement{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		call := func(auth, proof string) int {
			r := httptest.NewRequest(http.MethodGet, "http://10.0.0.1/orders", nil)
			r.Header.Set("Authorization", auth)
			if proof != "" {
				r.Header.Set("DPoP", proof)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w.Code
		}
		if got := call("DPoP "+at, key.proof(http.MethodGet, api+"/orders", at, nil)); got != http.StatusNoContent {
			t.Fatalf("DPoP request with the key: %d", got)
		}
		for name, got := range map[string]int{
			"as Bearer":                   call("Bearer "+at, ""),
			"without a proof":             call("DPoP "+at, ""),
			"with a proof of another key": call("DPoP "+at, thief.proof(http.MethodGet, api+"/orders", at, nil)),
		} {
			if got != http.StatusUnauthorized {
				t.Errorf("%s: %d, want 401", name, got)
			}
		}
	})

	t.Run("a stolen refresh token is useless without the key", func(t *testing.T) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if status, body, _ := e.dpopPost("/oauth/token", form, spa, ""); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("refresh without a proof: %d %v", status, body)
		}
		thief.nonce = key.nonce
		if status, body := thief.token(form, spa); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("refresh with another key: %d %v", status, body)
		}
		// Nothing was rotated: the holder of the key refreshes, and its
		// step-up facts stay frozen (OIDC Core §12.2).
		e.clock.Advance(time.Minute)
		status, body := key.token(form, spa)
		if status != http.StatusOK || body["token_type"] != "DPoP" {
			t.Fatalf("refresh with the key: %d %v", status, body)
		}
		at2, _ := body["access_token"].(string)
		_, c2 := jwtParts(t, at2)
		_, id2 := jwtParts(t, body["id_token"].(string))
		if cnfJKT(c2) != key.jkt {
			t.Errorf("refreshed access token cnf %v", c2["cnf"])
		}
		for _, c := range []string{"acr", "amr", "auth_time"} {
			if a, b := mustJSON(claims[c]), mustJSON(c2[c]); a != b {
				t.Errorf("refreshed access token %s %s, was %s", c, b, a)
			}
			if a, b := mustJSON(idClaims[c]), mustJSON(id2[c]); a != b {
				t.Errorf("refreshed ID token %s %s, was %s", c, b, a)
			}
		}
	})
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestDPoPCodeBinding(t *testing.T) {
	e := newEnv(t)
	spa := protoAuth{id: publicClient, method: "none"}
	key, other := e.newDPoPKey(), e.newDPoPKey()

	t.Run("a code bound with dpop_jkt does not redeem with another key", func(t *testing.T) {
		verifier := randomString() + randomString()
		q := protoQuery(publicClient, rpRedirect, s256(verifier))
		q.Set("dpop_jkt", key.jkt)
		code := e.dpopCode(e.browser(), q)
		if status, body := other.token(codeForm(code, verifier), spa); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("redeemed with another key: %d %v, want invalid_grant", status, body)
		}
	})
	t.Run("a code bound with dpop_jkt does not redeem without a proof", func(t *testing.T) {
		verifier := randomString() + randomString()
		q := protoQuery(publicClient, rpRedirect, s256(verifier))
		q.Set("dpop_jkt", key.jkt)
		code := e.dpopCode(e.browser(), q)
		if status, body, _ := e.dpopPost("/oauth/token", codeForm(code, verifier), spa, ""); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Errorf("redeemed without a proof: %d %v, want invalid_grant", status, body)
		}
	})
	t.Run("a malformed dpop_jkt is invalid_request", func(t *testing.T) {
		q := protoQuery(publicClient, rpRedirect, s256(randomString()))
		q.Set("dpop_jkt", "not-a-thumbprint")
		p := e.browser().get(e.issuer + "/authorize?" + q.Encode())
		if p.redirect == nil || p.redirect.Query().Get("error") != "invalid_request" {
			t.Errorf("malformed dpop_jkt: %d %v", p.status, p.redirect)
		}
	})
	t.Run("a bearer code exchange still works for a client that may use either", func(t *testing.T) {
		verifier := randomString() + randomString()
		code := e.dpopCode(e.browser(), protoQuery(publicClient, rpRedirect, s256(verifier)))
		status, body, _ := e.dpopPost("/oauth/token", codeForm(code, verifier), spa, "")
		if status != http.StatusOK || body["token_type"] != "Bearer" {
			t.Fatalf("bearer exchange: %d %v", status, body)
		}
		hdr, claims := jwtParts(t, body["access_token"].(string))
		if hdr["typ"] != "at+jwt" || claims["cnf"] != nil {
			t.Errorf("bearer access token header %v, cnf %v", hdr, claims["cnf"])
		}
	})
}

func TestDPoPRequiredClient(t *testing.T) {
	e := newEnv(t)
	secret := "secret-of-bank"
	e.addClient(storage.Client{ID: "bank", Name: "Bank", SecretHash: factor.HashToken(secret), AuthMethod: "client_secret_basic",
		RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"},
		IDTokenAlg: "ES256", FirstParty: true, DPoPBoundAccessTokens: true, AccessTokenFormat: "opaque"})
	bank := protoAuth{id: "bank", method: "basic", secret: secret}
	key, other := e.newDPoPKey(), e.newDPoPKey()
	verifier := randomString() + randomString()
	code := e.dpopCode(e.browser(), protoQuery("bank", rpRedirect, s256(verifier)))

	status, body, _ := e.dpopPost("/oauth/token", codeForm(code, verifier), bank, "")
	if status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("dpop-required client without a proof: %d %v, want invalid_dpop_proof", status, body)
	}
	status, body = key.token(codeForm(code, verifier), bank)
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("with a proof (the code was not spent by the refusal): %d %v", status, body)
	}
	at, _ := body["access_token"].(string)
	rt, _ := body["refresh_token"].(string)

	t.Run("a bound opaque token is refused at userinfo without its key", func(t *testing.T) {
		if status, ch := e.userinfo("DPoP", at, key.proof(http.MethodGet, "/userinfo", at, nil)); status != http.StatusOK {
			t.Fatalf("with the key: %d %s", status, ch)
		}
		if status, ch := e.userinfo("Bearer", at, ""); status != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP ") {
			t.Errorf("as Bearer: %d %s", status, ch)
		}
		if status, _ := e.userinfo("DPoP", at, other.proof(http.MethodGet, "/userinfo", at, nil)); status != http.StatusUnauthorized {
			t.Errorf("with another key: %d", status)
		}
	})
	t.Run("introspection of a bound opaque token reports cnf", func(t *testing.T) {
		status, body, _ := e.dpopPost("/oauth/introspect", url.Values{"token": {at}}, bank, "")
		if status != http.StatusOK || body["active"] != true || body["token_type"] != "DPoP" || cnfJKT(body) != key.jkt {
			t.Errorf("introspection: %d %v", status, body)
		}
	})
	t.Run("a confidential client's refresh may move to a new key, never to a bearer token", func(t *testing.T) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if status, body, _ := e.dpopPost("/oauth/token", form, bank, ""); status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
			t.Errorf("refresh without a proof: %d %v", status, body)
		}
		other.nonce = key.nonce
		status, body := other.token(form, bank)
		if status != http.StatusOK || body["token_type"] != "DPoP" {
			t.Fatalf("refresh with a new key: %d %v", status, body)
		}
		at2, _ := body["access_token"].(string)
		if status, _, _ := e.dpopPost("/oauth/introspect", url.Values{"token": {at2}}, bank, ""); status != http.StatusOK {
			t.Fatal(status)
		}
		_, ib, _ := e.dpopPost("/oauth/introspect", url.Values{"token": {at2}}, bank, "")
		if cnfJKT(ib) != other.jkt {
			t.Errorf("the refreshed token is bound to %q, want the new key", cnfJKT(ib))
		}
	})
	t.Run("a proof sent to introspection or revocation is checked", func(t *testing.T) {
		for _, path := range []string{"/oauth/introspect", "/revoke"} {
			bad := key.proof(http.MethodPost, "/oauth/token", "", nil) // the wrong htu
			if status, body, _ := e.dpopPost(path, url.Values{"token": {at}}, bank, bad); status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
				t.Errorf("%s with a proof for the token endpoint: %d %v", path, status, body)
			}
		}
		if status, body, _ := e.dpopPost("/oauth/introspect", url.Values{"token": {at}}, bank, key.proof(http.MethodPost, "/oauth/introspect", "", nil)); status != http.StatusOK || body["active"] != true {
			t.Errorf("introspection with a good proof: %d %v", status, body)
		}
	})
	t.Run("client credentials with a proof are bound", func(t *testing.T) {
		status, body := key.token(url.Values{"grant_type": {"client_credentials"}}, bank)
		if status != http.StatusOK || body["token_type"] != "DPoP" {
			t.Fatalf("client credentials: %d %v", status, body)
		}
		_, ib, _ := e.dpopPost("/oauth/introspect", url.Values{"token": {body["access_token"].(string)}}, bank, "")
		if ib["active"] != true || cnfJKT(ib) != key.jkt {
			t.Errorf("introspection: %v", ib)
		}
	})
}

// TestDPoPIntrospectionForDPoPResource: a resource server that requires
// DPoP (dpop_bound_access_tokens on its client) is told a bearer token is
// inactive, so it never takes one for a bound token.
func TestDPoPIntrospectionForDPoPResource(t *testing.T) {
	e := newEnv(t)
	rp := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}
	status, body, _ := e.dpopPost("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rp, "")
	if status != http.StatusOK || body["token_type"] != "Bearer" {
		t.Fatalf("client credentials: %d %v", status, body)
	}
	at, _ := body["access_token"].(string)
	if _, ib, _ := e.dpopPost("/oauth/introspect", url.Values{"token": {at}}, rp, ""); ib["active"] != true || ib["token_type"] != "Bearer" {
		t.Fatalf("introspection before: %v", ib)
	}
	key := e.newDPoPKey()
	status, body = key.token(url.Values{"grant_type": {"client_credentials"}}, rp)
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("client credentials with a proof: %d %v", status, body)
	}
	bound, _ := body["access_token"].(string)
	if _, c := jwtParts(t, bound); cnfJKT(c) != key.jkt {
		t.Errorf("bound JWT cnf %v", c["cnf"])
	}
	c, err := e.store.ClientByID(context.Background(), rpClient)
	if err != nil {
		t.Fatal(err)
	}
	c.DPoPBoundAccessTokens = true
	if err := e.store.UpdateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // the server's client cache (clientCacheTTL, real time)
	if _, ib, _ := e.dpopPost("/oauth/introspect", url.Values{"token": {at}}, rp, ""); ib["active"] != false || len(ib) != 1 {
		t.Errorf("introspection by a DPoP-requiring resource server: %v, want {\"active\":false}", ib)
	}
	if _, ib, _ := e.dpopPost("/oauth/introspect", url.Values{"token": {bound}}, rp, ""); ib["active"] != true || ib["token_type"] != "DPoP" || cnfJKT(ib) != key.jkt {
		t.Errorf("introspection of a bound JWT by a DPoP-requiring resource server: %v", ib)
	}
}

func TestDPoPDiscovery(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(d["dpop_signing_alg_values_supported"]); got != `["ES256","ES384","PS256","RS256","EdDSA"]` {
		t.Errorf("dpop_signing_alg_values_supported %s", got)
	}
	if d["issuer"] != e.issuer || d["token_endpoint"] == nil {
		t.Errorf("discovery lost its members: %v", d)
	}
}

func TestDPoPNonceNotRequired(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) { c.DPoPNonceNotRequired = true })
	rp := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}
	key := e.newDPoPKey()
	status, body, _ := e.dpopPost("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rp, key.proof(http.MethodPost, "/oauth/token", "", nil))
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Errorf("a proof without a nonce where none is required: %d %v", status, body)
	}
}

// A public client's Bearer refresh token is bound to the DPoP key of its
// first refresh with a proof (RFC 9449 §5) — of its first refresh that
// is granted. A refresh refused for what it asks (a scope the grant does
// not hold) is bad input and changes nothing: it binds no key, so the
// holder's next, valid refresh with its own key succeeds.
func TestDPoPRefusedRefreshBindsNoKey(t *testing.T) {
	e := newEnv(t)
	spa := protoAuth{id: publicClient, method: "none"}
	verifier := randomString() + randomString()
	code := e.dpopCode(e.browser(), protoQuery(publicClient, rpRedirect, s256(verifier)))
	status, body, _ := e.dpopPost("/oauth/token", codeForm(code, verifier), spa, "")
	if status != http.StatusOK || body["token_type"] != "Bearer" {
		t.Fatalf("Bearer code exchange: %d %v", status, body)
	}
	rt, _ := body["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh token: %v", body)
	}
	stranger, holder := e.newDPoPKey(), e.newDPoPKey()
	withNonce := func(k *dpopKey, form url.Values) (int, map[string]any) {
		status, body, h := e.dpopPost("/oauth/token", form, spa, k.proof(http.MethodPost, "/oauth/token", "", nil))
		if status == http.StatusBadRequest && body["error"] == "use_dpop_nonce" {
			k.nonce = h.Get("DPoP-Nonce")
			status, body, _ = e.dpopPost("/oauth/token", form, spa, k.proof(http.MethodPost, "/oauth/token", "", nil))
		}
		return status, body
	}
	wider := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"openid offline_access email"}}
	if status, body := withNonce(stranger, wider); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("a refresh asking for a scope the grant lacks: %d %v, want invalid_scope", status, body)
	}
	status, body = withNonce(holder, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("the holder's refresh after a refused one: %d %v; the refused request bound the family to its key", status, body)
	}
}
