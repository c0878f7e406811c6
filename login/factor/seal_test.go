package factor_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/login/factor"
)

// testKey is a fixed master key so failures reproduce.
var testKey = bytes.Repeat([]byte{0x42}, 32)

func newTestSealer(t *testing.T) *factor.Sealer {
	t.Helper()
	s, err := factor.NewSealer(testKey)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	s := newTestSealer(t)
	tests := []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{"a TOTP seed bound to its factor ID", []byte("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), []byte("totp:f-123")},
		{"a value with no additional data", []byte("secret"), nil},
		{"an empty value", []byte{}, []byte("ad")},
		{"a large value", bytes.Repeat([]byte("k"), 64<<10), []byte("key:1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := s.Seal(tt.plaintext, tt.ad)
			if want := 1 + 12 + len(tt.plaintext) + 16; len(sealed) != want {
				t.Errorf("sealed length = %d, want %d", len(sealed), want)
			}
			if len(tt.plaintext) > 0 && bytes.Contains(sealed, tt.plaintext) {
				t.Error("sealed value contains the plaintext")
			}
			got, err := s.Open(sealed, tt.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if diff := cmp.Diff(tt.plaintext, got, cmp.Comparer(bytes.Equal)); diff != "" {
				t.Errorf("Open mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	s := newTestSealer(t)
	a, b := s.Seal([]byte("same"), nil), s.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Error("sealing the same value twice gave the same bytes")
	}
}

func TestOpenRejectsTamperedInput(t *testing.T) {
	s := newTestSealer(t)
	plaintext, ad := []byte("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), []byte("totp:f-123")
	sealed := s.Seal(plaintext, ad)
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	other, err := factor.NewSealer(bytes.Repeat([]byte{0x43}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sealer *factor.Sealer
		sealed []byte
		ad     []byte
	}{
		{"other additional data", s, sealed, []byte("totp:f-124")},
		{"missing additional data", s, sealed, nil},
		{"another master key", other, sealed, ad},
		{"a flipped version byte", s, flip(0), ad},
		{"a flipped nonce bit", s, flip(5), ad},
		{"a flipped ciphertext bit", s, flip(1 + 12 + 3), ad},
		{"a flipped tag bit", s, flip(len(sealed) - 1), ad},
		{"a truncated value", s, sealed[:len(sealed)-1], ad},
		{"a value shorter than nonce and tag", s, sealed[:20], ad},
		{"an empty value", s, nil, ad},
		{"extra bytes appended", s, append(bytes.Clone(sealed), 0), ad},
	}
	for _, tt := range tests {
		t.Run(tt.name+" fails to open", func(t *testing.T) {
			got, err := tt.sealer.Open(tt.sealed, tt.ad)
			if !errors.Is(err, factor.ErrOpen) || got != nil {
				t.Errorf("Open = %q, %v; want nil, ErrOpen", got, err)
			}
		})
	}
}

func TestNewSealerKeyLength(t *testing.T) {
	tests := []struct {
		name    string
		keyLen  int
		wantErr bool
	}{
		{"no key is refused", 0, true},
		{"an AES-128 key is refused", 16, true},
		{"an AES-192 key is refused", 24, true},
		{"31 bytes are refused", 31, true},
		{"33 bytes are refused", 33, true},
		{"32 bytes are accepted", 32, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := factor.NewSealer(make([]byte, tt.keyLen))
			if (err != nil) != tt.wantErr {
				t.Errorf("NewSealer(%d bytes) error = %v, want error %v", tt.keyLen, err, tt.wantErr)
			}
		})
	}
}

func TestNewMasterKey(t *testing.T) {
	a, err := factor.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := factor.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || len(b) != 32 {
		t.Errorf("key lengths = %d, %d; want 32", len(a), len(b))
	}
	if bytes.Equal(a, b) {
		t.Error("two master keys are equal")
	}
	if _, err := factor.NewSealer(a); err != nil {
		t.Errorf("NewSealer(NewMasterKey()) = %v", err)
	}
}

func TestMACSeparatesLabelsAndKeys(t *testing.T) {
	k1, _ := factor.NewMasterKey()
	k2, _ := factor.NewMasterKey()
	s1, err := factor.NewSealer(k1)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := factor.NewSealer(k2)
	again, _ := factor.NewSealer(k1)
	a := s1.MAC("a", []byte("data"))
	if len(a) != 32 {
		t.Fatalf("MAC is %d bytes, want 32", len(a))
	}
	if !bytes.Equal(a, again.MAC("a", []byte("data"))) {
		t.Error("the same key, label and data gave another MAC")
	}
	for name, other := range map[string][]byte{
		"another label":       s1.MAC("b", []byte("data")),
		"another master key":  s2.MAC("a", []byte("data")),
		"other data":          s1.MAC("a", []byte("datb")),
		"plain HMAC under k1": hmacSHA256(k1, []byte("data")),
	} {
		if bytes.Equal(a, other) {
			t.Errorf("the MAC equals the one with %s", name)
		}
	}
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}
