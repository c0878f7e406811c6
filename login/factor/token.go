package factor

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// tokenSize is the entropy of opaque tokens: 256 bits.
const tokenSize = 32

// NewToken returns a new opaque token (session cookie value, refresh token,
// authorization code, one-time link): 32 bytes from crypto/rand, base64url
// without padding (43 characters). Hand the token to its holder and store only
// HashToken(token).
func NewToken() (string, error) {
	b := make([]byte, tokenSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("factor: reading random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the storage ID of a token: base64url (no padding) of its
// SHA-256. Tokens carry 256 random bits, so a fast hash suffices; storing the
// hash means a read of the database does not yield usable sessions or tokens
// (DESIGN.md §6), and looking a token up by its hash avoids comparing secrets
// in variable time.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
