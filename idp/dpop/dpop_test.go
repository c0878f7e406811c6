package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp/dpop"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const htu = "https://id.example.com/oauth/token"

type proofOpts struct {
	alg    jose.SignatureAlgorithm
	key    crypto.Signer
	jwk    any // header jwk; nil means the public key of key
	typ    string
	claims map[string]any
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func makeProof(t testing.TB, o proofOpts) string {
	t.Helper()
	if o.alg == "" {
		o.alg = jose.ES256
	}
	if o.typ == "" {
		o.typ = "dpop+jwt"
	}
	var jwk any = jose.JSONWebKey{Key: o.key.Public()}
	if o.jwk != nil {
		jwk = o.jwk
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(o.typ)).WithHeader("jwk", jwk)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: o.alg, Key: o.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]any{"jti": "j1", "htm": "POST", "htu": htu, "iat": t0.Unix()}
	for k, v := range o.claims {
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
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	ec := mustKey(t)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	other := mustKey(t)
	nonces, err := dpop.NewNonces(make([]byte, 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	good := nonces.Issue(t0)
	base := dpop.Check{Method: "POST", URL: htu, Now: t0}
	withToken := base
	withToken.AccessToken = "tok"
	withNonce := base
	withNonce.Nonces = nonces

	tests := []struct {
		name  string
		proof func() string
		check dpop.Check
		want  error // nil: valid
	}{
		{"an ES256 proof verifies", func() string { return makeProof(t, proofOpts{key: ec}) }, base, nil},
		{"an ES384 proof verifies", func() string { return makeProof(t, proofOpts{key: ec384, alg: jose.ES384}) }, base, nil},
		{"an RS256 proof verifies", func() string { return makeProof(t, proofOpts{key: rsaKey, alg: jose.RS256}) }, base, nil},
		{"a PS256 proof verifies", func() string { return makeProof(t, proofOpts{key: rsaKey, alg: jose.PS256}) }, base, nil},
		{"an EdDSA proof verifies", func() string { return makeProof(t, proofOpts{key: ed, alg: jose.EdDSA}) }, base, nil},
		{"an empty proof is refused", func() string { return "" }, base, dpop.ErrInvalidProof},
		{"garbage is refused", func() string { return "a.b.c" }, base, dpop.ErrInvalidProof},
		{"an HS256 proof is refused", func() string {
			sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: make([]byte, 32)}, (&jose.SignerOptions{}).WithType("dpop+jwt"))
			jws, _ := sig.Sign([]byte(`{"jti":"j","htm":"POST","htu":"` + htu + `","iat":` + itoa(t0.Unix()) + `}`))
			s, _ := jws.CompactSerialize()
			return s
		}, base, dpop.ErrInvalidProof},
		{"alg none is refused", func() string {
			return b64(`{"typ":"dpop+jwt","alg":"none"}`) + "." + b64(`{"jti":"j","htm":"POST","htu":"`+htu+`","iat":`+itoa(t0.Unix())+`}`) + "."
		}, base, dpop.ErrInvalidProof},
		{"an ES512 proof is refused (not on the list)", func() string {
			k, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
			return makeProof(t, proofOpts{key: k, alg: jose.ES512})
		}, base, dpop.ErrInvalidProof},
		{"a 1024-bit RSA key is refused", func() string { return makeProof(t, proofOpts{key: smallRSA, alg: jose.RS256}) }, base, dpop.ErrInvalidProof},
		{"typ JWT is refused", func() string { return makeProof(t, proofOpts{key: ec, typ: "JWT"}) }, base, dpop.ErrInvalidProof},
		{"a private key in jwk is refused", func() string { return makeProof(t, proofOpts{key: ec, jwk: jose.JSONWebKey{Key: ec}}) }, base, dpop.ErrInvalidProof},
		{"a symmetric jwk is refused", func() string { return makeProof(t, proofOpts{key: ec, jwk: jose.JSONWebKey{Key: make([]byte, 32)}}) }, base, dpop.ErrInvalidProof},
		{"a proof signed by another key than its jwk is refused", func() string { return makeProof(t, proofOpts{key: ec, jwk: jose.JSONWebKey{Key: other.Public()}}) }, base, dpop.ErrInvalidProof},
		{"no jti is refused", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"jti": nil}}) }, base, dpop.ErrInvalidProof},
		{"another htm is refused", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"htm": "GET"}}) }, base, dpop.ErrInvalidProof},
		{"htm in lower case is refused", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"htm": "post"}}) }, base, dpop.ErrInvalidProof},
		{"another htu is refused", func() string {
			return makeProof(t, proofOpts{key: ec, claims: map[string]any{"htu": "https://id.example.com/userinfo"}})
		}, base, dpop.ErrInvalidProof},
		{"another host is refused", func() string {
			return makeProof(t, proofOpts{key: ec, claims: map[string]any{"htu": "https://evil.example.com/oauth/token"}})
		}, base, dpop.ErrInvalidProof},
		{"htu with query, fragment, default port and upper-case host matches", func() string {
			return makeProof(t, proofOpts{key: ec, claims: map[string]any{"htu": "HTTPS://ID.Example.com:443/oauth/token?x=1#f"}})
		}, base, nil},
		{"htu with percent-encoding of an unreserved character matches", func() string {
			return makeProof(t, proofOpts{key: ec, claims: map[string]any{"htu": "https://id.example.com/oauth/%74oken"}})
		}, base, nil},
		{"htu over http is refused for an https endpoint", func() string {
			return makeProof(t, proofOpts{key: ec, claims: map[string]any{"htu": "http://id.example.com/oauth/token"}})
		}, base, dpop.ErrInvalidProof},
		{"no iat is refused", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"iat": nil}}) }, base, dpop.ErrInvalidProof},
		{"iat 61 s ago is refused", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"iat": t0.Unix() - 61}}) }, base, dpop.ErrInvalidProof},
		{"iat 61 s ahead is refused", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"iat": t0.Unix() + 61}}) }, base, dpop.ErrInvalidProof},
		{"iat 60 s ago is accepted", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"iat": t0.Unix() - 60}}) }, base, nil},
		{"iat as a string is refused", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"iat": "1"}}) }, base, dpop.ErrInvalidProof},
		{"a matching ath is accepted", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"ath": dpop.ATH("tok")}}) }, withToken, nil},
		{"no ath with an access token is refused", func() string { return makeProof(t, proofOpts{key: ec}) }, withToken, dpop.ErrInvalidProof},
		{"the ath of another token is refused", func() string {
			return makeProof(t, proofOpts{key: ec, claims: map[string]any{"ath": dpop.ATH("other")}})
		}, withToken, dpop.ErrInvalidProof},
		{"a current nonce is accepted", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"nonce": good}}) }, withNonce, nil},
		{"no nonce when one is required is use_dpop_nonce", func() string { return makeProof(t, proofOpts{key: ec}) }, withNonce, dpop.ErrUseNonce},
		{"a made-up nonce is use_dpop_nonce", func() string { return makeProof(t, proofOpts{key: ec, claims: map[string]any{"nonce": "abc"}}) }, withNonce, dpop.ErrUseNonce},
		{"a nonce two slots old is use_dpop_nonce", func() string {
			return makeProof(t, proofOpts{key: ec, claims: map[string]any{"nonce": nonces.Issue(t0.Add(-2 * time.Minute))}})
		}, withNonce, dpop.ErrUseNonce},
		{"an invalid proof with a good nonce is still invalid", func() string {
			return makeProof(t, proofOpts{key: ec, claims: map[string]any{"nonce": good, "htm": "GET"}})
		}, withNonce, dpop.ErrInvalidProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := dpop.Verify(tt.proof(), tt.check)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.JTI != "j1" || !dpop.ValidJKT(p.JKT) {
					t.Errorf("proof %+v", p)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if got, want := dpop.Code(err), tt.want.Error(); got != want {
				t.Errorf("Code = %q, want %q", got, want)
			}
		})
	}
}

