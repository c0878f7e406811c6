package factor_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/keystep/keystep/login/factor"
)

var recoveryCodeRE = regexp.MustCompile(`^[a-hjkmnp-z2-9]{4}-[a-hjkmnp-z2-9]{4}-[a-hjkmnp-z2-9]{4}$`)

func TestNewRecoveryCodes(t *testing.T) {
	seen := map[string]bool{}
	symbols := map[rune]int{}
	for range 100 {
		codes, err := factor.NewRecoveryCodes(10)
		if err != nil {
			t.Fatalf("NewRecoveryCodes: %v", err)
		}
		if len(codes) != 10 {
			t.Fatalf("got %d codes, want 10", len(codes))
		}
		for _, c := range codes {
			if !recoveryCodeRE.MatchString(c) {
				t.Errorf("code %q does not look like k7dq-m2xp-9fhr", c)
			}
			if seen[c] {
				t.Errorf("code %q was issued twice", c)
			}
			seen[c] = true
			if got := factor.NormalizeRecoveryCode(c); got != strings.ReplaceAll(c, "-", "") {
				t.Errorf("NormalizeRecoveryCode(%q) = %q", c, got)
			}
			for _, r := range strings.ReplaceAll(c, "-", "") {
				symbols[r]++
			}
		}
	}
	// 12,000 symbols over 31: each is expected ~387 times. A missing one
	// means the alphabet mapping is broken.
	if len(symbols) != 31 {
		t.Errorf("codes use %d distinct symbols, want all 31", len(symbols))
	}
	for _, bad := range "01ilo" {
		if symbols[bad] > 0 {
			t.Errorf("ambiguous symbol %q appears in codes", bad)
		}
	}
}

func TestNewRecoveryCodesCount(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantErr bool
	}{
		{"zero codes are refused", 0, true},
		{"a negative count is refused", -1, true},
		{"one code is allowed", 1, false},
		{"a hundred codes are allowed", 100, false},
		{"more than a hundred are refused", 101, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codes, err := factor.NewRecoveryCodes(tt.n)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewRecoveryCodes(%d) error = %v, want error %v", tt.n, err, tt.wantErr)
			}
			if err == nil && len(codes) != tt.n {
				t.Errorf("got %d codes, want %d", len(codes), tt.n)
			}
		})
	}
}

func TestNormalizeRecoveryCode(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"the display form loses its dashes", "k7dq-m2xp-9fhr", "k7dqm2xp9fhr"},
		{"upper case with a space and a dash", "K7DQ M2XP-9FHR", "k7dqm2xp9fhr"},
		{"surrounding and inner white space", " k7dq\tm2xp 9fhr\n", "k7dqm2xp9fhr"},
		{"no separators at all", "K7DQM2XP9FHR", "k7dqm2xp9fhr"},
		{"doubled dashes", "k7dq--m2xp--9fhr", "k7dqm2xp9fhr"},
		{"an empty string", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := factor.NormalizeRecoveryCode(tt.in); got != tt.want {
				t.Errorf("NormalizeRecoveryCode(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHashRecoveryCode(t *testing.T) {
	// hex(SHA-256("k7dqm2xp9fhr")), computed independently.
	const want = "8e5347d6c2b86458bbe385da95967b81e178ca978deb14d6cece179d05e0d5b5"
	for _, in := range []string{"k7dq-m2xp-9fhr", "K7DQ M2XP-9FHR", "k7dqm2xp9fhr"} {
		if got := factor.HashRecoveryCode(in); got != want {
			t.Errorf("HashRecoveryCode(%q) = %s, want %s", in, got, want)
		}
	}
	if factor.HashRecoveryCode("k7dq-m2xp-9fhs") == want {
		t.Error("a different code has the same hash")
	}
}

func TestRecoveryCodeMAC(t *testing.T) {
	key := func(b byte) *factor.Sealer {
		k := make([]byte, factor.MasterKeySize)
		for i := range k {
			k[i] = b
		}
		s, err := factor.NewSealer(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1, s2 := key(1), key(2)
	got := factor.RecoveryCodeMAC(s1, "u1", "k7dq-m2xp-9fhr")
	if !regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`).MatchString(got) {
		t.Fatalf("RecoveryCodeMAC = %q, want hmac-sha256: and 64 hex digits", got)
	}
	for _, in := range []string{"K7DQ M2XP-9FHR", "k7dqm2xp9fhr"} {
		if again := factor.RecoveryCodeMAC(s1, "u1", in); again != got {
			t.Errorf("%q hashes to %s, want the normalised code's %s", in, again, got)
		}
	}
	differs := map[string]string{
		"the plain SHA-256":    factor.HashRecoveryCode("k7dq-m2xp-9fhr"),
		"another master key":   factor.RecoveryCodeMAC(s2, "u1", "k7dq-m2xp-9fhr"),
		"another user":         factor.RecoveryCodeMAC(s1, "u2", "k7dq-m2xp-9fhr"),
		"another code":         factor.RecoveryCodeMAC(s1, "u1", "k7dq-m2xp-9fhs"),
		"user and code joined": factor.RecoveryCodeMAC(s1, "u1k", "7dq-m2xp-9fhr"),
	}
	for name, other := range differs {
		if strings.TrimPrefix(other, "hmac-sha256:") == strings.TrimPrefix(got, "hmac-sha256:") {
			t.Errorf("the MAC equals the one with %s", name)
		}
	}
}
