package factor

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (DESIGN.md §3.1): the ones every authenticator app supports.
const (
	TOTPPeriod     = 30 // seconds per step (RFC 6238 §5.2 recommends 30)
	TOTPDigits     = 6
	TOTPSkew       = 1  // steps accepted either side of now (NIST SP 800-63B §5.1.4.2 drift allowance)
	totpSecretSize = 20 // bytes; RFC 4226 §4 recommends 160 bits
)

var totpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPKey is a freshly generated authenticator-app secret, shown once during
// enrollment and then sealed for storage.
type TOTPKey struct {
	// Secret is the seed, base32 without padding, as typed into an app.
	Secret string
	// URI is the otpauth://totp/... key URI (with issuer and account) for the
	// QR code and the "open in app" link. It contains Secret.
	URI string
}

// LogValue keeps the secret out of logs.
func (k TOTPKey) LogValue() slog.Value { return slog.StringValue("factor.TOTPKey{REDACTED}") }

// NewTOTPKey returns a new random 160-bit TOTP secret (crypto/rand) and its key
// URI. Issuer is the name the app shows; account identifies the user within
// it. Neither may be empty or contain a colon, which the key URI format uses
// to separate them.
func NewTOTPKey(issuer, account string) (TOTPKey, error) {
	if issuer == "" || account == "" {
		return TOTPKey{}, errors.New("factor: TOTP issuer and account must not be empty")
	}
	if strings.Contains(issuer, ":") || strings.Contains(account, ":") {
		return TOTPKey{}, errors.New("factor: TOTP issuer and account must not contain ':'")
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      TOTPPeriod,
		SecretSize:  totpSecretSize,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPKey{}, fmt.Errorf("factor: generating TOTP key: %w", err)
	}
	return TOTPKey{Secret: key.Secret(), URI: key.URL()}, nil
}

// Bounds on the QR code image size in pixels.
const (
	minQRSize = 64
	maxQRSize = 2048
)

// TOTPQRCodePNG renders an otpauth:// URI as a size×size PNG QR code. It is
// rendered locally so the secret never leaves the server.
func TOTPQRCodePNG(uri string, size int) ([]byte, error) {
	if !strings.HasPrefix(uri, "otpauth://") {
		return nil, errors.New("factor: not an otpauth:// URI")
	}
	if size < minQRSize || size > maxQRSize {
		return nil, fmt.Errorf("factor: QR code size %d outside [%d, %d]", size, minQRSize, maxQRSize)
	}
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return nil, fmt.Errorf("factor: parsing key URI: %w", err)
	}
	img, err := key.Image(size, size)
	if err != nil {
		return nil, fmt.Errorf("factor: rendering QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("factor: encoding PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// TOTPStep returns the RFC 6238 time step containing t: floor(unix(t) / 30).
func TOTPStep(t time.Time) int64 {
	u := t.Unix()
	step := u / TOTPPeriod
	if u < 0 && u%TOTPPeriod != 0 {
		step-- // floor, not truncation, before 1970
	}
	return step
}

// VerifyTOTP checks a user-entered code against secret at the server time now.
// The code must be exactly 6 ASCII digits once surrounding white space is
// trimmed; anything else (inner spaces, other scripts' digits, a wrong length)
// is rejected. Steps now-1, now and now+1 are accepted (RFC 6238 §5.2 clock
// drift allowance); the code is compared with all three in constant time, so
// timing reveals neither how much of it was right nor which step matched.
//
// It returns the matched time step. The caller must record it as used
// (storage.Factors.UseTOTPStep) and reject the code if it was, since a TOTP
// value may be accepted only once (RFC 6238 §5.2, NIST SP 800-63B §5.1.4.2).
// When a code matches several steps (a one-in-a-million collision), the
// earliest is returned, so a replayed code is never mistaken for a fresh one.
// An invalid secret gives ok == false.
func VerifyTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if !isDigits(code, TOTPDigits) {
		return 0, false
	}
	cur := TOTPStep(now)
	matched := int64(-1)
	for s := cur + TOTPSkew; s >= cur-TOTPSkew; s-- {
		if s < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(s), totpOpts)
		if err != nil {
			return 0, false
		}
		// Going from the latest step down, the last match wins: the earliest.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched = s
		}
	}
	if matched < 0 {
		return 0, false
	}
	return matched, true
}

// TOTPCode returns the 6-digit code for secret at time t, as an authenticator
// app would show it. It is for tests, the benchmark and the simulator.
func TOTPCode(secret string, t time.Time) (string, error) {
	s := TOTPStep(t)
	if s < 0 {
		return "", errors.New("factor: TOTP time before 1970")
	}
	code, err := hotp.GenerateCodeCustom(secret, uint64(s), totpOpts)
	if err != nil {
		return "", fmt.Errorf("factor: %w", err)
	}
	return code, nil
}

// isDigits reports whether s is exactly n ASCII digits.
func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
