package details

import (
	"crypto/sha256"
	"crypto/subtle"
)

// challengeLabel separates transaction challenges from every other use of
// SHA-256 output as a WebAuthn challenge. An ordinary sign-in challenge is
// random bytes; without the label, a random sign-in challenge and a
// transaction challenge live in the same space, and an assertion made for
// one could be presented as the other. The version lets the derivation
// change without a new assertion being read under the old rule.
const challengeLabel = "keystep/authorization_details/webauthn-challenge/v1\x00"

// MinNonce is the shortest server nonce [VerifyChallenge] accepts.
const MinNonce = 16

// Challenge is the WebAuthn challenge that binds an assertion to d:
//
//	SHA-256(label || Hash(d) || nonce)
//
// with a fixed label (see challengeLabel) and Hash(d) of fixed length, so
// the parts cannot be shifted into each other. The authenticator signs
// clientDataJSON, which holds the challenge, so a valid assertion proves
// that this key approved these exact details, and the stored assertion,
// details and nonce let anyone check it later.
//
// nonce is at least [MinNonce] random bytes the server makes for this one
// ceremony and uses once. Without it the challenge would be a function of
// the details alone: an assertion captured for a payment could be replayed
// for the same payment again (a second, identical transfer), and the
// challenge would be known before the ceremony. The nonce makes each
// approval fresh and single-use, as WebAuthn requires of challenges (§13.4.3).
func Challenge(d Details, nonce []byte) []byte {
	h := d.Hash()
	s := sha256.New()
	s.Write([]byte(challengeLabel))
	s.Write(h[:])
	s.Write(nonce)
	return s.Sum(nil)
}

// VerifyChallenge reports, in constant time, whether challenge (from the
// assertion's clientDataJSON) is [Challenge](d, nonce). A nonce shorter
// than [MinNonce] never verifies.
func VerifyChallenge(d Details, nonce, challenge []byte) bool {
	if len(nonce) < MinNonce {
		return false
	}
	return subtle.ConstantTimeCompare(Challenge(d, nonce), challenge) == 1
}
