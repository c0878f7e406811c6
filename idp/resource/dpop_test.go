package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/resource"
)

// holder is a client's DPoP key.
type holder struct {
	key *ecdsa.PrivateKey
	jkt string
}

func newHolder(t *testing.T) holder {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(jose.JSONWebKey{Key: k.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return holder{key: k, jkt: jkt}
}

var jtiSeq int

// proof makes a DPoP proof by h, edited like claims (nil deletes).
func (h holder) proof(t *testing.T, method, htu, token string, iat time.Time, edit map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: h.key},
		(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: h.key.Public()}))
	if err != nil {
		t.Fatal(err)
	}
	jtiSeq++
	c := map[string]any{"jti": "jti-" + string(rune('a'+jtiSeq%26)) + time.Duration(jtiSeq).String(), "htm": method, "htu": htu, "iat": iat.Unix()}
	if token != "" {
		c["ath"] = dpop.ATH(token)
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

const apiURL = "https://api.example.com"

// serveDPoP runs Require on GET apiURL/orders with Authorization auth and
// DPoP proof ("" for none).
func serveDPoP(t *testing.T, v *resource.Verifier, req resource.Requirement, auth, proof string) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	ran := false
	h := v.Require(req, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		w.WriteHeader(http.StatusNoContent)
	}))
	r := httptest.NewRequest(http.MethodGet, "http://internal:8080/orders?page=2", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	if proof != "" {
		r.Header.Set("DPoP", proof)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, ran
}

func TestRequireDPoP(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithPublicURL(apiURL+"/"))
	alice, mallory := newHolder(t), newHolder(t)
	bound := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"cnf": map[string]any{"jkt": alice.jkt}}))
	plain := is.sign(t, "es-1", "at+jwt", is.claims(nil))
	u := apiURL + "/orders"
	replayed := alice.proof(t, "GET", u, bound, t0, nil)
	if w, ran := serveDPoP(t, v, resource.Requirement{}, "DPoP "+bound, replayed); !ran {
		t.Fatalf("first use of a proof refused: %d %s", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	mfa := resource.Requirement{ACR: []string{"phr"}, MaxAge: 5 * time.Minute}

	tests := []struct {
		name       string
		req        resource.Requirement
		auth       string
		proof      string
		wantStatus int
		wantHeader string
	}{
		{"a bound token with a proof of its key reaches the handler", resource.Requirement{}, "DPoP " + bound, alice.proof(t, "GET", u, bound, t0, nil), http.StatusNoContent, ""},
		{"a bearer token still works where DPoP is optional", resource.Requirement{}, "Bearer " + plain, "", http.StatusNoContent, ""},
		{"a bound token sent as Bearer is refused", resource.Requirement{}, "Bearer " + bound, "", http.StatusUnauthorized,
			`DPoP error="invalid_token", error_description="The access token is DPoP-bound and needs the DPoP scheme", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"a bound token without a proof is refused", resource.Requirement{}, "DPoP " + bound, "", http.StatusUnauthorized,
			`DPoP error="invalid_dpop_proof", error_description="One DPoP proof is required", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"a bound token with a proof of another key is refused", resource.Requirement{}, "DPoP " + bound, mallory.proof(t, "GET", u, bound, t0, nil), http.StatusUnauthorized,
			`DPoP error="invalid_token", error_description="The DPoP proof is not signed by the key the access token is bound to", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"an unbound token sent as DPoP is refused", resource.Requirement{}, "DPoP " + plain, alice.proof(t, "GET", u, plain, t0, nil), http.StatusUnauthorized,
			`DPoP error="invalid_token", error_description="The access token is not DPoP-bound", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"a replayed proof is refused", resource.Requirement{}, "DPoP " + bound, replayed, http.StatusUnauthorized,
			`DPoP error="invalid_dpop_proof", error_description="The DPoP proof was already used", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"a proof for another method is refused", resource.Requirement{}, "DPoP " + bound, alice.proof(t, "POST", u, bound, t0, nil), http.StatusUnauthorized,
			`DPoP error="invalid_dpop_proof", error_description="The DPoP proof is invalid", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"a proof for the internal URL is refused (htu is the public URL)", resource.Requirement{}, "DPoP " + bound, alice.proof(t, "GET", "http://internal:8080/orders", bound, t0, nil), http.StatusUnauthorized,
			`DPoP error="invalid_dpop_proof", error_description="The DPoP proof is invalid", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"a proof for another token (ath) is refused", resource.Requirement{}, "DPoP " + bound, alice.proof(t, "GET", u, plain, t0, nil), http.StatusUnauthorized,
			`DPoP error="invalid_dpop_proof", error_description="The DPoP proof is invalid", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"a proof two minutes old is refused", resource.Requirement{}, "DPoP " + bound, alice.proof(t, "GET", u, bound, t0.Add(-2*time.Minute), nil), http.StatusUnauthorized,
			`DPoP error="invalid_dpop_proof", error_description="The DPoP proof is invalid", algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"step-up on a DPoP request is a DPoP challenge with acr_values and max_age", mfa, "DPoP " + bound, alice.proof(t, "GET", u, bound, t0, nil), http.StatusUnauthorized,
			`DPoP error="insufficient_user_authentication", error_description="The access token's authentication context class is not accepted here", acr_values="phr", max_age=300, algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"step-up on a bearer request stays a Bearer challenge", mfa, "Bearer " + plain, "", http.StatusUnauthorized,
			`Bearer error="insufficient_user_authentication", error_description="The access token's authentication context class is not accepted here", acr_values="phr", max_age=300`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ran := serveDPoP(t, v, tt.req, tt.auth, tt.proof)
			if w.Code != tt.wantStatus || ran != (tt.wantStatus == http.StatusNoContent) {
				t.Fatalf("status %d (handler ran %v), want %d; WWW-Authenticate %s", w.Code, ran, tt.wantStatus, w.Header().Get("WWW-Authenticate"))
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.wantHeader {
				t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, tt.wantHeader)
			}
			if tt.wantHeader != "" {
				if _, err := resource.ParseChallenge(w.Header().Get("WWW-Authenticate")); err != nil {
					t.Errorf("ParseChallenge: %v", err)
				}
			}
		})
	}
}

