package dpop_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp/dpop"
)

// A Prover's proofs pass Verify for the request they name, with the
// prover's thumbprint, and fail for another method, URL, token or nonce.
func TestProverMakesProofsVerifyAccepts(t *testing.T) {
	p, err := dpop.NewProver(mustKey(t), jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	nonces, err := dpop.NewNonces(make([]byte, 32), 0)
	if err != nil {
		t.Fatal(err)
	}
	nonce := nonces.Issue(t0)
	const api = "https://api.example.com/payslips"
	proof, err := p.Proof("GET", api+"?month=3#x", "tok", nonce, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dpop.Verify(proof, dpop.Check{Method: "GET", URL: api, AccessToken: "tok", Now: t0, Nonces: nonces})
	if err != nil {
		t.Fatalf("Verify refused the prover's proof: %v", err)
	}
	if got.JKT != p.JKT || !dpop.ValidJKT(p.JKT) || got.JTI == "" {
		t.Errorf("proof of %q with jti %q, want the prover's %q", got.JKT, got.JTI, p.JKT)
	}
	again, _ := p.Proof("GET", api, "tok", nonce, t0)
	if a, _ := dpop.Verify(again, dpop.Check{Method: "GET", URL: api, AccessToken: "tok", Now: t0}); a.JTI == got.JTI {
		t.Error("two proofs share a jti")
	}
	for name, c := range map[string]dpop.Check{
		"another method":      {Method: "POST", URL: api, AccessToken: "tok", Now: t0},
		"another URL":         {Method: "GET", URL: "https://api.example.com/bank", AccessToken: "tok", Now: t0},
		"another token":       {Method: "GET", URL: api, AccessToken: "stolen", Now: t0},
		"another nonce's key": {Method: "GET", URL: api, AccessToken: "tok", Now: t0, Nonces: mustNonces(t, 1)},
	} {
		if _, err := dpop.Verify(proof, c); err == nil {
			t.Errorf("%s: the proof passed", name)
		}
	}
	// Without an access token there is no ath, so a token cannot be
	// presented with it.
	bare, _ := p.Proof("POST", htu, "", "", t0)
	if _, err := dpop.Verify(bare, dpop.Check{Method: "POST", URL: htu, AccessToken: "tok", Now: t0}); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Errorf("a proof without ath passed with a token: %v", err)
	}
}

func mustNonces(t *testing.T, fill byte) *dpop.Nonces {
	key := make([]byte, 32)
	for i := range key {
		key[i] = fill
	}
	n, err := dpop.NewNonces(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewProverRefusesAKeyThatDoesNotFitTheAlg(t *testing.T) {
	if _, err := dpop.NewProver(mustKey(t), jose.EdDSA); err == nil {
		t.Error("a P-256 key was accepted for EdDSA")
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := dpop.NewProver(ed, jose.EdDSA); err != nil {
		t.Errorf("an Ed25519 key for EdDSA: %v", err)
	}
}
