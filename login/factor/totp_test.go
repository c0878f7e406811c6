package factor_test

import (
	"bytes"
	"encoding/base32"
	"image"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/keystep/keystep/login/factor"
)

// rfcSecret is the RFC 6238 Appendix B SHA1 seed "12345678901234567890".
var rfcSecret = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))

// t0 is the middle of a 30-second step.
var t0 = time.Date(2025, 3, 14, 9, 26, 45, 0, time.UTC)

func TestTOTPRFC6238Vectors(t *testing.T) {
	// RFC 6238 Appendix B, SHA1 column; the 8-digit values truncated to their
	// last 6 digits, which is what a 6-digit generator yields.
	tests := []struct {
		unix int64
		want string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"},
	}
	for _, tt := range tests {
		at := time.Unix(tt.unix, 0).UTC()
		t.Run("at "+at.Format(time.RFC3339)+" the code is "+tt.want, func(t *testing.T) {
			got, err := factor.TOTPCode(rfcSecret, at)
			if err != nil {
				t.Fatalf("TOTPCode: %v", err)
			}
			if got != tt.want {
				t.Errorf("TOTPCode = %q, want %q", got, tt.want)
			}
			lib, err := totp.GenerateCodeCustom(rfcSecret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err != nil || lib != tt.want {
				t.Errorf("pquerna totp.GenerateCodeCustom = %q, %v; want %q", lib, err, tt.want)
			}
			step, ok := factor.VerifyTOTP(rfcSecret, tt.want, at)
			if !ok || step != tt.unix/30 {
				t.Errorf("VerifyTOTP = %d, %v; want %d, true", step, ok, tt.unix/30)
			}
		})
	}
}

func TestVerifyTOTPWindow(t *testing.T) {
	cur := t0.Unix() / 30
	tests := []struct {
		name     string
		codeAt   time.Time
		wantOK   bool
		wantStep int64
	}{
		{"the code of the current step is accepted", t0, true, cur},
		{"the code of the previous step is accepted", t0.Add(-30 * time.Second), true, cur - 1},
		{"the code of the next step is accepted", t0.Add(30 * time.Second), true, cur + 1},
		{"a code two steps old is rejected", t0.Add(-60 * time.Second), false, 0},
		{"a code two steps ahead is rejected", t0.Add(60 * time.Second), false, 0},
		{"a code an hour old is rejected", t0.Add(-time.Hour), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, err := factor.TOTPCode(rfcSecret, tt.codeAt)
			if err != nil {
				t.Fatal(err)
			}
			step, ok := factor.VerifyTOTP(rfcSecret, code, t0)
			if ok != tt.wantOK || step != tt.wantStep {
				t.Errorf("VerifyTOTP = %d, %v; want %d, %v", step, ok, tt.wantStep, tt.wantOK)
			}
		})
	}
}

func TestVerifyTOTPAtStepBoundaries(t *testing.T) {
	start := time.Unix(t0.Unix()/30*30, 0).UTC() // first second of t0's step
	code, err := factor.TOTPCode(rfcSecret, start)
	if err != nil {
		t.Fatal(err)
	}
	step := start.Unix() / 30
	tests := []struct {
		name   string
		now    time.Time
		wantOK bool
	}{
		{"one second before the step it is a next-step code", start.Add(-time.Second), true},
		{"thirty-one seconds before the step it is too early", start.Add(-31 * time.Second), false},
		{"on the last second of the following step it is a previous-step code", start.Add(59 * time.Second), true},
		{"sixty seconds after the step began it has expired", start.Add(60 * time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := factor.VerifyTOTP(rfcSecret, code, tt.now)
			if ok != tt.wantOK || (ok && got != step) {
				t.Errorf("VerifyTOTP = %d, %v; want %d, %v", got, ok, step, tt.wantOK)
			}
		})
	}
}

func TestVerifyTOTPInput(t *testing.T) {
	code, err := factor.TOTPCode(rfcSecret, t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		secret string
		code   string
		wantOK bool
	}{
		{"the bare code is accepted", rfcSecret, code, true},
		{"surrounding spaces are trimmed", rfcSecret, "  " + code + "\t\n", true},
		{"a lower-case secret works", strings.ToLower(rfcSecret), code, true},
		{"an empty code is rejected", rfcSecret, "", false},
		{"five digits are rejected", rfcSecret, code[:5], false},
		{"seven digits are rejected", rfcSecret, code + "0", false},
		{"the 8-digit RFC form is rejected", rfcSecret, "00" + code, false},
		{"a space inside the code is rejected", rfcSecret, code[:3] + " " + code[3:], false},
		{"letters are rejected", rfcSecret, "abcdef", false},
		{"a sign is rejected", rfcSecret, "+" + code[1:], false},
		{"Arabic-Indic digits are rejected", rfcSecret, "١٢٣٤٥٦", false},
		{"full-width digits are rejected", rfcSecret, "１２３４５６", false},
		{"a NUL byte is rejected", rfcSecret, code[:5] + "\x00", false},
		{"a 10 kB string is rejected", rfcSecret, strings.Repeat(code, 2000), false},
		{"an invalid secret rejects every code", "not base32!", code, false},
		{"another secret rejects the code", "JBSWY3DPEHPK3PXP", code, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step, ok := factor.VerifyTOTP(tt.secret, tt.code, t0)
			if ok != tt.wantOK {
				t.Errorf("VerifyTOTP = %d, %v; want ok %v", step, ok, tt.wantOK)
			}
			if !ok && step != 0 {
				t.Errorf("rejected code returned step %d, want 0", step)
			}
		})
	}
}

