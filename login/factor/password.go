package factor

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password length limits. NIST SP 800-63B §5.1.1.2: at least 8 characters,
// at least 64 permitted; no composition rules. The upper bound only keeps a
// request from feeding megabytes into the KDF.
const (
	MinPasswordRunes = 8
	MaxPasswordBytes = 1024
)

// Errors returned by ValidatePassword. Unlike other errors, their messages are
// complete sentences meant to be shown to the user as they are.
var (
	ErrPasswordTooShort = errors.New("Your password must be at least 8 characters long.")
	ErrPasswordTooLong  = errors.New("Your password is too long.")
	ErrPasswordEncoding = errors.New("Your password contains characters that cannot be used.")
)

// ErrMalformedHash reports a stored password hash that is not an argon2id PHC
// string this package can verify. It means corrupted or foreign data, not a
// wrong password.
var ErrMalformedHash = errors.New("factor: malformed password hash")

// ValidatePassword checks a new password against the policy of NIST SP 800-63B
// §5.1.1.2: valid UTF-8, at least 8 characters (counted as runes, so non-ASCII
// passwords are not penalised), at most 1024 bytes. There are deliberately no
// composition rules. Blocklist checks (breached and context-specific
// passwords) belong to the caller.
func ValidatePassword(pw string) error {
	if !utf8.ValidString(pw) {
		return ErrPasswordEncoding
	}
	if len(pw) > MaxPasswordBytes {
		return ErrPasswordTooLong
	}
	if utf8.RuneCountInString(pw) < MinPasswordRunes {
		return ErrPasswordTooShort
	}
	return nil
}

// argon2Params are the tunables recorded in a PHC string.
type argon2Params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	saltLen int
	keyLen  int
}

// OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
var defaultParams = argon2Params{memory: 19 * 1024, time: 2, threads: 1, saltLen: 16, keyLen: 32}

// Bounds on parameters read back from a stored hash, so that a corrupted or
// hostile row cannot make one verification allocate gigabytes or spin forever.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
)

// dummySalt is the fixed salt VerifyDummy hashes with. Its value is irrelevant;
// only the work matters.
var dummySalt = []byte("keystep-dummy-sa")

// PasswordHasher hashes and verifies passwords with argon2id (RFC 9106). It is
// safe for concurrent use.
//
// Each hash holds memory-cost KiB of RAM while it runs, so the hasher bounds
// how many run at once: a burst of logins queues instead of exhausting memory.
type PasswordHasher struct {
	params argon2Params
	sem    chan struct{}
}

// NewPasswordHasher returns a hasher with the OWASP-recommended parameters
// (m=19456 KiB, t=2, p=1, 16-byte salt, 32-byte key), allowing at most
// GOMAXPROCS hashes at once: more would only share the CPUs and hold more
// memory (keystep bench's password scenario runs as fast with 2×).
func NewPasswordHasher() *PasswordHasher {
	return newPasswordHasher(defaultParams)
}

// NewTestPasswordHasher returns a hasher with deliberately weak parameters
// (m=64 KiB, t=1, p=1) so that tests run fast. It is for tests only: hashes it
// makes offer almost no resistance to offline guessing. A production hasher
// still verifies them (parameters are read from the hash) and NeedsRehash
// reports them.
func NewTestPasswordHasher() *PasswordHasher {
	return newPasswordHasher(argon2Params{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32})
}

func newPasswordHasher(p argon2Params) *PasswordHasher {
	return &PasswordHasher{params: p, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// MaxMemory is the most memory the hasher's concurrent hashes hold at once,
// in bytes.
func (h *PasswordHasher) MaxMemory() int64 {
	return int64(cap(h.sem)) * int64(h.params.memory) << 10
}

// Hash returns the PHC string of password under a fresh 16-byte random salt:
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>" with unpadded standard base64.
func (h *PasswordHasher) Hash(password string) (string, error) {
	salt := make([]byte, h.params.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("factor: reading salt: %w", err)
	}
	key := h.derive(password, salt, h.params)
	return encodePHC(h.params, salt, key), nil
}

// Verify reports whether password matches the PHC string phc. The parameters
// come from phc, so hashes made with older parameters keep verifying; use
// NeedsRehash after a successful Verify to upgrade them. The keys are compared
// in constant time. A phc that cannot be parsed gives ErrMalformedHash (wrapped)
// and ok == false.
func (h *PasswordHasher) Verify(phc, password string) (ok bool, err error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	got := h.derive(password, salt, p)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyDummy does the work of a Verify against a hash made with the hasher's
// current parameters and discards the result. Call it when the user does not
// exist (or is locked) so that the response takes as long as a real password
// check and timing does not reveal which accounts exist (ASVS 6.3.8).
func (h *PasswordHasher) VerifyDummy(password string) {
	got := h.derive(password, dummySalt, h.params)
	// Compare as Verify does, so the two paths do the same work.
	_ = subtle.ConstantTimeCompare(got, make([]byte, len(got)))
}

// NeedsRehash reports whether phc should be replaced by a fresh Hash of the
// same password: it is malformed or was made with parameters other than the
// hasher's. Callers check it after a successful Verify, when they hold the
// plaintext.
func (h *PasswordHasher) NeedsRehash(phc string) bool {
	p, salt, key, err := parsePHC(phc)
	if err != nil {
		return true
	}
	return p.memory != h.params.memory || p.time != h.params.time || p.threads != h.params.threads ||
		len(salt) < h.params.saltLen || len(key) != h.params.keyLen
}

// derive runs argon2id while holding a slot of the concurrency semaphore.
func (h *PasswordHasher) derive(password string, salt []byte, p argon2Params) []byte {
	h.sem <- struct{}{}
	defer func() { <-h.sem }()
	return argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(p.keyLen))
}

var b64 = base64.RawStdEncoding.Strict()

func encodePHC(p argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parsePHC parses "$argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<key>" (the PHC
// string format as written by the argon2 reference implementation).
func parsePHC(phc string) (p argon2Params, salt, key []byte, err error) {
	fail := func(why string) (argon2Params, []byte, []byte, error) {
		return argon2Params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformedHash, why)
	}
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" {
		return fail("want 5 '$'-separated fields")
	}
	if parts[1] != "argon2id" {
		return fail("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return fail("unsupported argon2 version")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return fail("want parameters m, t and p")
	}
	m, err1 := parseParam(params[0], "m=", maxMemoryKiB)
	t, err2 := parseParam(params[1], "t=", maxTime)
	th, err3 := parseParam(params[2], "p=", 255)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fail(err.Error())
	}
	// RFC 9106 §3.1: memory must be at least 8 KiB per lane.
	if m < 8*th {
		return fail("memory is below 8 KiB per lane")
	}
	salt, err = b64.DecodeString(parts[4])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return fail("bad salt")
	}
	key, err = b64.DecodeString(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return fail("bad key")
	}
	p = argon2Params{memory: m, time: t, threads: uint8(th), saltLen: len(salt), keyLen: len(key)}
	return p, salt, key, nil
}

func parseParam(s, prefix string, max uint64) (uint32, error) {
	v, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, fmt.Errorf("want %q parameter", strings.TrimSuffix(prefix, "="))
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("parameter %s out of range", strings.TrimSuffix(prefix, "="))
	}
	return uint32(n), nil
}
