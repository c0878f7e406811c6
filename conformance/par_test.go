package conformance

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// Pushed authorization requests (RFC 9126), request objects (RFC 9101),
// the iss response parameter (RFC 9207) and the front-channel half of the
// fapi2 profile.

const (
	parURN     = "urn:ietf:params:oauth:request_uri:"
	keyClient  = "pkjwt"  // private_key_jwt client with an ES256 and an RSA key
	fapiClient = "fapi"   // fapi2 profile, private_key_jwt
	parClient  = "pushes" // client_secret_basic, RequirePAR
)

// clientKeys are a client's signing keys: k1 ES256, k2 RSA (RS256 or
// PS256), k3 Ed25519 (EdDSA).
type clientKeys struct {
	ec  *ecdsa.PrivateKey
	rsa *rsa.PrivateKey
	ed  ed25519.PrivateKey
}

func newClientKeys(t *testing.T) clientKeys {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return clientKeys{ec: ec, rsa: rk, ed: ed}
}

func (k clientKeys) jwks() string {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.ec.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"},
		{Key: &k.rsa.PublicKey, KeyID: "k2", Use: "sig"},
		{Key: k.ed.Public(), KeyID: "k3", Algorithm: "EdDSA", Use: "sig"},
	}}
	b, _ := json.Marshal(set)
	return string(b)
}

