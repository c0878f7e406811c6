package stepup

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAMR(t *testing.T) {
	tests := []struct {
		name    string
		factors []Factor
		want    []string
	}{
		{"no factors give no amr", nil, nil},
		{"password is pwd", []Factor{pwdAt(0)}, []string{"pwd"}},
		{"TOTP is otp", []Factor{totpAt(0)}, []string{"otp"}},
		{"a recovery code is otp too (RFC 8176 has no look-up secret value)", []Factor{recAt(0)}, []string{"otp"}},
		{"a synced key without UV is pop and swk", []Factor{keyAt(0, false, false)}, []string{"pop", "swk"}},
		{"a device-bound key without UV is pop and hwk", []Factor{keyAt(0, false, true)}, []string{"hwk", "pop"}},
		{"a user-verified passkey is multi-factor by itself", []Factor{keyAt(0, true, false)}, []string{"mfa", "pop", "swk", "user"}},
		{"password and TOTP span knowledge and possession: mfa", []Factor{pwdAt(0), totpAt(0)}, []string{"mfa", "otp", "pwd"}},
		{"TOTP and a recovery code are both possession: no mfa, otp once", []Factor{totpAt(0), recAt(0)}, []string{"otp"}},
		{"TOTP and a key without UV are both possession: no mfa", []Factor{totpAt(0), keyAt(0, false, true)}, []string{"hwk", "otp", "pop"}},
		{"unknown methods are ignored", []Factor{{Method: "sms"}, pwdAt(0)}, []string{"pwd"}},
		{"a repeated method is listed once", []Factor{pwdAt(time.Hour), pwdAt(0)}, []string{"pwd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, AMR(tt.factors)); diff != "" {
				t.Errorf("AMR() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
