package factor

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
)

// recoveryAlphabet is lowercase letters and digits without the look-alikes
// 0/o, 1/l/i: 31 symbols, so each character carries log2(31) ≈ 4.95 bits.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// Recovery code shape: 12 symbols in groups of 4 ("k7dq-m2xp-9fhr"), about
// 59.4 bits of entropy (12 × log2 31), above the project's 50-bit floor for
// look-up secrets (NIST SP 800-63B §5.1.2.1 requires 20).
const (
	RecoveryCodeLen   = 12
	recoveryGroupSize = 4
	// MaxRecoveryCodes bounds NewRecoveryCodes; DESIGN.md §3.1 issues 10.
	MaxRecoveryCodes = 100
)

// NewRecoveryCodes returns n distinct recovery codes (NIST SP 800-63B §5.1.2
// look-up secrets) drawn uniformly from crypto/rand, formatted for display,
// like "k7dq-m2xp-9fhr". Store only HashRecoveryCode of each.
func NewRecoveryCodes(n int) ([]string, error) {
	if n < 1 || n > MaxRecoveryCodes {
		return nil, fmt.Errorf("factor: recovery code count %d outside [1, %d]", n, MaxRecoveryCodes)
	}
	codes := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for len(codes) < n {
		c, err := newRecoveryCode()
		if err != nil {
			return nil, err
		}
		if seen[c] {
			continue // astronomically unlikely, but the set must be distinct
		}
		seen[c] = true
		codes = append(codes, c)
	}
	return codes, nil
}

func newRecoveryCode() (string, error) {
	// Rejection sampling keeps symbols uniform: bytes ≥ 248 (8 × 31) would
	// bias the modulo and are drawn again.
	const limit = 256 - 256%len(recoveryAlphabet)
	var sb strings.Builder
	sb.Grow(RecoveryCodeLen + RecoveryCodeLen/recoveryGroupSize - 1)
	buf := make([]byte, 2*RecoveryCodeLen)
	n := 0
	for n < RecoveryCodeLen {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("factor: reading random code: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			if n > 0 && n%recoveryGroupSize == 0 {
				sb.WriteByte('-')
			}
			sb.WriteByte(recoveryAlphabet[int(b)%len(recoveryAlphabet)])
			if n++; n == RecoveryCodeLen {
				break
			}
		}
	}
	return sb.String(), nil
}

// NormalizeRecoveryCode turns what a user typed into the canonical form that
// is hashed: lower case, with white space and dashes removed, so
// "K7DQ M2XP-9FHR" and "k7dq-m2xp-9fhr" are the same code.
func NormalizeRecoveryCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// HashRecoveryCode returns the storage form of a recovery code: hex SHA-256 of
// NormalizeRecoveryCode(code).
//
// A fast unsalted hash is enough here, unlike for passwords: the codes are
// random, not chosen by people, so there is no dictionary to try and no
// benefit from precomputation across users. Recovering a code from a leaked
// hash still means searching ~2^59 candidates per code. Online guessing is
// bounded by the per-account rate limits (DESIGN.md §6), as NIST SP 800-63B
// §5.1.2.2 requires for look-up secrets below 64 bits. An unsalted hash also
// lets storage find the code by its hash in one indexed lookup.
func HashRecoveryCode(code string) string {
	sum := sha256.Sum256([]byte(NormalizeRecoveryCode(code)))
	return hex.EncodeToString(sum[:])
}
