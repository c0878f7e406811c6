package details

import (
	"crypto/sha256"
	"crypto/subtle"
)

// ChallengeLabel is the domain-separation prefix of [Challenge]. It makes
// the challenge's purpose part of what the authenticator signs: a challenge
// that verifies under this rule was made to approve authorization details,
// and the same bytes cannot also be read as an ordinary sign-in challenge
// (random bytes the server draws, which approve nothing), as another
// feature's hash of the same details, or as a later version of this rule
// (the v1).
const ChallengeLabel = "keystep/authorization_details/webauthn-challenge/v1\x00"

// MinNonce is the shortest server nonce [VerifyChallenge] accepts.
const MinNonce = 16

// Challenge is the WebAuthn challenge that binds an assertion to d:
//
//	SHA-256(label || Hash(d) || nonce)
//
// with label [ChallengeLabel] and Hash(d) of fixed length, so
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
	s.Write([]byte(ChallengeLabel))
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