func TestVerifyReturnsTheKeysThumbprint(t *testing.T) {
	k := mustKey(t)
	p, err := dpop.Verify(makeProof(t, proofOpts{key: k}), dpop.Check{Method: "POST", URL: htu, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := dpop.Thumbprint(jose.JSONWebKey{Key: k.Public()})
	if p.JKT != want {
		t.Errorf("JKT %q, want %q", p.JKT, want)
	}
}

// RFC 7638 §3.1's example key and thumbprint.
func TestThumbprintRFC7638(t *testing.T) {
	const jwk = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	var k jose.JSONWebKey
	if err := json.Unmarshal([]byte(jwk), &k); err != nil {
		t.Fatal(err)
	}
	got, err := dpop.Thumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("Thumbprint = %q, want %q", got, want)
	}
}

func TestValidJKT(t *testing.T) {
	for s, want := range map[string]bool{
		"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs":  true,
		"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X":   false,
		"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs=": false,
		"NzbLsXh8uDCcd+6MNwXF4W/7noWXFZAfHkxZsRGC9Xs":  false,
		"": false,
	} {
		if got := dpop.ValidJKT(s); got != want {
			t.Errorf("ValidJKT(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestNonces(t *testing.T) {
	key := make([]byte, 32)
	a, _ := dpop.NewNonces(key, time.Minute)
	b, _ := dpop.NewNonces(key, time.Minute) // another instance, same key
	other, _ := dpop.NewNonces(append(make([]byte, 31), 1), time.Minute)
	n := a.Issue(t0)
	switch {
	case !b.Valid(n, t0):
		t.Error("another instance with the same key refuses the nonce")
	case !b.Valid(n, t0.Add(time.Minute)):
		t.Error("the nonce is refused in the next slot")
	case b.Valid(n, t0.Add(2*time.Minute)):
		t.Error("the nonce is accepted two slots later")
	case other.Valid(n, t0):
		t.Error("a nonce of another key is accepted")
	case hmac.Equal([]byte(n), []byte(a.Issue(t0.Add(time.Minute)))):
		t.Error("the next slot has the same nonce")
	}
	if _, err := dpop.NewNonces(key[:16], 0); err == nil {
		t.Error("a 16-byte key is accepted")
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://A.example:443":      "https://a.example/",
		"http://a.example:80/x?q#f":  "http://a.example/x",
		"http://a.example:8080/%7Ex": "http://a.example:8080/~x",
		"https://[::1]:8443/p":       "https://[::1]:8443/p",
		"ftp://a.example/":           "",
		"/relative":                  "",
		"https://user@a.example/":    "",
	} {
		got, err := dpop.NormalizeURL(in)
		if want == "" {
			if err == nil {
				t.Errorf("NormalizeURL(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func b64(s string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}
