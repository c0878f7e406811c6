package details

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestChallenge(t *testing.T) {
	d := mustParse(t, payment)
	nonce := bytes.Repeat([]byte{7}, 16)
	c := Challenge(d, nonce)

	// The derivation, spelt out: a mirror (keystep audit verify, a third
	// party) can recompute it.
	h := d.Hash()
	want := sha256.Sum256(append(append([]byte("keystep/authorization_details/webauthn-challenge/v1\x00"), h[:]...), nonce...))
	if !bytes.Equal(c, want[:]) {
		t.Fatalf("Challenge = %x; want %x", c, want)
	}
	if !VerifyChallenge(d, nonce, c) {
		t.Errorf("VerifyChallenge refused its own challenge")
	}
	reordered := mustParse(t, `[{"type":"payment_initiation","creditorName":"Example Supplies Ltd","remittanceInformationUnstructured":"Invoice 2026-117","creditorAccount":{"iban":"GB82WEST12345698765432"},"instructedAmount":{"currency":"EUR","amount":"1250.00"},"actions":["initiate"]}]`)
	if !VerifyChallenge(reordered, nonce, c) {
		t.Errorf("the same details in another key order do not verify")
	}

	otherNonce := bytes.Repeat([]byte{8}, 16)
	for _, tc := range []struct {
		name      string
		d         Details
		nonce, ch []byte
	}{
		{"another amount", mustParse(t, withAmount(`"12500.00"`, "EUR")), nonce, c},
		{"another creditor", mustParse(t, strings.Replace(payment, "Example Supplies Ltd", "Example Supplies Ltd.", 1)), nonce, c},
		{"another nonce (a replay into a new ceremony)", d, otherNonce, c},
		{"a short nonce", d, nonce[:15], Challenge(d, nonce[:15])},
		{"no nonce", d, nil, Challenge(d, nil)},
		{"the bare hash as challenge", d, nonce, h[:]},
		{"a cut challenge", d, nonce, c[:31]},
		{"no challenge", d, nonce, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if VerifyChallenge(tc.d, tc.nonce, tc.ch) {
				t.Errorf("VerifyChallenge accepted it")
			}
		})
	}
	if bytes.Equal(Challenge(d, nonce), Challenge(d, otherNonce)) {
		t.Errorf("the nonce does not change the challenge")
	}
}
