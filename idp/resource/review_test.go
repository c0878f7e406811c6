package resource_test

// Attacker review of issue 18 (DPoP in idp/resource), second pass. Every
// test here FAILS on the code it was written against, for the reason in its
// comment; each is a finding for the lead to fix.

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/resource"
)

// FINDING (medium): Verifier.Verify, the exported check an API uses when it
// is not an http.Handler (gRPC, WebSocket upgrade, a queue consumer), returns
// the claims of a DPoP-bound token with no error and no proof, even on a
// verifier opened WithDPoPRequired. Its doc says nothing of the binding: a
// stolen bound token, sent to such an API as a plain token, is a bearer
// token again (issue 18 acceptance: "refused … by idp/resource"). Fix:
// Verify refuses a token with cnf.jkt (ErrInvalidToken, "DPoP-bound: use
// Require or VerifyRequest"), and add VerifyRequest(r) that runs
// checkBinding, for the non-Require callers that have the request.
func TestReviewVerifyRefusesABoundTokenWithoutItsProof(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithDPoPRequired(), resource.WithPublicURL(apiURL))
	alice := newHolder(t)
	bound := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"cnf": map[string]any{"jkt": alice.jkt}}))
	if c, err := v.Verify(context.Background(), bound); err == nil {
		t.Errorf("Verify accepted a DPoP-bound token (cnf.jkt %s) with no proof, on a WithDPoPRequired verifier", c.JKT)
	}
}

// FINDING (medium): without WithPublicURL the htu a proof must name is built
// from the request's Host header, which the sender chooses. The point of htu
// (RFC 9449 §4.3 point 9, §11.1) is that a proof captured at one server
// (logged, or by a malicious API the client also talks to) cannot be spent
// at another: here a proof and its token captured for https://a.example are
// accepted by API B (whose replay cache never saw the jti) simply by sending
// "Host: a.example" to B. Fix: DPoP needs the public URL — Open fails (or
// checkBinding refuses with a clear server error) when a DPoP token arrives
// and WithPublicURL was not given; at the least, never trust Host by
// default.
func TestReviewHTUIsNotTakenFromTheHostHeader(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t) // API B, no WithPublicURL
	alice := newHolder(t)
	bound := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"cnf": map[string]any{"jkt": alice.jkt}}))
	captured := alice.proof(t, "GET", "https://a.example/orders", bound, t0, nil) // made for API A

	ran := false
	h := v.Require(resource.Requirement{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = true }))
	r := httptest.NewRequest(http.MethodGet, "https://b.example/orders", nil)
	r.Host = "a.example" // the attacker's choice
	r.Header.Set("Authorization", "DPoP "+bound)
	r.Header.Set("DPoP", captured)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if ran {
		t.Errorf("API B accepted a proof made for https://a.example because the request said Host: a.example")
	}
}

// FINDING (low/medium, DoS): the default replay cache is one global pool
// that fails closed when full (503 for everyone). Any holder of ONE valid
// bound token — any user of the API — fills it with fresh proofs of their
// own key (100 000 proofs in 2 minutes, ~830 requests/s) and every other
// user's DPoP request is then refused with 503 until entries expire; while
// full, every Spend also scans the whole map under the mutex. Fix: bound the
// entries per key (jkt) — a key that has spent its share fails alone — and
// sweep expired entries incrementally (a time-ordered ring or a heap), not
// by a full scan on each call.
func TestReviewOneKeyCannotFillTheReplayCacheForEveryone(t *testing.T) {
	is := newIssuer(t)
	clk := &clock{t: t0}
	v, _ := is.open(t, resource.WithPublicURL(apiURL), resource.WithReplayCache(resource.NewMemoryReplayCache(clk.Now, 4)))
	alice, mallory := newHolder(t), newHolder(t)
	u := apiURL + "/orders"
	mal := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"cnf": map[string]any{"jkt": mallory.jkt}, "sub": "user-mallory"}))
	for range 4 {
		if w, ran := serveDPoP(t, v, resource.Requirement{}, "DPoP "+mal, mallory.proof(t, "GET", u, mal, t0, nil)); !ran {
			t.Fatalf("mallory's own proofs: %d", w.Code)
		}
	}
	good := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"cnf": map[string]any{"jkt": alice.jkt}}))
	if w, ran := serveDPoP(t, v, resource.Requirement{}, "DPoP "+good, alice.proof(t, "GET", u, good, t0, nil)); !ran {
		t.Errorf("alice's first request after mallory filled the replay cache: %d, want it served", w.Code)
	}
}

// FINDING (low, interop): a proof typed "application/dpop+jwt" is refused.
// RFC 7515 §4.1.9: typ is a media type, case-insensitive, and
// "application/" may be present or omitted; the access-token side of this
// library already accepts "application/at+jwt" and any case, the proof side
// compares "dpop+jwt" exactly. Fix: in dpop.Verify compare
// strings.TrimPrefix(strings.ToLower(typ), "application/") == "dpop+jwt".
func TestReviewProofTypIsAMediaType(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithPublicURL(apiURL))
	alice := newHolder(t)
	bound := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"cnf": map[string]any{"jkt": alice.jkt}}))
	for _, typ := range []string{"application/dpop+jwt", "DPoP+JWT"} {
		proof := proofTyped(t, alice.key, typ, map[string]any{"jti": "typ-" + typ, "htm": "GET", "htu": apiURL + "/orders", "iat": t0.Unix(), "ath": dpop.ATH(bound)})
		if w, ran := serveDPoP(t, v, resource.Requirement{}, "DPoP "+bound, proof); !ran {
			t.Errorf("proof with typ %q refused: %d %s", typ, w.Code, w.Header().Get("WWW-Authenticate"))
		}
	}
}

func proofTyped(t *testing.T, key *ecdsa.PrivateKey, typ string, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("jwk", jose.JSONWebKey{Key: key.Public()}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}