func TestTOTPStep(t *testing.T) {
	tests := []struct {
		name string
		at   time.Time
		want int64
	}{
		{"the epoch is step 0", time.Unix(0, 0), 0},
		{"second 29 is step 0", time.Unix(29, 999_999_999), 0},
		{"second 30 is step 1", time.Unix(30, 0), 1},
		{"t0 is its Unix time over 30", t0, t0.Unix() / 30},
		{"one second before the epoch is step -1", time.Unix(-1, 0), -1},
		{"thirty seconds before the epoch is step -1", time.Unix(-30, 0), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := factor.TOTPStep(tt.at); got != tt.want {
				t.Errorf("TOTPStep = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestNewTOTPKey(t *testing.T) {
	k, err := factor.NewTOTPKey("Keystep Demo", "alice@example.com")
	if err != nil {
		t.Fatalf("NewTOTPKey: %v", err)
	}
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(k.Secret)
	if err != nil || len(seed) != 20 {
		t.Errorf("Secret %q decodes to %d bytes (%v), want 20", k.Secret, len(seed), err)
	}
	u, err := url.Parse(k.URI)
	if err != nil {
		t.Fatalf("URI %q: %v", k.URI, err)
	}
	got := map[string]string{"scheme": u.Scheme, "host": u.Host, "label": u.Path}
	for _, name := range []string{"secret", "issuer", "algorithm", "digits", "period"} {
		got[name] = u.Query().Get(name)
	}
	want := map[string]string{
		"scheme": "otpauth", "host": "totp", "label": "/Keystep Demo:alice@example.com",
		"secret": k.Secret, "issuer": "Keystep Demo", "algorithm": "SHA1", "digits": "6", "period": "30",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("URI %q mismatch (-want +got):\n%s", k.URI, diff)
	}

	code, err := factor.TOTPCode(k.Secret, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := factor.VerifyTOTP(k.Secret, code, t0); !ok {
		t.Error("a new key does not verify its own code")
	}
	k2, err := factor.NewTOTPKey("Keystep Demo", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if k2.Secret == k.Secret {
		t.Error("two new keys have the same secret")
	}
}

func TestNewTOTPKeyRefusesBadLabels(t *testing.T) {
	tests := []struct {
		name, issuer, account string
	}{
		{"an empty issuer", "", "alice"},
		{"an empty account", "Keystep", ""},
		{"a colon in the issuer", "Key:step", "alice"},
		{"a colon in the account", "Keystep", "corp:alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := factor.NewTOTPKey(tt.issuer, tt.account); err == nil {
				t.Error("NewTOTPKey succeeded, want an error")
			}
		})
	}
}

func TestTOTPQRCodePNG(t *testing.T) {
	uri := "otpauth://totp/Keystep:alice@example.com?algorithm=SHA1&digits=6&issuer=Keystep&period=30&secret=" + rfcSecret
	b, err := factor.TOTPQRCodePNG(uri, 256)
	if err != nil {
		t.Fatalf("TOTPQRCodePNG: %v", err)
	}
	if len(b) < 500 {
		t.Errorf("PNG is %d bytes, want a real image", len(b))
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("png.Decode: %v", err)
	}
	if got, want := img.Bounds(), image.Rect(0, 0, 256, 256); got != want {
		t.Errorf("bounds = %v, want %v", got, want)
	}
	dark, light := 0, 0
	for y := range 256 {
		for x := range 256 {
			if r, _, _, _ := img.At(x, y).RGBA(); r < 0x8000 {
				dark++
			} else {
				light++
			}
		}
	}
	if dark < 256*256/10 || light < 256*256/10 {
		t.Errorf("image has %d dark and %d light pixels, want a QR code", dark, light)
	}
}

func TestTOTPQRCodePNGRefusesBadInput(t *testing.T) {
	uri := "otpauth://totp/Keystep:alice?secret=" + rfcSecret + "&issuer=Keystep"
	tests := []struct {
		name string
		uri  string
		size int
	}{
		{"a non-otpauth URI", "https://example.com/", 256},
		{"a zero size", uri, 0},
		{"a negative size", uri, -1},
		{"a size too small for the code", uri, 16},
		{"a huge size", uri, 100000},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := factor.TOTPQRCodePNG(tt.uri, tt.size); err == nil {
				t.Error("TOTPQRCodePNG succeeded, want an error")
			}
		})
	}
}

func BenchmarkVerifyTOTP(b *testing.B) {
	code, err := factor.TOTPCode(rfcSecret, t0)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := factor.VerifyTOTP(rfcSecret, code, t0); !ok {
			b.Fatal("code rejected")
		}
	}
}
