package factor_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/keystep/keystep/login/factor"
)

// phc builds an argon2id PHC string by hand, independently of the package.
func phc(m, t uint32, p uint8, salt []byte, password string, keyLen uint32) string {
	key := argon2.IDKey([]byte(password), salt, t, m, p, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p, enc.EncodeToString(salt), enc.EncodeToString(key))
}

func TestPasswordHashAndVerify(t *testing.T) {
	h := factor.NewTestPasswordHasher()
	const pw = "correct horse battery staple"
	hash, err := h.Hash(pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("Hash = %q, want the test parameters in PHC form", hash)
	}
	parts := strings.Split(hash, "$")
	if salt, _ := base64.RawStdEncoding.DecodeString(parts[4]); len(salt) != 16 {
		t.Errorf("salt is %d bytes, want 16", len(salt))
	}
	if key, _ := base64.RawStdEncoding.DecodeString(parts[5]); len(key) != 32 {
		t.Errorf("key is %d bytes, want 32", len(key))
	}
	again, err := h.Hash(pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if again == hash {
		t.Error("two hashes of the same password are equal; salts are not random")
	}

	tests := []struct {
		name     string
		password string
		want     bool
	}{
		{"the right password verifies", pw, true},
		{"a wrong password does not", "correct horse battery stapler", false},
		{"a prefix of the password does not", pw[:20], false},
		{"the password with a trailing space does not", pw + " ", false},
		{"the password in upper case does not", strings.ToUpper(pw), false},
		{"the empty password does not", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(hash, tt.password)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.want {
				t.Errorf("Verify = %v, want %v", ok, tt.want)
			}
		})
	}
}

func TestPasswordVerifyReadsParametersFromTheHash(t *testing.T) {
	salt := []byte("0123456789abcdef")
	tests := []struct {
		name string
		phc  string
	}{
		{"a hash with more passes and lanes", phc(256, 3, 2, salt, "hunter2hunter2", 32)},
		{"a hash with a longer key", phc(64, 1, 1, salt, "hunter2hunter2", 64)},
		{"a hash with a shorter salt", phc(64, 1, 1, salt[:8], "hunter2hunter2", 32)},
		{"a hash made by the test hasher", mustHash(t, factor.NewTestPasswordHasher(), "hunter2hunter2")},
	}
	hashers := map[string]*factor.PasswordHasher{
		"default": factor.NewPasswordHasher(),
		"test":    factor.NewTestPasswordHasher(),
	}
	for _, tt := range tests {
		for hn, h := range hashers {
			t.Run(tt.name+" verifies with the "+hn+" hasher", func(t *testing.T) {
				ok, err := h.Verify(tt.phc, "hunter2hunter2")
				if err != nil || !ok {
					t.Errorf("Verify(right password) = %v, %v; want true, nil", ok, err)
				}
				ok, err = h.Verify(tt.phc, "hunter3hunter3")
				if err != nil || ok {
					t.Errorf("Verify(wrong password) = %v, %v; want false, nil", ok, err)
				}
			})
		}
	}
}

