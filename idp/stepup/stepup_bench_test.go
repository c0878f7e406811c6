package stepup

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecide measures the common step-up: a password session, the RP
// asks for mfa, the user has TOTP, recovery codes and a passkey.
func BenchmarkDecide(b *testing.B) {
	p := DefaultPolicy()
	in := Input{
		Requested:   []string{mfa},
		ClientMin:   sfa,
		RequestTime: t0,
		Now:         t0,
		Done:        []Factor{pwdAt(time.Hour)},
		Enrolled:    []Enrolled{enPwd, enTOTP, enRec, enPasskey},
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := Decide(p, in); d.Outcome != NeedFactor {
			b.Fatalf("Decide() = %v, want NeedFactor", d.Outcome)
		}
	}
}

// BenchmarkDecideSatisfied measures the decision after the second factor.
func BenchmarkDecideSatisfied(b *testing.B) {
	p := DefaultPolicy()
	in := Input{
		Requested:   []string{mfa},
		RequestTime: t0,
		Now:         t0,
		Done:        []Factor{pwdAt(time.Hour), totpAt(time.Minute)},
		Enrolled:    []Enrolled{enPwd, enTOTP, enRec, enPasskey},
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := Decide(p, in); d.Outcome != Satisfied {
			b.Fatalf("Decide() = %v, want Satisfied", d.Outcome)
		}
	}
}

func ExampleDecide() {
	p := DefaultPolicy()
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	in := Input{
		Requested:   []string{"urn:keystep:acr:mfa"},
		RequestTime: t0,
		Now:         t0,
		Done:        []Factor{{Method: Password, At: t0.Add(-time.Hour)}},
		Enrolled:    []Enrolled{{Method: Password}, {Method: TOTP}, {Method: WebAuthn, UserVerifying: true}},
	}

	d := Decide(p, in)
	fmt.Println(d.Outcome, d.Next, d.Reasons)

	// The user enters an authenticator app code; the dispatcher decides again.
	in.Done = append(in.Done, Factor{Method: TOTP, At: t0})
	d = Decide(p, in)
	fmt.Println(d.Outcome, d.ACR, d.AMR, d.AuthTime.Format(time.TimeOnly))
	// Output:
	// need_factor [webauthn totp] [app_requested]
	// satisfied urn:keystep:acr:mfa [mfa otp pwd] 11:00:00
}