func TestRequireDPoPRequired(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithDPoPRequired(), resource.WithPublicURL(apiURL))
	plain := is.sign(t, "es-1", "at+jwt", is.claims(nil))
	const algs = `algs="ES256 ES384 PS256 RS256 EdDSA"`
	w, ran := serveDPoP(t, v, resource.Requirement{}, "Bearer "+plain, "")
	if ran || w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != `DPoP error="invalid_token", error_description="This API accepts DPoP-bound tokens only", `+algs {
		t.Errorf("bearer token where DPoP is required: %d %s", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	w, _ = serveDPoP(t, v, resource.Requirement{}, "", "")
	if got := w.Header().Get("WWW-Authenticate"); got != "DPoP "+algs {
		t.Errorf("no token where DPoP is required: WWW-Authenticate %s", got)
	}
}

func TestRequireDPoPNonce(t *testing.T) {
	is := newIssuer(t)
	nonces, err := dpop.NewNonces(make([]byte, 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := is.open(t, resource.WithPublicURL(apiURL), resource.WithDPoPNonces(nonces))
	alice := newHolder(t)
	bound := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"cnf": map[string]any{"jkt": alice.jkt}}))
	u := apiURL + "/orders"
	w, ran := serveDPoP(t, v, resource.Requirement{}, "DPoP "+bound, alice.proof(t, "GET", u, bound, t0, nil))
	nonce := w.Header().Get("DPoP-Nonce")
	if ran || w.Code != http.StatusUnauthorized || nonce == "" ||
		w.Header().Get("WWW-Authenticate") != `DPoP error="use_dpop_nonce", error_description="The DPoP proof is invalid", algs="ES256 ES384 PS256 RS256 EdDSA"` {
		t.Fatalf("proof without a nonce: %d, nonce %q, %s", w.Code, nonce, w.Header().Get("WWW-Authenticate"))
	}
	if w, ran := serveDPoP(t, v, resource.Requirement{}, "DPoP "+bound, alice.proof(t, "GET", u, bound, t0, map[string]any{"nonce": nonce})); !ran {
		t.Errorf("proof with the nonce refused: %d %s", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

func TestRequireDPoPIntrospected(t *testing.T) {
	is := newIssuer(t)
	alice, mallory := newHolder(t), newHolder(t)
	is.setOpaque("opaque-bound", is.introspected(map[string]any{"token_type": "DPoP", "cnf": map[string]any{"jkt": alice.jkt}}))
	is.setOpaque("opaque-dpop-no-cnf", is.introspected(map[string]any{"token_type": "DPoP"}))
	v, _ := is.open(t, resource.WithIntrospection(rsClientID, rsSecret), resource.WithPublicURL(apiURL))
	u := apiURL + "/orders"
	if w, ran := serveDPoP(t, v, resource.Requirement{}, "DPoP opaque-bound", alice.proof(t, "GET", u, "opaque-bound", t0, nil)); !ran {
		t.Errorf("introspected bound token with its key refused: %d %s", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if _, ran := serveDPoP(t, v, resource.Requirement{}, "DPoP opaque-bound", mallory.proof(t, "GET", u, "opaque-bound", t0, nil)); ran {
		t.Error("introspected bound token with another key accepted")
	}
	if _, ran := serveDPoP(t, v, resource.Requirement{}, "Bearer opaque-bound", ""); ran {
		t.Error("introspected bound token accepted as Bearer")
	}
	if _, err := v.Verify(context.Background(), "opaque-dpop-no-cnf"); err == nil {
		t.Error("token_type DPoP without cnf verified")
	}
}

func TestMemoryReplayCache(t *testing.T) {
	clk := &clock{t: t0}
	c := resource.NewMemoryReplayCache(clk.Now, 2)
	ctx := context.Background()
	spend := func(k string) (bool, error) { return c.Spend(ctx, k, clk.Now().Add(time.Minute)) }
	if ok, _ := spend("a"); !ok {
		t.Fatal("a new key is not fresh")
	}
	if ok, _ := spend("a"); ok {
		t.Error("a spent key is fresh again")
	}
	clk.Advance(time.Minute)
	if ok, _ := spend("a"); !ok {
		t.Error("an expired key is still spent")
	}

	// Full: the holder (proof key) with the most keys loses its oldest.
	c = resource.NewMemoryReplayCache(clk.Now, 2)
	_, _ = spend("mallory\x00j1")
	_, _ = spend("mallory\x00j2")
	if ok, err := spend("alice\x00j1"); !ok || err != nil {
		t.Fatalf("alice's key in a cache mallory filled: %v, %v", ok, err)
	}
	if ok, _ := spend("mallory\x00j2"); ok {
		t.Error("mallory's newer key was forgotten instead of his oldest")
	}
	if ok, _ := spend("alice\x00j1"); ok {
		t.Error("alice's key was forgotten")
	}
}