// sign signs claims with alg (ES256 with k1, RS256/PS256 with k2); extra
// header values (typ) are added.
func (k clientKeys) sign(t *testing.T, alg jose.SignatureAlgorithm, claims map[string]any, header map[string]any) string {
	t.Helper()
	var key crypto.Signer = k.rsa
	kid := "k2"
	switch alg {
	case jose.ES256:
		key, kid = k.ec, "k1"
	case jose.EdDSA:
		key, kid = k.ed, "k3"
	}
	opts := &jose.SignerOptions{}
	for name, v := range header {
		opts = opts.WithHeader(jose.HeaderKey(name), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertion is a client assertion (RFC 7523 §3), timed by the real clock
// (the harness's clock follows it).
func (k clientKeys) assertion(t *testing.T, e *env, clientID string, alg jose.SignatureAlgorithm) url.Values {
	now := time.Now()
	a := k.sign(t, alg, map[string]any{"iss": clientID, "sub": clientID, "aud": e.issuer, "jti": randomString(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, nil)
	return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
}

// parEnv is an env with the clients these tests need.
func parEnv(t *testing.T, opts ...envOption) (*env, clientKeys) {
	e := newEnv(t, opts...)
	keys := newClientKeys(t)
	e.addClient(storage.Client{ID: keyClient, Name: "Signed requests", AuthMethod: "private_key_jwt", JWKS: keys.jwks(),
		RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code"}, IDTokenAlg: "ES256", FirstParty: true})
	e.addClient(storage.Client{ID: fapiClient, Name: "Bank", AuthMethod: "private_key_jwt", JWKS: keys.jwks(), Profile: storage.ProfileFAPI2,
		RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code"}, IDTokenAlg: "ES256", FirstParty: true})
	e.addClient(storage.Client{ID: parClient, Name: "Payroll", SecretHash: factor.HashToken("push-secret"), AuthMethod: "client_secret_basic",
		RequirePAR: true, RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code"}, IDTokenAlg: "RS256", FirstParty: true})
	return e, keys
}

// authParams are the parameters of an authorization request of rp, taken
// from the URL it would send the browser to.
func authParams(t *testing.T, r *rp, extra url.Values) (authRequest, url.Values) {
	t.Helper()
	a := r.authURL(extra)
	u, err := url.Parse(a.url)
	if err != nil {
		t.Fatal(err)
	}
	return a, u.Query()
}

// push posts params to the PAR endpoint with Basic client authentication
// (none when clientID is "").
func (e *env) push(params url.Values, clientID, secret string) (int, map[string]any, http.Header) {
	e.t.Helper()
	return e.postForm("/oauth/par", params, clientID, secret)
}

// mustPush pushes and returns the request_uri.
func (e *env) mustPush(params url.Values, clientID, secret string) string {
	e.t.Helper()
	status, out, h := e.push(params, clientID, secret)
	if status != http.StatusCreated {
		e.t.Fatalf("PAR: %d %v", status, out)
	}
	if h.Get("Cache-Control") != "no-store" {
		e.t.Errorf("PAR Cache-Control %q, want no-store", h.Get("Cache-Control"))
	}
	uri, _ := out["request_uri"].(string)
	if !strings.HasPrefix(uri, parURN) || out["expires_in"] != float64(60) {
		e.t.Fatalf("PAR response %v", out)
	}
	return uri
}

func (e *env) pushedURL(clientID, requestURI string, extra url.Values) string {
	q := url.Values{"client_id": {clientID}, "request_uri": {requestURI}}
	for k, v := range extra {
		q[k] = v
	}
	return e.issuer + "/authorize?" + q.Encode()
}

// checkIss requires iss=issuer on an authorization response (RFC 9207 §2).
func checkIss(t *testing.T, e *env, p page) {
	t.Helper()
	if p.redirect == nil {
		t.Fatalf("no redirect to the client: %d %.500s", p.status, p.body)
	}
	if got := p.redirect.Query()["iss"]; len(got) != 1 || got[0] != e.issuer {
		t.Fatalf("iss = %v in %s, want %s", got, p.redirect, e.issuer)
	}
}

// refusedPage requires an error page: no redirect, 400.
func refusedPage(t *testing.T, p page) {
	t.Helper()
	if p.redirect != nil || p.status != http.StatusBadRequest || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
		t.Fatalf("want a 400 error page, got %d redirect=%v", p.status, p.redirect)
	}
}

// requestAt is the stored authorization request a login page is for.
func (e *env) requestAt(p page) storage.AuthRequest {
	e.t.Helper()
	ar, err := e.store.AuthRequestByID(context.Background(), p.hidden("id"), e.clock.Now())
	if err != nil {
		e.t.Fatalf("no stored request behind %s: %v", p.url, err)
	}
	return ar
}

func TestPARHappyPathToTokens(t *testing.T) {
	e, _ := parEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	a, params := authParams(t, r, nil)
	uri := e.mustPush(params, rpClient, e.rpSecret)
	b := e.browser()
	p := b.signIn(b.get(e.pushedURL(rpClient, uri, nil)), alice, alicePass)
	checkIss(t, e, p)
	tok := r.mustExchange(r.code(p, a), a)
	if tok.claims.Sub != "u-"+alice {
		t.Fatalf("sub %q", tok.claims.Sub)
	}
}

func TestPARRequestURIIsSingleUseShortLivedAndBoundToItsClient(t *testing.T) {
	e, _ := parEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	_, params := authParams(t, r, nil)

	t.Run("replayed", func(t *testing.T) {
		uri := e.mustPush(params, rpClient, e.rpSecret)
		if p := e.browser().get(e.pushedURL(rpClient, uri, nil)); !p.has("/login/password") {
			t.Fatalf("first use: %d %s", p.status, p.url)
		}
		refusedPage(t, e.browser().get(e.pushedURL(rpClient, uri, nil)))
	})
	t.Run("expired", func(t *testing.T) {
		uri := e.mustPush(params, rpClient, e.rpSecret)
		e.clock.Advance(61 * time.Second)
		refusedPage(t, e.browser().get(e.pushedURL(rpClient, uri, nil)))
	})
	t.Run("another client's", func(t *testing.T) {
		uri := e.mustPush(params, rpClient, e.rpSecret)
		refusedPage(t, e.browser().get(e.pushedURL(publicClient, uri, nil)))
	})
	t.Run("unknown", func(t *testing.T) {
		refusedPage(t, e.browser().get(e.pushedURL(rpClient, parURN+randomString(), nil)))
	})
	t.Run("without client_id", func(t *testing.T) {
		uri := e.mustPush(params, rpClient, e.rpSecret)
		refusedPage(t, e.browser().get(e.issuer+"/authorize?"+url.Values{"request_uri": {uri}}.Encode()))
	})
}

func TestPARClientAuthentication(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	_, params := authParams(t, r, nil)
	for _, c := range []struct {
		name, id, secret string
	}{
		{"no client authentication", "", ""},
		{"a wrong secret", rpClient, "wrong"},
		{"an unknown client", "nobody", "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := url.Values{}
			for k, v := range params {
				p[k] = v
			}
			if c.id == "" {
				p.Del("client_id")
			}
			status, out, _ := e.push(p, c.id, c.secret)
			if status != http.StatusUnauthorized || out["error"] != "invalid_client" {
				t.Fatalf("%d %v", status, out)
			}
		})
	}
	t.Run("a confidential client naming itself only", func(t *testing.T) {
		status, out, _ := e.push(params, "", "") // params carry client_id=rp
		if status != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("private_key_jwt", func(t *testing.T) {
		kr := e.rp(keyClient, "")
		_, kp := authParams(t, kr, nil)
		for k, v := range keys.assertion(t, e, keyClient, jose.ES256) {
			kp[k] = v
		}
		e.mustPush(kp, "", "")
		// The assertion's jti is spent: the same one is refused.
		status, out, _ := e.push(kp, "", "")
		if status != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("replayed assertion: %d %v", status, out)
		}
	})
}

func TestPARValidatesLikeTheAuthorizationEndpoint(t *testing.T) {
	e, _ := parEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	for _, c := range []struct {
		name, key, value, want string
	}{
		{"request_uri inside a pushed request", "request_uri", parURN + "x", "invalid_request"},
		{"an unregistered redirect_uri", "redirect_uri", "https://evil.example/cb", "invalid_request"},
		{"no openid scope", "scope", "profile", "invalid_scope"},
		{"a plain PKCE method", "code_challenge_method", "plain", "invalid_request"},
		{"malformed claims", "claims", "{not json", "invalid_request"},
		{"form_post", "response_mode", "form_post", "invalid_request"},
		{"prompt=none with login", "prompt", "none login", "invalid_request"},
		{"another client_id", "client_id", publicClient, "invalid_request"},
		{"an unsigned request object", "request", "eyJhbGciOiJub25lIn0.e30.", "invalid_request_object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, params := authParams(t, r, nil)
			params.Set(c.key, c.value)
			status, out, _ := e.push(params, rpClient, e.rpSecret)
			if status != http.StatusBadRequest || out["error"] != c.want {
				t.Fatalf("%d %v, want 400 %s", status, out, c.want)
			}
		})
	}
	t.Run("a public client without PKCE", func(t *testing.T) {
		pr := e.rp(publicClient, "")
		_, params := authParams(t, pr, nil)
		params.Del("code_challenge")
		params.Del("code_challenge_method")
		status, out, _ := e.push(params, "", "")
		if status != http.StatusBadRequest || out["error"] != "invalid_request" {
			t.Fatalf("%d %v", status, out)
		}
	})
}

func TestRequirePARRefusesTheFrontChannel(t *testing.T) {
	t.Run("per client", func(t *testing.T) {
		e, _ := parEnv(t)
		r := e.rp(parClient, "push-secret")
		a := r.authURL(nil)
		p := e.browser().get(a.url)
		if got := r.rpError(p, a); got != "invalid_request" || !strings.Contains(p.redirect.Query().Get("error_description"), "pushed authorization request required") {
			t.Fatalf("error %q (%s)", got, p.redirect.Query().Get("error_description"))
		}
		checkIss(t, e, p)
		// A request object through the browser is still the front channel.
		// Pushed, the same request works.
		a, params := authParams(t, r, nil)
		uri := e.mustPush(params, parClient, "push-secret")
		b := e.browser()
		r.code(b.signIn(b.get(e.pushedURL(parClient, uri, nil)), alice, alicePass), a)
		// Other clients are not affected.
		if p := e.browser().get(e.rp(rpClient, e.rpSecret).authURL(nil).url); !p.has("/login/password") {
			t.Fatalf("rp: %d %v", p.status, p.redirect)
		}
	})
	t.Run("server-wide", func(t *testing.T) {
		e, _ := parEnv(t, func(c *idp.Config) { c.RequirePAR = true })
		r := e.rp(rpClient, e.rpSecret)
		a := r.authURL(nil)
		if got := r.rpError(e.browser().get(a.url), a); got != "invalid_request" {
			t.Fatalf("error %q", got)
		}
		if m := e.discovery(); m["require_pushed_authorization_requests"] != true {
			t.Fatalf("require_pushed_authorization_requests = %v", m["require_pushed_authorization_requests"])
		}
		a, params := authParams(t, r, nil)
		uri := e.mustPush(params, rpClient, e.rpSecret)
		b := e.browser()
		r.code(b.signIn(b.get(e.pushedURL(rpClient, uri, nil)), alice, alicePass), a)
	})
}

// discovery fetches the discovery document.
func (e *env) discovery() map[string]any {
	e.t.Helper()
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func TestDiscoveryPublishesPARAndRequestObjects(t *testing.T) {
	e, _ := parEnv(t)
	m := e.discovery()
	want := map[string]any{
		"pushed_authorization_request_endpoint":          e.issuer + "/oauth/par",
		"require_pushed_authorization_requests":          false,
		"authorization_response_iss_parameter_supported": true,
		"request_parameter_supported":                    true,
		"request_uri_parameter_supported":                false,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	algs, _ := m["request_object_signing_alg_values_supported"].([]any)
	if len(algs) != 4 || algs[0] != "RS256" || algs[1] != "PS256" || algs[2] != "ES256" || algs[3] != "EdDSA" {
		t.Errorf("request_object_signing_alg_values_supported = %v", algs)
	}
	if _, ok := m["acr_values_supported"]; !ok {
		t.Error("the library's members are gone")
	}
}

// requestObject is the claims of a valid request object of clientID
// carrying params.
func requestObject(e *env, clientID string, params url.Values) map[string]any {
	now := e.clock.Now()
	obj := map[string]any{"iss": clientID, "aud": e.issuer, "exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Unix(),
		"iat": now.Unix(), "jti": randomString()}
	for k := range params {
		obj[k] = params.Get(k)
	}
	return obj
}

func TestRequestObjectAtAuthorizeAndPAR(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(keyClient, "")

	t.Run("at /authorize", func(t *testing.T) {
		a, params := authParams(t, r, nil)
		obj := keys.sign(t, jose.ES256, requestObject(e, keyClient, params), map[string]any{"typ": "oauth-authz-req+jwt"})
		// Only the object's parameters count (RFC 9101 §6.3): the query's
		// state is not the one echoed.
		q := url.Values{"client_id": {keyClient}, "request": {obj}, "state": {"from-the-query"}}
		b := e.browser()
		p := b.signIn(b.get(e.issuer+"/authorize?"+q.Encode()), alice, alicePass)
		r.code(p, a)
		checkIss(t, e, p)
	})
	t.Run("at PAR", func(t *testing.T) {
		a, params := authParams(t, r, nil)
		form := keys.assertion(t, e, keyClient, jose.ES256)
		form.Set("client_id", keyClient)
		form.Set("request", keys.sign(t, jose.PS256, requestObject(e, keyClient, params), nil))
		uri := e.mustPush(form, "", "")
		b := e.browser()
		r.code(b.signIn(b.get(e.pushedURL(keyClient, uri, nil)), alice, alicePass), a)
	})
}

func TestBadRequestObjectsAreRefused(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(keyClient, "")
	stranger := newClientKeys(t)
	used := keys.sign(t, jose.ES256, requestObject(e, keyClient, nil), nil) // its jti is spent below

	cases := []struct {
		name string
		obj  func(params url.Values) string
	}{
		{"alg none", func(p url.Values) string { return unsignedRequestObject(requestObject(e, keyClient, p)) }},
		{"not a JWT", func(url.Values) string { return "not-a-jwt" }},
		{"a key the client did not register", func(p url.Values) string {
			return stranger.sign(t, jose.ES256, requestObject(e, keyClient, p), nil)
		}},
		{"expired", func(p url.Values) string {
			o := requestObject(e, keyClient, p)
			o["exp"] = e.clock.Now().Add(-time.Second).Unix()
			return keys.sign(t, jose.ES256, o, nil)
		}},
		{"no exp", func(p url.Values) string {
			o := requestObject(e, keyClient, p)
			delete(o, "exp")
			return keys.sign(t, jose.ES256, o, nil)
		}},
		{"not valid yet", func(p url.Values) string {
			o := requestObject(e, keyClient, p)
			o["nbf"] = e.clock.Now().Add(time.Hour).Unix()
			return keys.sign(t, jose.ES256, o, nil)
		}},
		{"no jti", func(p url.Values) string {
			o := requestObject(e, keyClient, p)
			delete(o, "jti")
			return keys.sign(t, jose.ES256, o, nil)
		}},
		{"a replayed jti", func(url.Values) string { return used }},
		{"aud another issuer", func(p url.Values) string {
			o := requestObject(e, keyClient, p)
			o["aud"] = "https://other.example"
			return keys.sign(t, jose.ES256, o, nil)
		}},
		{"iss another client", func(p url.Values) string {
			o := requestObject(e, keyClient, p)
			o["iss"] = rpClient
			return keys.sign(t, jose.ES256, o, nil)
		}},
		{"client_id claim another client", func(p url.Values) string {
			o := requestObject(e, keyClient, p)
			o["client_id"] = rpClient
			return keys.sign(t, jose.ES256, o, nil)
		}},
		{"a wrong typ", func(p url.Values) string {
			return keys.sign(t, jose.ES256, requestObject(e, keyClient, p), map[string]any{"typ": "at+jwt"})
		}},
	}
	// Spend used's jti once.
	e.browser().get(e.issuer + "/authorize?" + url.Values{"client_id": {keyClient}, "request": {used}}.Encode())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, params := authParams(t, r, nil)
			obj := c.obj(params)
			// The query names a registered redirect_uri and a state: the
			// refusal goes there.
			q := url.Values{"client_id": {keyClient}, "request": {obj}, "redirect_uri": {rpRedirect}, "state": {a.state}}
			before := e.auditCount()
			p := e.browser().get(e.issuer + "/authorize?" + q.Encode())
			if got := r.rpError(p, a); got != "invalid_request_object" {
				t.Fatalf("error %q (%s)", got, p.redirect.Query().Get("error_description"))
			}
			checkIss(t, e, p)
			if e.auditCount() != before {
				t.Error("a refused request object changed the audit log")
			}
			// Without a trustworthy redirect_uri it is a page.
			q.Del("redirect_uri")
			refusedPage(t, e.browser().get(e.issuer+"/authorize?"+q.Encode()))
			// At PAR, 400 invalid_request_object.
			form := keys.assertion(t, e, keyClient, jose.ES256)
			form.Set("request", c.obj(params))
			if status, out, _ := e.push(form, "", ""); status != http.StatusBadRequest || out["error"] != "invalid_request_object" {
				t.Fatalf("PAR: %d %v", status, out)
			}
		})
	}
}

func TestFAPI2ClientFrontChannel(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(fapiClient, "")
	_, params := authParams(t, r, nil)

	t.Run("client_secret_basic is refused", func(t *testing.T) {
		e.addClient(storage.Client{ID: "fapi-secret", Name: "Bank 2", SecretHash: factor.HashToken("bank"), AuthMethod: "client_secret_basic",
			Profile: storage.ProfileFAPI2, RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code"}, FirstParty: true})
		p := url.Values{}
		for k, v := range params {
			p[k] = v
		}
		p.Set("client_id", "fapi-secret")
		if status, out, _ := e.push(p, "fapi-secret", "bank"); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("PAR: %d %v", status, out)
		}
		status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {rpRedirect}}, "fapi-secret", "bank")
		if status != http.StatusUnauthorized && status != http.StatusBadRequest || out["error"] != "invalid_client" {
			t.Fatalf("token: %d %v", status, out)
		}
	})
	t.Run("an RS256 client assertion is refused", func(t *testing.T) {
		form := keys.assertion(t, e, fapiClient, jose.RS256)
		for k, v := range params {
			form[k] = v
		}
		if status, out, _ := e.push(form, "", ""); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("an RS256 request object is refused", func(t *testing.T) {
		form := keys.assertion(t, e, fapiClient, jose.PS256)
		form.Set("request", keys.sign(t, jose.RS256, requestObject(e, fapiClient, params), nil))
		if status, out, _ := e.push(form, "", ""); status != http.StatusBadRequest || out["error"] != "invalid_request_object" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("a request object living over an hour is refused", func(t *testing.T) {
		form := keys.assertion(t, e, fapiClient, jose.ES256)
		o := requestObject(e, fapiClient, params)
		o["exp"] = e.clock.Now().Add(61 * time.Minute).Unix()
		form.Set("request", keys.sign(t, jose.ES256, o, nil))
		if status, out, _ := e.push(form, "", ""); status != http.StatusBadRequest || out["error"] != "invalid_request_object" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("PKCE is required", func(t *testing.T) {
		form := keys.assertion(t, e, fapiClient, jose.ES256)
		for k, v := range params {
			form[k] = v
		}
		form.Del("code_challenge")
		form.Del("code_challenge_method")
		if status, out, _ := e.push(form, "", ""); status != http.StatusBadRequest || out["error"] != "invalid_request" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("the front channel is refused, even with a request object", func(t *testing.T) {
		a := r.authURL(nil)
		if got := r.rpError(e.browser().get(a.url), a); got != "invalid_request" {
			t.Fatalf("error %q", got)
		}
		a, p := authParams(t, r, nil)
		obj := keys.sign(t, jose.ES256, requestObject(e, fapiClient, p), nil)
		q := url.Values{"client_id": {fapiClient}, "request": {obj}}
		if got := r.rpError(e.browser().get(e.issuer+"/authorize?"+q.Encode()), a); got != "invalid_request" {
			t.Fatalf("error %q", got)
		}
	})
	t.Run("PAR with ES256 and PS256 works", func(t *testing.T) {
		for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.PS256} {
			a, p := authParams(t, r, nil)
			form := keys.assertion(t, e, fapiClient, alg)
			for k, v := range p {
				form[k] = v
			}
			uri := e.mustPush(form, "", "")
			b := e.browser()
			r.code(b.signIn(b.get(e.pushedURL(fapiClient, uri, nil)), alice, alicePass), a)
		}
	})
}

// A pushed or signed request's acr_values and claims are the ones decided
// on: the browser cannot edit them (issue 18 §5).
func TestStepUpRequirementSurvivesTheBrowser(t *testing.T) {
	e, keys := parEnv(t)

	t.Run("pushed acr_values=phr, edited in the URL", func(t *testing.T) {
		r := e.rp(rpClient, e.rpSecret)
		_, params := authParams(t, r, url.Values{"acr_values": {"phr"}})
		uri := e.mustPush(params, rpClient, e.rpSecret)
		p := e.browser().get(e.pushedURL(rpClient, uri, url.Values{"acr_values": {"urn:keystep:acr:sfa"}, "claims": {`{"id_token":{"acr":{"values":["urn:keystep:acr:sfa"]}}}`}, "max_age": {"99999"}}))
		ar := e.requestAt(p)
		if len(ar.Requirement.ACR) != 1 || ar.Requirement.ACR[0] != "phr" || ar.MaxAge != nil {
			t.Fatalf("decided on %+v max_age=%v, want phr only", ar.Requirement, ar.MaxAge)
		}
	})
	t.Run("a request object's essential phr, against a query asking sfa", func(t *testing.T) {
		r := e.rp(keyClient, "")
		a, params := authParams(t, r, nil)
		params.Set("claims", `{"id_token":{"acr":{"essential":true,"values":["phr"]}}}`)
		obj := keys.sign(t, jose.ES256, requestObject(e, keyClient, params), nil)
		q := url.Values{"client_id": {keyClient}, "request": {obj}, "acr_values": {"urn:keystep:acr:sfa"}}
		b := e.browser()
		p := b.get(e.issuer + "/authorize?" + q.Encode())
		ar := e.requestAt(p)
		if !ar.Requirement.Essential || len(ar.Requirement.ACR) != 1 || ar.Requirement.ACR[0] != "phr" {
			t.Fatalf("decided on %+v, want essential phr", ar.Requirement)
		}
		// alice has only a password: phr is essential and out of reach.
		if got := r.rpError(b.goBack(b.signIn(p, alice, alicePass)), a); got != "unmet_authentication_requirements" {
			t.Fatalf("error %q, want unmet_authentication_requirements", got)
		}
	})
}

func TestIssOnEveryAuthorizationResponse(t *testing.T) {
	e, _ := parEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	t.Run("success", func(t *testing.T) {
		a := r.authURL(nil)
		b := e.browser()
		p := b.signIn(b.get(a.url), alice, alicePass)
		r.code(p, a)
		checkIss(t, e, p)
	})
	t.Run("an error from /authorize", func(t *testing.T) {
		a := r.authURL(url.Values{"response_mode": {"form_post"}})
		p := e.browser().get(a.url)
		r.rpError(p, a)
		checkIss(t, e, p)
	})
	t.Run("an error from the login", func(t *testing.T) {
		a := r.authURL(url.Values{"prompt": {"none"}})
		p := e.browser().get(a.url)
		if got := r.rpError(p, a); got != "login_required" {
			t.Fatalf("error %q", got)
		}
		checkIss(t, e, p)
	})
	t.Run("a remote request_uri", func(t *testing.T) {
		a := r.authURL(url.Values{"request_uri": {"https://rp.example/request.jwt"}})
		p := e.browser().get(a.url)
		if got := r.rpError(p, a); got != "request_uri_not_supported" {
			t.Fatalf("error %q", got)
		}
		checkIss(t, e, p)
	})
}

// Every algorithm published for client assertions authenticates a client.
func TestClientAssertionAlgorithmsPublishedAreAccepted(t *testing.T) {
	e, keys := parEnv(t)
	algs, _ := e.discovery()["token_endpoint_auth_signing_alg_values_supported"].([]any)
	if len(algs) == 0 {
		t.Fatal("token_endpoint_auth_signing_alg_values_supported is missing")
	}
	r := e.rp(keyClient, "")
	for _, alg := range algs {
		t.Run(alg.(string), func(t *testing.T) {
			_, params := authParams(t, r, nil)
			for k, v := range keys.assertion(t, e, keyClient, jose.SignatureAlgorithm(alg.(string))) {
				params[k] = v
			}
			e.mustPush(params, "", "")
		})
	}
}

// A browser app may push its request: the endpoint answers CORS like the
// token endpoint.
func TestPARAllowsCrossOriginCalls(t *testing.T) {
	e, _ := parEnv(t)
	req, _ := http.NewRequest(http.MethodOptions, e.issuer+"/oauth/par", nil)
	req.Header.Set("Origin", "https://spa.example")
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Any origin, echoed (the authorization endpoint is left out, so the
	// allowed origin is decided per request), and never with credentials.
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://spa.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	pr := e.rp(publicClient, "")
	_, params := authParams(t, pr, nil)
	req, _ = http.NewRequest(http.MethodPost, e.issuer+"/oauth/par", strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://spa.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Access-Control-Allow-Origin") != "https://spa.example" {
		t.Fatalf("push: %d %v", resp.StatusCode, resp.Header)
	}
}

// The redirect URI is checked before anything else, at /authorize and at
// PAR: a loopback URI the library matches loosely (RFC 8252 §7.3 lets only
// the port vary) never receives another check's refusal.
func TestUnregisteredLoopbackNeverGetsAnErrorRedirect(t *testing.T) {
	e, _ := parEnv(t)
	e.addClient(storage.Client{ID: "cli", Name: "Command line", Public: true, Native: true, AuthMethod: "none",
		RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code"},
		IDTokenAlg: "ES256", RequirePKCE: true, FirstParty: true})
	q := url.Values{"client_id": {"cli"}, "redirect_uri": {"https://localhost:5555/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"st"}, "prompt": {"none login"}, "code_challenge": {s256("v")}, "code_challenge_method": {"S256"}}
	if p := e.browser().get(e.issuer + "/authorize?" + q.Encode()); p.redirect != nil || p.status != http.StatusBadRequest {
		t.Fatalf("/authorize: %d, redirect %v", p.status, p.redirect)
	}
	if status, out, _ := e.push(q, "", ""); status != http.StatusBadRequest || out["error"] != "invalid_request" ||
		!strings.Contains(out["error_description"].(string), "redirect_uri") {
		t.Fatalf("PAR: %d %v", status, out)
	}
}
