package stepup

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDecideTransaction pins the rules for a request with authorization
// details (RFC 9396): TransactionMin is a floor, TransactionMaxAge bounds
// the factors like max_age, and a factor of this request must approve it.
// The request arrives at ago(1m); factors before that were shown nothing.
func TestDecideTransaction(t *testing.T) {
	req := ago(time.Minute)
	five := dur(5 * time.Minute)
	withPasskey := []Enrolled{enPwd, enTOTP, enPasskey}
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{
			name: "a session at phr still proves the passkey again for a payment, not the password within the max age",
			in: Input{TransactionMin: phr, TransactionMaxAge: five, RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(3 * time.Minute), keyAt(2*time.Minute, false, false)}, Enrolled: withPasskey},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonTransaction}},
		},
		{
			name: "the passkey used after the request approves it; auth_time is the password's, within the max age",
			in: Input{TransactionMin: phr, TransactionMaxAge: five, RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(3 * time.Minute), keyAt(2*time.Minute, false, false), keyAt(30*time.Second, false, false)}, Enrolled: withPasskey},
			want: Decision{Outcome: Satisfied, Target: phr, ACR: phr, AMR: []string{"mfa", "pop", "pwd", "swk"}, AuthTime: ago(3 * time.Minute)},
		},
		{
			name: "a fresh password next to an earlier passkey does not approve: nothing was signed for this request",
			in: Input{TransactionMin: phr, TransactionMaxAge: five, RequestTime: req, Now: t0,
				Done: []Factor{keyAt(2*time.Minute, false, false), pwdAt(30 * time.Second)}, Enrolled: withPasskey},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonTransaction}},
		},
		{
			name: "a password older than the transaction's max age does not count; a user-verified passkey finishes in one step",
			in: Input{TransactionMin: phr, TransactionMaxAge: five, RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(10 * time.Minute), keyAt(2*time.Minute, true, false)}, Enrolled: withPasskey},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn, Password}, Reasons: []Reason{ReasonTransaction}},
		},
		{
			name: "a user-verified passkey used for the request approves it alone",
			in: Input{TransactionMin: phr, TransactionMaxAge: five, RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(10 * time.Minute), keyAt(20*time.Second, true, false)}, Enrolled: withPasskey},
			want: Decision{Outcome: Satisfied, Target: phr, ACR: phr, AMR: []string{"mfa", "pop", "swk", "user"}, AuthTime: ago(20 * time.Second)},
		},
		{
			name: "an mfa payment in a session with password and code asks for the code again, not the password",
			in: Input{TransactionMin: mfa, TransactionMaxAge: dur(15 * time.Minute), RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(10 * time.Minute), totpAt(9 * time.Minute)}, Enrolled: []Enrolled{enPwd, enTOTP}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonTransaction}},
		},
		{
			name: "the code entered for the request approves an mfa payment",
			in: Input{TransactionMin: mfa, TransactionMaxAge: dur(15 * time.Minute), RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(10 * time.Minute), totpAt(9 * time.Minute), totpAt(10 * time.Second)}, Enrolled: []Enrolled{enPwd, enTOTP}},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(10 * time.Minute)},
		},
		{
			name: "the acr is the level that approved, not a higher one the session held from before the request",
			in: Input{TransactionMin: mfa, RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(3 * time.Minute), keyAt(2*time.Minute, false, false), totpAt(10 * time.Second)}, Enrolled: withPasskey},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pop", "pwd", "swk"}, AuthTime: ago(3 * time.Minute)},
		},
		{
			name: "a transaction floor the user cannot reach is unmet_authentication_requirements",
			in: Input{TransactionMin: phr, RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(3 * time.Minute), totpAt(2 * time.Minute)}, Enrolled: []Enrolled{enPwd, enTOTP}},
			want: Decision{Outcome: Fail, Target: phr, Error: ErrUnmet},
		},
		{
			name: "an unknown transaction floor fails closed",
			in: Input{TransactionMin: "gold", RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(3 * time.Minute)}, Enrolled: []Enrolled{enPwd}},
			want: Decision{Outcome: Fail, Error: ErrUnmet},
		},
		{
			name: "prompt=none cannot approve a transaction",
			in: Input{TransactionMin: phr, RequestTime: req, Now: t0, PromptNone: true,
				Done: []Factor{pwdAt(3 * time.Minute), keyAt(2*time.Minute, false, false)}, Enrolled: withPasskey},
			want: Decision{Outcome: Fail, Target: phr, Error: ErrLoginRequired},
		},
		{
			name: "the approval is at the target: an mfa payment for a client held to phr needs the passkey again",
			in: Input{TransactionMin: mfa, ClientMin: phr, RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(3 * time.Minute), totpAt(2 * time.Minute), keyAt(2*time.Minute, false, false)}, Enrolled: withPasskey},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonClientMin, ReasonTransaction}},
		},
		{
			name: "the transaction's max age is tighter than max_age and wins",
			in: Input{TransactionMin: mfa, TransactionMaxAge: five, MaxAge: dur(time.Hour), RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(30 * time.Minute), totpAt(10 * time.Second)}, Enrolled: []Enrolled{enPwd, enTOTP}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonTransaction}},
		},
		{
			name: "max_age tighter than the transaction's max age wins too",
			in: Input{TransactionMin: mfa, TransactionMaxAge: dur(time.Hour), MaxAge: dur(5 * time.Minute), RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(30 * time.Minute), totpAt(10 * time.Second)}, Enrolled: []Enrolled{enPwd, enTOTP}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonMaxAge, ReasonTransaction}},
		},
		{
			name: "a transaction max age without a transaction floor changes nothing",
			in: Input{TransactionMaxAge: five, RequestTime: req, Now: t0,
				Done: []Factor{pwdAt(30 * time.Minute), totpAt(20 * time.Minute)}, Enrolled: []Enrolled{enPwd, enTOTP}},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(30 * time.Minute)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Decide(nil, tt.in)); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}
