package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// client_secret_post (RFC 6749 §2.3.1): the secret in the body works for a
// client registered with that method (and only for one; see
// TestProtoClientAuthenticationIsTheRegisteredMethodEverywhere).
func TestClientSecretPost(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "poster", Name: "Poster", SecretHash: factor.HashToken("post-secret"),
		AuthMethod: "client_secret_post", GrantTypes: []string{"client_credentials"}, FirstParty: true})
	status, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"poster"}, "client_secret": {"post-secret"}}, "", "")
	if status != 200 || out["access_token"] == nil {
		t.Fatalf("%d %v", status, out)
	}
}

// private_key_jwt (OIDC Core §9): the client proves itself with a signed
// assertion; a wrong key or a replayed, expired assertion is refused.
func TestPrivateKeyJWT(t *testing.T) {
	e := newEnv(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	raw, _ := json.Marshal(set)
	e.addClient(storage.Client{ID: "svc", Name: "Service", AuthMethod: "private_key_jwt", JWKS: string(raw),
		GrantTypes: []string{"client_credentials"}, FirstParty: true})

	assertion := func(k *ecdsa.PrivateKey, exp time.Time) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "k1"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := e.clock.Now()
		tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "svc", Subject: "svc", Audience: jwt.Audience{e.issuer},
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(exp), ID: randomString()}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	call := func(a string) (int, map[string]any) {
		s, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}, "", "")
		return s, out
	}
	if s, out := call(assertion(key, e.clock.Now().Add(time.Minute))); s != 200 || out["access_token"] == nil {
		t.Fatalf("good assertion: %d %v", s, out)
	}
	if s, out := call(assertion(other, e.clock.Now().Add(time.Minute))); s < 400 || out["error"] != "invalid_client" {
		t.Fatalf("wrong key: %d %v", s, out)
	}
	replayed := assertion(key, e.clock.Now().Add(time.Minute))
	if s, _ := call(replayed); s != 200 {
		t.Fatalf("fresh assertion: %d", s)
	}
	if s, out := call(replayed); s < 400 || out["error"] != "invalid_client" {
		t.Fatalf("replayed assertion: %d %v", s, out)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	r.login(e.browser(), nil)
	ops := httptest.NewServer(e.server.OpsHandler())
	defer ops.Close()
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": `keystep_token_grants_total{grant_type="authorization_code",outcome="success"} 1`,
	} {
		resp, err := http.Get(ops.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, want %q in\n%.500s", path, resp.StatusCode, want, body)
		}
		// Operators' endpoints are not the world's (nor the OP library's
		// own probes).
		if resp, err := http.Get(e.issuer + path); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("public %s: %v %v, want 404", path, resp.Status, err)
		}
	}
	if resp, err := http.Get(e.issuer + "/ready"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("public /ready: %v %v, want 404", resp.Status, err)
	}
	resp, _ := http.Get(ops.URL + "/metrics")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`keystep_signins_total{outcome="success"}`, `keystep_http_requests_total{code="302",route="/authorize/callback"}`, "keystep_http_request_duration_seconds_bucket"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}
