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
// like "k7dq-m2xp-9fhr". Store only RecoveryCodeMAC of each.
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

// recoveryMACPrefix starts the storage form of every recovery code issued
// since codes are stored under a keyed hash. A stored value without it is
// the legacy form (HashRecoveryCode: 64 hex digits), which is still
// accepted once so codes issued before keep working until used or replaced.
const recoveryMACPrefix = "hmac-sha256:"

// RecoveryCodeMAC returns the storage form of a user's recovery code:
// "hmac-sha256:" and the hex HMAC-SHA256 of the user ID, a zero byte and
// NormalizeRecoveryCode(code), under a key derived from the master key
// (Sealer.MAC, label "keystep/recovery-code/v1").
//
// A plain hash of a ~59-bit code can be searched offline by whoever copies
// the database; the keyed one cannot be checked at all without the master
// key, which is kept apart from the database (DESIGN.md §6). Binding the
// user ID makes one code's value differ between users. The value is still
// deterministic, so storage finds the code by it in one indexed lookup.
func RecoveryCodeMAC(s *Sealer, userID, code string) string {
	msg := make([]byte, 0, len(userID)+1+RecoveryCodeLen)
	msg = append(append(append(msg, userID...), 0), NormalizeRecoveryCode(code)...)
	return recoveryMACPrefix + hex.EncodeToString(s.MAC("keystep/recovery-code/v1", msg))
}

// HashRecoveryCode is the legacy storage form of a recovery code: hex
// SHA-256 of NormalizeRecoveryCode(code), without a key. Codes are no longer
// stored this way (see RecoveryCodeMAC); it remains so that a code stored
// before still verifies, once.
func HashRecoveryCode(code string) string {
	sum := sha256.Sum256([]byte(NormalizeRecoveryCode(code)))
	return hex.EncodeToString(sum[:])
}
