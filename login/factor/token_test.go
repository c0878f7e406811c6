package factor_test

import (
	"encoding/base64"
	"testing"

	"github.com/keystep/keystep/login/factor"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := factor.NewToken()
		if err != nil {
			t.Fatalf("NewToken: %v", err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != 32 {
			t.Errorf("token %q decodes to %d bytes (%v), want 32", tok, len(raw), err)
		}
		if seen[tok] {
			t.Errorf("token %q issued twice", tok)
		}
		seen[tok] = true
	}
}

func TestHashToken(t *testing.T) {
	tests := []struct {
		name, token, want string
	}{
		// base64url(SHA-256("abc")), FIPS 180-2 test vector, computed independently.
		{"the FIPS 180-2 abc vector", "abc", "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"},
		{"the empty token", "", "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := factor.HashToken(tt.token); got != tt.want {
				t.Errorf("HashToken(%q) = %s, want %s", tt.token, got, tt.want)
			}
		})
	}
}
