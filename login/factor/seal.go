package factor

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
)

// MasterKeySize is the length of the master key: AES-256.
const MasterKeySize = 32

// sealVersion is the first byte of every sealed value. It names the format
// (AES-256-GCM, random 96-bit nonce prefixed) so that a later format or key
// scheme can be introduced without guessing what old rows hold.
const sealVersion byte = 1

// ErrOpen reports a sealed value that cannot be opened: wrong key, wrong
// additional data, tampering, truncation or an unknown format. The cases are
// deliberately not told apart.
var ErrOpen = errors.New("factor: cannot open sealed value")

// Sealer encrypts secrets at rest (TOTP seeds, private signing keys) with
// AES-256-GCM under the master key (DESIGN.md §6). It is safe for concurrent
// use.
//
// Nonces are random 96-bit values, which is safe for far more values than a
// Keystep deployment seals under one key (NIST SP 800-38D §8.3 caps random
// nonces at 2^32 messages per key).
type Sealer struct {
	aead cipher.AEAD
	prk  []byte // HKDF-Extract of the master key, for MAC's derived keys
}

// NewSealer returns a Sealer for a 32-byte master key.
func NewSealer(masterKey []byte) (*Sealer, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("factor: master key is %d bytes, want %d", len(masterKey), MasterKeySize)
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("factor: %w", err)
	}
	// NewGCMWithRandomNonce draws a fresh nonce per Seal and prefixes it to
	// the ciphertext, so no caller can reuse one by mistake.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("factor: %w", err)
	}
	prk, err := hkdf.Extract(sha256.New, masterKey, []byte("keystep"))
	if err != nil {
		return nil, fmt.Errorf("factor: %w", err)
	}
	return &Sealer{aead: aead, prk: prk}, nil
}

// Seal encrypts and authenticates plaintext, binding it to additionalData,
// which Open must be given again. Use additionalData to tie the value to where
// it is stored (for example "totp:" + factor ID) so a sealed value copied to
// another row does not open. The result is version(1) || nonce(12) ||
// ciphertext || tag(16).
func (s *Sealer) Seal(plaintext, additionalData []byte) []byte {
	out := make([]byte, 1, 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	return s.aead.Seal(out, nil, plaintext, versionedAD(sealVersion, additionalData))
}

// Open decrypts a value made by Seal with the same key and additionalData. Any
// failure gives ErrOpen.
func (s *Sealer) Open(sealed, additionalData []byte) ([]byte, error) {
	if len(sealed) < 1+s.aead.NonceSize()+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrOpen
	}
	plaintext, err := s.aead.Open(nil, nil, sealed[1:], versionedAD(sealed[0], additionalData))
	if err != nil {
		return nil, ErrOpen
	}
	return plaintext, nil
}

// MAC returns HMAC-SHA256 of data under a key derived from the master key
// for label (HKDF-SHA256, RFC 5869, label as the info): each use gets a key
// of its own (domain separation), and no derived key reveals the master key
// or another one. Without the master key, a stored MAC cannot be checked
// against guesses.
func (s *Sealer) MAC(label string, data []byte) []byte {
	key, err := hkdf.Expand(sha256.New, s.prk, label, sha256.Size)
	if err != nil {
		panic("factor: HKDF-Expand of 32 bytes failed: " + err.Error()) // only for lengths over 255×32
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// LogValue keeps the key out of logs.
func (s *Sealer) LogValue() slog.Value { return slog.StringValue("factor.Sealer{REDACTED}") }

// versionedAD authenticates the version byte along with the caller's data, so
// that flipping it cannot make Open take another path.
func versionedAD(version byte, ad []byte) []byte {
	return append([]byte{version}, ad...)
}

// NewMasterKey returns a fresh random master key.
func NewMasterKey() ([]byte, error) {
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("factor: reading random key: %w", err)
	}
	return key, nil
}