func mustHash(t *testing.T, h *factor.PasswordHasher, pw string) string {
	t.Helper()
	s, err := h.Hash(pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return s
}

func TestPasswordVerifyRejectsMalformedHashes(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef"))
	key := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	good := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	tests := []struct {
		name string
		phc  string
	}{
		{"an empty string", ""},
		{"a plaintext password", "hunter2"},
		{"a bcrypt hash", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i instead of argon2id", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2 version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version field", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"a missing parallelism parameter", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"parameters out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"a non-numeric parameter", "$argon2id$v=19$m=sixty,t=1,p=1$" + salt + "$" + key},
		{"a negative parameter", "$argon2id$v=19$m=64,t=-1,p=1$" + salt + "$" + key},
		{"zero passes", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"zero lanes", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"more than 255 lanes", "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key},
		{"less than 8 KiB per lane", "$argon2id$v=19$m=15,t=1,p=2$" + salt + "$" + key},
		{"memory above 1 GiB", "$argon2id$v=19$m=2097152,t=1,p=1$" + salt + "$" + key},
		{"an absurd number of passes", "$argon2id$v=19$m=64,t=100000,p=1$" + salt + "$" + key},
		{"a salt that is not base64", "$argon2id$v=19$m=64,t=1,p=1$not*base64$" + key},
		{"a padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + base64.StdEncoding.EncodeToString([]byte("0123456789a")) + "$" + key},
		{"a 4-byte salt", "$argon2id$v=19$m=64,t=1,p=1$" + base64.RawStdEncoding.EncodeToString([]byte("salt")) + "$" + key},
		{"a 4-byte key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + base64.RawStdEncoding.EncodeToString([]byte("keys"))},
		{"an empty key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"a trailing field", good + "$extra"},
		{"text before the first '$'", "x" + good},
	}
	h := factor.NewTestPasswordHasher()
	if ok, err := h.Verify(good, "anything"); err != nil || ok {
		t.Fatalf("Verify(well-formed control hash) = %v, %v; want false, nil", ok, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(tt.phc, "hunter2")
			if ok || !errors.Is(err, factor.ErrMalformedHash) {
				t.Errorf("Verify = %v, %v; want false, ErrMalformedHash", ok, err)
			}
			if !h.NeedsRehash(tt.phc) {
				t.Error("NeedsRehash = false for a malformed hash, want true")
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	b64 := base64.RawStdEncoding.EncodeToString
	salt16, salt8 := b64(make([]byte, 16)), b64(make([]byte, 8))
	key32, key16 := b64(make([]byte, 32)), b64(make([]byte, 16))
	tests := []struct {
		name string
		phc  string
		want bool
	}{
		{"a hash with the OWASP parameters is current", "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32, false},
		{"a hash with a longer salt is current", "$argon2id$v=19$m=19456,t=2,p=1$" + b64(make([]byte, 32)) + "$" + key32, false},
		{"a hash with the test parameters is stale", "$argon2id$v=19$m=64,t=1,p=1$" + salt16 + "$" + key32, true},
		{"a hash with less memory is stale", "$argon2id$v=19$m=12288,t=2,p=1$" + salt16 + "$" + key32, true},
		{"a hash with more memory is stale", "$argon2id$v=19$m=47104,t=1,p=1$" + salt16 + "$" + key32, true},
		{"a hash with more passes is stale", "$argon2id$v=19$m=19456,t=3,p=1$" + salt16 + "$" + key32, true},
		{"a hash with more lanes is stale", "$argon2id$v=19$m=19456,t=2,p=4$" + salt16 + "$" + key32, true},
		{"a hash with a short salt is stale", "$argon2id$v=19$m=19456,t=2,p=1$" + salt8 + "$" + key32, true},
		{"a hash with a short key is stale", "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key16, true},
		{"a malformed hash is stale", "$argon2id$v=19$m=19456$" + salt16 + "$" + key32, true},
	}
	h := factor.NewPasswordHasher()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.NeedsRehash(tt.phc); got != tt.want {
				t.Errorf("NeedsRehash = %v, want %v", got, tt.want)
			}
		})
	}
	th := factor.NewTestPasswordHasher()
	if th.NeedsRehash(mustHash(t, th, "hunter2hunter2")) {
		t.Error("NeedsRehash of the test hasher's own hash = true, want false")
	}
}

func TestVerifyDummyAndConcurrentUse(t *testing.T) {
	h := factor.NewTestPasswordHasher()
	hash := mustHash(t, h, "hunter2hunter2")
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			switch i % 3 {
			case 0:
				h.VerifyDummy("hunter2hunter2")
			case 1:
				if ok, err := h.Verify(hash, "hunter2hunter2"); !ok || err != nil {
					t.Errorf("Verify = %v, %v; want true, nil", ok, err)
				}
			case 2:
				if _, err := h.Hash("hunter2hunter2"); err != nil {
					t.Errorf("Hash: %v", err)
				}
			}
		})
	}
	wg.Wait()
}

func TestValidatePassword(t *testing.T) {
	tests := []struct {
		name string
		pw   string
		want error
	}{
		{"an empty password is too short", "", factor.ErrPasswordTooShort},
		{"seven characters are too short", "abcdefg", factor.ErrPasswordTooShort},
		{"eight characters are enough", "abcdefgh", nil},
		{"a lowercase passphrase needs no digits or symbols", "correct horse battery staple", nil},
		{"spaces count as characters", "a b c d ", nil},
		{"eight Cyrillic characters are enough", "парольпа", nil},
		{"seven accented characters are too short although they take 14 bytes", "ééééééé", factor.ErrPasswordTooShort},
		{"emoji count as one character each", "🔑🔑🔑🔑🔑🔑🔑🔑", nil},
		{"1024 bytes are allowed", strings.Repeat("a", 1024), nil},
		{"1025 bytes are too long", strings.Repeat("a", 1025), factor.ErrPasswordTooLong},
		{"256 four-byte emoji (1024 bytes) are allowed", strings.Repeat("🔑", 256), nil},
		{"257 four-byte emoji (1028 bytes) are too long", strings.Repeat("🔑", 257), factor.ErrPasswordTooLong},
		{"invalid UTF-8 is refused", "abcdefgh\xff", factor.ErrPasswordEncoding},
		{"a truncated multi-byte sequence is refused", "abcdefgh\xe2\x82", factor.ErrPasswordEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := factor.ValidatePassword(tt.pw); !errors.Is(err, tt.want) {
				t.Errorf("ValidatePassword = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestValidatePasswordMessagesAreSentences(t *testing.T) {
	for _, err := range []error{factor.ErrPasswordTooShort, factor.ErrPasswordTooLong, factor.ErrPasswordEncoding} {
		msg := err.Error()
		if strings.Contains(msg, "factor:") || !strings.HasSuffix(msg, ".") || msg[0] < 'A' || msg[0] > 'Z' {
			t.Errorf("message %q is not a user-presentable sentence", msg)
		}
	}
}

func BenchmarkPasswordHash(b *testing.B) {
	h := factor.NewPasswordHasher()
	for b.Loop() {
		if _, err := h.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}
