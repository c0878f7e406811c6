package idp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// countingKeySet verifies against one public key and counts the checks.
type countingKeySet struct {
	key   *ecdsa.PublicKey
	mu    sync.Mutex
	calls int
}

func (k *countingKeySet) VerifySignature(_ context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	k.mu.Lock()
	k.calls++
	k.mu.Unlock()
	return jws.Verify(k.key)
}

func TestVerifiedCache(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(payload string) string {
		jws, err := signer.Sign([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	clock := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cache := newVerifiedCache(func() time.Time { return clock })
	next := &countingKeySet{key: &priv.PublicKey}
	v := &op.AccessTokenVerifier{KeySet: next}
	cache.option()(v)
	// verify checks token as presented in a request.
	verify := func(token string) ([]byte, error) {
		t.Helper()
		jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.WithValue(t.Context(), stateKey{}, &reqState{bearer: []string{token}})
		return v.KeySet.VerifySignature(ctx, jws)
	}
	calls := func() int { next.mu.Lock(); defer next.mu.Unlock(); return next.calls }

	good := sign(`{"sub":"alice"}`)
	for range 3 {
		payload, err := verify(good)
		if err != nil || string(payload) != `{"sub":"alice"}` {
			t.Fatalf("good token: %q, %v", payload, err)
		}
	}
	if calls() != 1 {
		t.Errorf("the key set checked the same token %d times within the TTL, want 1", calls())
	}

	// The verified token's signature on another payload is checked, and fails.
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory"}`)) + "." + parts[2]
	if payload, err := verify(forged); err == nil {
		t.Errorf("forged payload verified: %q", payload)
	}
	if calls() != 2 {
		t.Errorf("the forged token was not checked by the key set (%d calls)", calls())
	}
	// A failure is not remembered.
	if _, err := verify(forged); err == nil || calls() != 3 {
		t.Errorf("second forged check: err %v, %d calls", err, calls())
	}

	// The verified token with its header written differently (same fields,
	// another order) does not match the cache, and its signature fails.
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var fields map[string]any
	if err := json.Unmarshal(header, &fields); err != nil {
		t.Fatal(err)
	}
	reordered := `{ "kid": ` + quote(fields["kid"]) + `, "alg": "ES256" }`
	if fields["kid"] == nil {
		reordered = `{ "alg" : "ES256" }`
	}
	variant := base64.RawURLEncoding.EncodeToString([]byte(reordered)) + "." + parts[1] + "." + parts[2]
	if payload, err := verify(variant); err == nil {
		t.Errorf("re-encoded header verified: %q", payload)
	}
	if calls() != 4 {
		t.Errorf("the re-encoded token was not checked by the key set (%d calls)", calls())
	}

	// A token not presented in the request (no bearer in its state) is
	// always checked.
	jws, _ := jose.ParseSigned(good, []jose.SignatureAlgorithm{jose.ES256})
	if _, err := v.KeySet.VerifySignature(t.Context(), jws); err != nil || calls() != 5 {
		t.Errorf("without the request's token: err %v, %d calls", err, calls())
	}

	// After the TTL the token is checked again.
	clock = clock.Add(verifiedTTL)
	if _, err := verify(good); err != nil || calls() != 6 {
		t.Errorf("after the TTL: err %v, %d calls, want a fresh check", err, calls())
	}

	// The cache is bounded.
	for i := range maxVerified + 10 {
		if _, err := verify(sign(`{"n":` + strings.Repeat("1", 1+i%3) + `}`)); err != nil {
			t.Fatal(err)
		}
	}
	cache.mu.Lock()
	n := len(cache.m)
	cache.mu.Unlock()
	if n > maxVerified {
		t.Errorf("cache holds %d tokens, more than %d", n, maxVerified)
	}
}

func quote(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
