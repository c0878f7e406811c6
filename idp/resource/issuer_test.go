package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keystep/keystep/idp/resource"
)

// t0 is the fixed "now" of every test.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const (
	rsClientID = "orders-api"
	// rsSecret has characters that RFC 6749 §2.3.1 form-encoding changes.
	rsSecret = "s3cret:/+ %"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// issuer is a fake Keystep: discovery, JWKS and introspection, nothing else.
type issuer struct {
	*httptest.Server
	keys map[string]jose.JSONWebKey // private keys by kid, published or not

	mu         sync.Mutex
	published  []string                  // kids in the JWKS
	opaque     map[string]map[string]any // opaque token → introspection response
	failKeys   bool                      // /keys answers 500
	jwksHits   atomic.Int32
	introHits  atomic.Int32
	introCalls []url.Values
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{keys: map[string]jose.JSONWebKey{}, opaque: map[string]map[string]any{}}
	is.addKey(t, "es-1", jose.ES256)
	is.addKey(t, "rs-1", jose.RS256)
	is.addKey(t, "ed-1", jose.EdDSA)
	is.addKey(t, "es-2", jose.ES256) // rotated in later
	is.addKey(t, "es-3", jose.ES256) // rotated in later
	is.published = []string{"es-1", "rs-1", "ed-1"}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                 is.URL,
			"jwks_uri":               is.URL + "/keys",
			"introspection_endpoint": is.URL + "/introspect",
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		if is.failKeys {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var set jose.JSONWebKeySet
		for _, kid := range is.published {
			k := is.keys[kid]
			set.Keys = append(set.Keys, k.Public())
		}
		writeJSON(w, set)
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		is.introHits.Add(1)
		id, secret, _ := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if id != rsClientID || secret != rsSecret {
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(w, map[string]any{"error": "invalid_client"})
			return
		}
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		is.mu.Lock()
		defer is.mu.Unlock()
		is.introCalls = append(is.introCalls, r.PostForm)
		resp, ok := is.opaque[r.PostForm.Get("token")]
		if !ok {
			resp = map[string]any{"active": false}
		}
		writeJSON(w, resp)
	})
	is.Server = httptest.NewServer(mux)
	t.Cleanup(is.Close)
	return is
}

func (is *issuer) addKey(t *testing.T, kid string, alg jose.SignatureAlgorithm) {
	t.Helper()
	var key any
	var err error
	switch alg {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	is.keys[kid] = jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(alg), Use: "sig"}
}

func (is *issuer) publish(kids ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.published = kids
}

func (is *issuer) setOpaque(token string, resp map[string]any) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.opaque[token] = resp
}

func (is *issuer) setFailKeys(fail bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.failKeys = fail
}

// claims is what Keystep puts in a JWT access token for rp-web, issued at
// t0 after an mfa login two minutes earlier. edit changes it; a nil value
// deletes the claim.
func (is *issuer) claims(edit map[string]any) map[string]any {
	c := map[string]any{
		"iss":       is.URL,
		"sub":       "user-carol",
		"aud":       []string{"rp-web"},
		"exp":       t0.Add(15 * time.Minute).Unix(),
		"iat":       t0.Unix(),
		"nbf":       t0.Unix(),
		"jti":       "at-1",
		"client_id": "rp-web",
		"scope":     "openid orders:read",
		"acr":       "urn:keystep:acr:mfa",
		"amr":       []string{"mfa", "otp", "pwd"},
		"auth_time": t0.Add(-2 * time.Minute).Unix(),
		"sid":       "sess-1",
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// wantClaims is resource.Claims for is.claims(nil).
var wantClaims = resource.Claims{
	Subject:   "user-carol",
	ClientID:  "rp-web",
	ACR:       "urn:keystep:acr:mfa",
	SessionID: "sess-1",
	AMR:       []string{"mfa", "otp", "pwd"},
	Scope:     []string{"openid", "orders:read"},
	AuthTime:  t0.Add(-2 * time.Minute),
	Expiry:    t0.Add(15 * time.Minute),
}

// sign signs claims with the issuer's key kid, with header typ (none if "").
func (is *issuer) sign(t *testing.T, kid, typ string, claims map[string]any) string {
	t.Helper()
	return signWith(t, is.keys[kid], typ, claims)
}

func signWith(t *testing.T, key jose.JSONWebKey, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsigned builds a compact JWS by hand, for algs go-jose will not sign with.
func unsigned(header, claims map[string]any, sig string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + "." + sig
}

// open opens a Verifier on is with a clock at t0.
func (is *issuer) open(t *testing.T, opts ...resource.Option) (*resource.Verifier, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	v, err := resource.Open(context.Background(), is.URL, append([]resource.Option{
		resource.WithHTTPClient(is.Client()),
		resource.WithClock(clk.Now),
	}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return v, clk
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// introspected is Keystep's introspection answer for an opaque token that
// carries the same grant as is.claims(nil), edited like claims.
func (is *issuer) introspected(edit map[string]any) map[string]any {
	c := is.claims(nil)
	c["active"] = true
	c["token_type"] = "Bearer"
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}
