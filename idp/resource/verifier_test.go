package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/resource"
)

func TestVerify(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t)

	otherES, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	impostor := jose.JSONWebKey{Key: otherES, KeyID: "es-1", Algorithm: "ES256"}
	hmacUnderKid := func() string {
		// Key confusion: HMAC keyed with the published EC key's JSON.
		k := is.keys["es-1"]
		pub, _ := json.Marshal(k.Public())
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "es-1"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(signer).Claims(is.claims(nil)).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tampered := func() string {
		tok := is.sign(t, "es-1", "at+jwt", is.claims(nil))
		parts := strings.Split(tok, ".")
		forged := unsigned(map[string]any{}, is.claims(map[string]any{"acr": "phrh"}), "")
		parts[1] = strings.Split(forged, ".")[1]
		return strings.Join(parts, ".")
	}

	tests := []struct {
		name  string
		token string
		want  resource.Claims // checked when the token is accepted
		ok    bool
	}{
		{"a valid ES256 access token passes and its claims are extracted", is.sign(t, "es-1", "at+jwt", is.claims(nil)), wantClaims, true},
		{"an RS256 access token passes", is.sign(t, "rs-1", "at+jwt", is.claims(nil)), wantClaims, true},
		{"an EdDSA access token passes", is.sign(t, "ed-1", "at+jwt", is.claims(nil)), wantClaims, true},
		{"typ at+jwt passes (RFC 9068 §2.1)", is.sign(t, "es-1", "at+jwt", is.claims(nil)), wantClaims, true},
		{"typ application/at+jwt passes", is.sign(t, "es-1", "application/at+jwt", is.claims(nil)), wantClaims, true},
		{"scope as a JSON array is read too", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"scope": []string{"openid", "orders:read"}})), wantClaims, true},
		{"a token expired 20 s ago is inside the leeway", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"exp": t0.Add(-20 * time.Second).Unix()})),
			func() resource.Claims { c := wantClaims; c.Expiry = t0.Add(-20 * time.Second); return c }(), true},
		{"a token without auth_time or acr passes with zero values", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"auth_time": nil, "acr": nil, "amr": nil})),
			func() resource.Claims { c := wantClaims; c.AuthTime, c.ACR, c.AMR = time.Time{}, "", nil; return c }(), true},

		{"a token signed by another key under a known kid is invalid", signWith(t, impostor, "at+jwt", is.claims(nil)), resource.Claims{}, false},
		{"a token whose payload was changed after signing is invalid", tampered(), resource.Claims{}, false},
		{"a token from another issuer is invalid", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"iss": "https://evil.example"})), resource.Claims{}, false},
		{"a token without iss is invalid", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"iss": nil})), resource.Claims{}, false},
		{"a token expired a minute ago is invalid", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"exp": t0.Add(-time.Minute).Unix()})), resource.Claims{}, false},
		{"a token without exp is invalid", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"exp": nil})), resource.Claims{}, false},
		{"a token whose nbf is a minute ahead is invalid", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"nbf": t0.Add(time.Minute).Unix()})), resource.Claims{}, false},
		{"a token issued a minute in the future is invalid", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"iat": t0.Add(time.Minute).Unix()})), resource.Claims{}, false},
		{"alg none is invalid", unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": "es-1"}, is.claims(nil), ""), resource.Claims{}, false},
		{"HS256 keyed with the public key is invalid", hmacUnderKid(), resource.Claims{}, false},
		{"an ES256 token under the RSA key's kid is invalid", signWith(t, jose.JSONWebKey{Key: otherES, KeyID: "rs-1", Algorithm: "ES256"}, "at+jwt", is.claims(nil)), resource.Claims{}, false},
		{"an ID token presented as an access token is invalid", is.sign(t, "rs-1", "JWT", is.claims(map[string]any{"jti": nil, "nonce": "n-1", "at_hash": "x", "azp": "rp-web"})), resource.Claims{}, false},
		{"an access token typed JWT is invalid (RFC 9068 §4)", is.sign(t, "es-1", "JWT", is.claims(nil)), resource.Claims{}, false},
		{"a token with jti but an ID token's nonce is invalid", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"nonce": "n-1"})), resource.Claims{}, false},
		{"a token without client_id is invalid (RFC 9068 §2.2)", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"client_id": nil})), resource.Claims{}, false},
		{"a token without typ is invalid", is.sign(t, "es-1", "", is.claims(nil)), resource.Claims{}, false},
		{"a token of another typ is invalid", is.sign(t, "es-1", "dpop+jwt", is.claims(nil)), resource.Claims{}, false},
		{"a token without kid is invalid", signWith(t, jose.JSONWebKey{Key: is.keys["es-1"].Key, Algorithm: "ES256"}, "at+jwt", is.claims(nil)), resource.Claims{}, false},
		{"an opaque token without introspection is invalid", "opaque-token-1", resource.Claims{}, false},
		{"an empty token is invalid", "", resource.Claims{}, false},
		{"a token with a space is invalid", "abc def", resource.Claims{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token)
			if !tt.ok {
				t.Logf("error: %v", err)
				if !errors.Is(err, resource.ErrInvalidToken) {
					t.Fatalf("Verify() error = %v, want ErrInvalidToken", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Verify() claims mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyAudience(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithAudience(rsClientID))
	tests := []struct {
		name string
		aud  any
		ok   bool
	}{
		{"aud naming the resource server passes", []string{"rp-web", rsClientID}, true},
		{"aud as a single string passes", rsClientID, true},
		{"aud naming only the client is invalid", []string{"rp-web"}, false},
		{"no aud is invalid", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"aud": tt.aud})))
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, resource.ErrInvalidToken) {
				t.Errorf("Verify() error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	is := newIssuer(t)
	v, clk := is.open(t)
	ctx := context.Background()
	// Tokens are issued at the clock's now, so they outlive the clock's jumps.
	token := func(kid string) string {
		t.Helper()
		now := clk.Now()
		return is.sign(t, kid, "at+jwt", is.claims(map[string]any{
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		}))
	}
	verify := func(kid string) error {
		t.Helper()
		_, err := v.Verify(ctx, token(kid))
		return err
	}
	wantHits := func(n int32) {
		t.Helper()
		if got := is.jwksHits.Load(); got != n {
			t.Fatalf("JWKS fetched %d times, want %d", got, n)
		}
	}
	wantHits(1) // Open

	// A new key is picked up with one refetch (once the interval since the
	// fetch in Open is over).
	clk.Advance(31 * time.Second)
	is.publish("es-1", "es-2")
	if err := verify("es-2"); err != nil {
		t.Fatalf("token under the rotated-in key: %v", err)
	}
	wantHits(2)

	// Unknown kids right after do not refetch, however many arrive at once.
	is.publish("es-1", "es-2", "es-3")
	es3 := token("es-3")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := v.Verify(ctx, es3); !errors.Is(err, resource.ErrInvalidToken) {
				t.Errorf("unknown kid inside the refetch interval: error = %v, want ErrInvalidToken", err)
			}
		})
	}
	wg.Wait()
	wantHits(2)

	// Known keys keep working without a fetch.
	if err := verify("es-1"); err != nil {
		t.Fatal(err)
	}
	wantHits(2)

	// After the interval, the next unknown kid refetches once.
	clk.Advance(31 * time.Second)
	if err := verify("es-3"); err != nil {
		t.Fatalf("token under es-3 after the interval: %v", err)
	}
	wantHits(3)

	// A key the issuer withdrew stops verifying once the cached set is an hour old.
	is.publish("es-2", "es-3")
	if err := verify("es-1"); err != nil {
		t.Fatalf("es-1 is still cached: %v", err)
	}
	wantHits(3)
	clk.Advance(time.Hour)
	if err := verify("es-1"); !errors.Is(err, resource.ErrInvalidToken) {
		t.Fatalf("withdrawn key after an hour: error = %v, want ErrInvalidToken", err)
	}
	wantHits(4)

	// A stale set is still used while the issuer is down.
	clk.Advance(time.Hour)
	is.setFailKeys(true)
	if err := verify("es-2"); err != nil {
		t.Fatalf("stale key while the JWKS is down: %v", err)
	}
	wantHits(5)

	// An unknown kid while the JWKS is down is the issuer's failure, not the token's.
	clk.Advance(time.Minute)
	is.publish("es-1", "es-2", "es-3")
	err := verify("es-1")
	if err == nil || errors.Is(err, resource.ErrInvalidToken) {
		t.Fatalf("unknown kid while the JWKS is down: error = %v, want a non-token error", err)
	}
	wantHits(6)
}

func TestOpen(t *testing.T) {
	is := newIssuer(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/keys"})
	}))
	t.Cleanup(other.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(down.Close)

	tests := []struct {
		name   string
		issuer string
		opts   []resource.Option
	}{
		{"discovery naming another issuer fails (Discovery §4.3)", other.URL, nil},
		{"a missing discovery document fails", down.URL, nil},
		{"introspection-only without credentials fails", is.URL, []resource.Option{resource.WithIntrospectionOnly()}},
		{"introspection when discovery lists no endpoint fails", other.URL, []resource.Option{resource.WithIntrospection("a", "b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := resource.Open(context.Background(), tt.issuer, tt.opts...); err == nil {
				t.Error("Open() succeeded, want an error")
			}
		})
	}
}

func TestVerifierKeepsSecretOutOfLogs(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithIntrospection(rsClientID, rsSecret))
	for _, s := range []string{v.String(), v.LogValue().String()} {
		if strings.Contains(s, rsSecret) {
			t.Errorf("%q contains the client secret", s)
		}
	}
}
