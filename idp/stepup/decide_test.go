package stepup

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

const (
	sfa  = ACRSingleFactor
	mfa  = ACRMultiFactor
	phr  = ACRPhishing
	phrh = ACRHardware
)

func ago(d time.Duration) time.Time      { return t0.Add(-d) }
func dur(d time.Duration) *time.Duration { return &d }

func pwdAt(d time.Duration) Factor  { return Factor{Method: Password, At: ago(d)} }
func totpAt(d time.Duration) Factor { return Factor{Method: TOTP, At: ago(d)} }
func recAt(d time.Duration) Factor  { return Factor{Method: Recovery, At: ago(d)} }

// keyAt is a WebAuthn assertion: uv for user verification, hw for a
// device-bound (not synced) credential.
func keyAt(d time.Duration, uv, hw bool) Factor {
	return Factor{Method: WebAuthn, At: ago(d), UserVerified: uv, DeviceBound: hw}
}

// pendingAt is an assertion of a credential added from a session below phr
// and not yet trusted (DESIGN §3.3): it counts as mfa only.
func pendingAt(d time.Duration, uv, hw bool) Factor {
	f := keyAt(d, uv, hw)
	f.Provisional = true
	return f
}

var (
	enPending   = Enrolled{Method: WebAuthn, DeviceBound: true, UserVerifying: true, Provisional: true} // security key with PIN, not yet trusted
	enPwd       = Enrolled{Method: Password}
	enTOTP      = Enrolled{Method: TOTP}
	enRec       = Enrolled{Method: Recovery}
	enKey       = Enrolled{Method: WebAuthn}                                         // synced, no UV
	enPasskey   = Enrolled{Method: WebAuthn, UserVerifying: true}                    // synced passkey
	enHWKey     = Enrolled{Method: WebAuthn, DeviceBound: true}                      // security key, no UV
	enHWPasskey = Enrolled{Method: WebAuthn, DeviceBound: true, UserVerifying: true} // security key with PIN
)

func TestDecide(t *testing.T) {
	pwdTOTP := []Enrolled{enPwd, enTOTP}
	all := []Enrolled{enPwd, enTOTP, enRec, enKey}

	// A policy whose mfa level accepts a TOTP code for only 15 minutes.
	short := DefaultLevels()
	short[1].Freshness = map[Method]time.Duration{TOTP: 15 * time.Minute}
	short[2].Freshness = map[Method]time.Duration{TOTP: 15 * time.Minute}
	short[3].Freshness = map[Method]time.Duration{TOTP: 15 * time.Minute}
	shortTOTP, err := NewPolicy(short)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		policy *Policy // nil: DefaultPolicy
		in     Input
		want   Decision
	}{
		// Target and first factor.
		{
			name: "no session and no request: sign in with a passkey or a password",
			in:   Input{Enrolled: []Enrolled{enPwd, enTOTP, enPasskey}},
			want: Decision{Outcome: NeedFactor, Target: sfa, Next: []Method{WebAuthn, Password}, Reasons: []Reason{ReasonNoSession}},
		},
		{
			name: "user not identified yet: an essential phr request is not refused before the user is known",
			in:   Input{Requested: []string{phr}, Essential: true},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn, Password}, Reasons: []Reason{ReasonNoSession, ReasonRequested}},
		},
		{
			name: "the first factor is never a TOTP or recovery code",
			in:   Input{Requested: []string{mfa}, Enrolled: []Enrolled{enPwd, enTOTP, enRec}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession, ReasonRequested}},
		},
		{
			name: "a user with no password or passkey cannot reach even the lowest level: unmet",
			in:   Input{Done: []Factor{totpAt(13 * time.Hour)}, Enrolled: []Enrolled{enTOTP}},
			want: Decision{Outcome: Fail, Target: sfa, Error: ErrUnmet},
		},
		{
			name: "fresh password and no request: satisfied at sfa",
			in:   Input{Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "no request: acr is the highest level the session meets",
			in:   Input{Done: []Factor{pwdAt(2 * time.Hour), keyAt(time.Hour, false, true)}, Enrolled: []Enrolled{enPwd, enHWKey}},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: phrh, AMR: []string{"hwk", "mfa", "pop", "pwd"}, AuthTime: ago(2 * time.Hour)},
		},
		{
			name: "unknown acr values are ignored: treated as no request",
			in:   Input{Requested: []string{"gold", "urn:other:loa:3"}, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "acr values are case-sensitive: a differently cased value is unknown",
			in:   Input{Requested: []string{"PHR"}, Done: []Factor{pwdAt(time.Hour)}, Enrolled: all},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "the first known requested value sets the target, later values are fallbacks",
			in:   Input{Requested: []string{"gold", mfa, sfa}, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonRequested}},
		},

		// Requirement semantics and Next.
		{
			name: "password session, RP asks mfa: any enrolled second factor, passkey first",
			in:   Input{Requested: []string{mfa}, Done: []Factor{pwdAt(time.Hour)}, Enrolled: all},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{WebAuthn, TOTP, Recovery}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "password and TOTP meet mfa: acr, amr and the earliest of the two as auth_time",
			in:   Input{Requested: []string{mfa}, Done: []Factor{pwdAt(2 * time.Hour), totpAt(10 * time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(2 * time.Hour)},
		},
		{
			name: "password and a recovery code meet mfa",
			in:   Input{Requested: []string{mfa}, Done: []Factor{pwdAt(time.Hour), recAt(time.Minute)}, Enrolled: all},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "mfa requested by its PAPE alias: the acr echoes the alias as the RP spelled it",
			in:   Input{Requested: []string{PAPEMultiFactor}, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: PAPEMultiFactor, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "a user-verified passkey alone meets mfa",
			in:   Input{Requested: []string{mfa}, Done: []Factor{keyAt(time.Minute, true, false)}, Enrolled: []Enrolled{enPasskey}},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "pop", "swk", "user"}, AuthTime: ago(time.Minute)},
		},
		{
			name: "a security key without user verification is one factor: the password is asked",
			in:   Input{Requested: []string{mfa}, Done: []Factor{keyAt(time.Minute, false, true)}, Enrolled: []Enrolled{enPwd, enHWKey}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "TOTP and a recovery code are two possession factors, not mfa: the password is asked",
			in:   Input{Requested: []string{mfa}, Done: []Factor{totpAt(time.Hour), recAt(time.Minute)}, Enrolled: []Enrolled{enPwd, enTOTP, enRec}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "factors that finish the level in one step come before a passkey that would need another",
			in:   Input{Requested: []string{mfa}, Done: []Factor{totpAt(time.Minute)}, Enrolled: []Enrolled{enPwd, enTOTP, enKey}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password, WebAuthn}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "mfa reached with a recovery code does not reach phr: only the passkey is asked",
			in:   Input{Requested: []string{phr}, Done: []Factor{pwdAt(time.Hour), recAt(time.Minute)}, Enrolled: all},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "phr from nothing offers passkey and password, never TOTP or recovery codes",
			in:   Input{Requested: []string{phr}, Enrolled: all},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn, Password}, Reasons: []Reason{ReasonNoSession, ReasonRequested}},
		},
		{
			name: "password and a synced passkey meet phr",
			in:   Input{Requested: []string{phr}, Done: []Factor{pwdAt(time.Hour), keyAt(time.Minute, false, false)}, Enrolled: all},
			want: Decision{Outcome: Satisfied, Target: phr, ACR: phr, AMR: []string{"mfa", "pop", "pwd", "swk"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "phrh needs a device-bound credential: after a synced passkey the security key is asked",
			in:   Input{Requested: []string{phrh}, Done: []Factor{pwdAt(time.Hour), keyAt(time.Minute, true, false)}, Enrolled: []Enrolled{enPwd, enHWKey}},
			want: Decision{Outcome: NeedFactor, Target: phrh, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "a user-verified device-bound key alone meets phrh",
			in:   Input{Requested: []string{phrh}, Done: []Factor{keyAt(time.Minute, true, true)}, Enrolled: []Enrolled{enHWPasskey}},
			want: Decision{Outcome: Satisfied, Target: phrh, ACR: phrh, AMR: []string{"hwk", "mfa", "pop", "user"}, AuthTime: ago(time.Minute)},
		},
		{
			name: "only the latest WebAuthn assertion counts, with its own flags",
			in:   Input{Requested: []string{mfa}, Done: []Factor{keyAt(2*time.Hour, true, true), keyAt(time.Hour, false, false)}, Enrolled: []Enrolled{enPwd, enHWPasskey}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{WebAuthn, Password}, Reasons: []Reason{ReasonRequested}},
		},

		// A phishable session cannot mint phishing resistance (DESIGN §3.3).
		{
			name: "password and a provisional key meet mfa, not phr: voluntary phr out of reach gives the real mfa",
			in:   Input{Requested: []string{phr}, Done: []Factor{pwdAt(time.Hour), pendingAt(time.Minute, false, true)}, Enrolled: []Enrolled{enPwd, enTOTP, enPending}},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: mfa, AMR: []string{"hwk", "mfa", "pop", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "no request: a provisional device-bound passkey with user verification is mfa, not phrh",
			in:   Input{Done: []Factor{pendingAt(time.Minute, true, true)}, Enrolled: []Enrolled{enPwd, enPending}},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: mfa, AMR: []string{"hwk", "mfa", "pop", "user"}, AuthTime: ago(time.Minute)},
		},
		{
			name: "essential phr with only a provisional key enrolled: unmet",
			in:   Input{Requested: []string{phr}, Essential: true, Done: []Factor{pwdAt(time.Minute)}, Enrolled: []Enrolled{enPwd, enTOTP, enPending}},
			want: Decision{Outcome: Fail, Target: phr, Error: ErrUnmet},
		},
		{
			name: "client floor phr with only a provisional key enrolled: unmet, even after using it",
			in:   Input{ClientMin: phr, Done: []Factor{pwdAt(time.Hour), pendingAt(time.Minute, true, true)}, Enrolled: []Enrolled{enPwd, enPending}},
			want: Decision{Outcome: Fail, Target: phr, Error: ErrUnmet},
		},
		{
			name: "a provisional key was used and a trusted one is enrolled: phr asks for a passkey again",
			in:   Input{Requested: []string{phr}, Done: []Factor{pwdAt(time.Hour), pendingAt(time.Minute, true, true)}, Enrolled: []Enrolled{enPwd, enPending, enKey}},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "phr offers the passkey only when a trusted one is enrolled",
			in:   Input{Requested: []string{phr}, Done: []Factor{pwdAt(time.Minute)}, Enrolled: []Enrolled{enPwd, enTOTP, enPending, enKey}},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "a provisional key still offers mfa in one step",
			in:   Input{Requested: []string{mfa}, Done: []Factor{pwdAt(time.Minute)}, Enrolled: []Enrolled{enPwd, enPending}},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonRequested}},
		},

		// The acr claim and auth_time.
		{
			name: "requested order is preference: sfa listed first is issued even though mfa is met",
			in:   Input{Requested: []string{sfa, mfa}, Done: []Factor{pwdAt(time.Hour), totpAt(10 * time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"otp"}, AuthTime: ago(10 * time.Minute)},
		},
		{
			name: "auth_time comes from the newest satisfying set: a recent passkey alone beats an older password pair",
			in:   Input{Requested: []string{mfa}, Done: []Factor{pwdAt(5 * time.Hour), totpAt(3 * time.Hour), keyAt(time.Hour, true, false)}, Enrolled: []Enrolled{enPwd, enTOTP, enPasskey}},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "pop", "swk", "user"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "voluntary acr_values out of reach: the session's real acr is issued",
			in:   Input{Requested: []string{phrh}, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "essential acr out of reach: unmet_authentication_requirements",
			in:   Input{Requested: []string{phrh}, Essential: true, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Target: phrh, Error: ErrUnmet},
		},
		{
			name: "strict client treats voluntary acr_values as essential",
			in:   Input{Requested: []string{phr}, Strict: true, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Target: phr, Error: ErrUnmet},
		},
		{
			name: "essential acr with a reachable fallback value steps up to the fallback",
			in:   Input{Requested: []string{phrh, mfa}, Essential: true, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "essential acr naming only unknown values: unmet",
			in:   Input{Requested: []string{"gold"}, Essential: true, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Error: ErrUnmet},
		},

		// Floors.
		{
			name: "client floor raises the target: step up with reason client_minimum",
			in:   Input{Requested: []string{sfa}, ClientMin: mfa, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonClientMin}},
		},
		{
			name: "client floor above the request: the acr is the enforced level, never the lower value requested",
			in:   Input{Requested: []string{sfa}, ClientMin: mfa, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "client floor: the first requested value at or above the target is echoed as the RP spelled it",
			in:   Input{Requested: []string{sfa, PAPEMultiFactor, mfa}, ClientMin: mfa, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: PAPEMultiFactor, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "client floor: a requested value above the target that is met is echoed",
			in:   Input{Requested: []string{sfa, PAPEPhishing}, ClientMin: mfa, Done: []Factor{pwdAt(time.Hour), keyAt(time.Minute, false, false)}, Enrolled: all},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: PAPEPhishing, AMR: []string{"mfa", "pop", "pwd", "swk"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "client floor above every requested value: the target's canonical name",
			in:   Input{Requested: []string{PAPEMultiFactor}, ClientMin: phr, Done: []Factor{pwdAt(time.Hour), keyAt(time.Minute, false, false)}, Enrolled: all},
			want: Decision{Outcome: Satisfied, Target: phr, ACR: phr, AMR: []string{"mfa", "pop", "pwd", "swk"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "scope floor above the request: the acr is the enforced level",
			in:   Input{Requested: []string{sfa}, ScopeMins: []string{mfa}, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "risk floor above the request: the acr is the enforced level",
			in:   Input{Requested: []string{sfa}, RiskFloor: mfa, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "a waived risk floor enforced nothing: the requested value is echoed",
			in:   Input{Requested: []string{sfa}, RiskFloor: phr, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"otp"}, AuthTime: ago(time.Minute), RiskWaived: true},
		},
		{
			name: "a floor never lowers the request: phr requested with an mfa client floor stays phr",
			in:   Input{Requested: []string{phr}, ClientMin: mfa, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: all},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn}, Reasons: []Reason{ReasonRequested}},
		},
		{
			name: "client floor out of reach: unmet_authentication_requirements",
			in:   Input{ClientMin: phr, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Target: phr, Error: ErrUnmet},
		},
		{
			name: "unknown client floor fails closed: unmet",
			in:   Input{ClientMin: "urn:typo", Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Error: ErrUnmet},
		},
		{
			name: "scope floor raises the target: step up with reason scope_minimum",
			in:   Input{ScopeMins: []string{sfa, mfa}, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonScope}},
		},
		{
			name: "client and scope floors at the target both explain the step-up",
			in:   Input{ClientMin: mfa, ScopeMins: []string{mfa}, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonClientMin, ReasonScope}},
		},
		{
			name: "scope floor out of reach: unmet_authentication_requirements",
			in:   Input{ScopeMins: []string{phrh}, Done: []Factor{pwdAt(time.Hour)}, Enrolled: all},
			want: Decision{Outcome: Fail, Target: phrh, Error: ErrUnmet},
		},

		// No session: nobody is identified yet.
		{
			name: "no session: the password page, whatever the request asks",
			in:   Input{NoSession: true, Requested: []string{phr}, Essential: true, ClientMin: mfa},
			want: Decision{Outcome: NeedFactor, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession}},
		},
		{
			name: "no session and prompt=none: login_required",
			in:   Input{NoSession: true, PromptNone: true, Requested: []string{mfa}},
			want: Decision{Outcome: Fail, Error: ErrLoginRequired},
		},
		{
			name: "no session comes before risk: there is no user to assess",
			in:   Input{NoSession: true, RiskDeny: true},
			want: Decision{Outcome: NeedFactor, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession}},
		},

		// Session drift.
		{
			name: "drifted session: its factors count for nothing and its level (mfa) is proved again",
			in:   Input{Drifted: true, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession, ReasonRisk}},
		},
		{
			name: "drifted session keeps a higher risk floor",
			in:   Input{Drifted: true, RiskFloor: phr, Done: []Factor{pwdAt(time.Hour)}, Enrolled: []Enrolled{enPwd, enHWKey}},
			want: Decision{Outcome: NeedFactor, Target: phr, Next: []Method{WebAuthn, Password}, Reasons: []Reason{ReasonNoSession, ReasonRisk}},
		},
		{
			name: "drifted session: an unknown risk floor gives way to the session's level, nothing is waived",
			in:   Input{Drifted: true, RiskFloor: "gold", Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: sfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession}},
		},
		{
			name: "drifted session whose factors are all stale: no level to raise the floor to",
			in:   Input{Drifted: true, Requested: []string{mfa}, Done: []Factor{pwdAt(13 * time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession, ReasonRequested}},
		},
		{
			name: "drift under prompt=none: login_required, not the session's old level",
			in:   Input{Drifted: true, PromptNone: true, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Target: mfa, Error: ErrLoginRequired},
		},

		// Risk.
		{
			name: "risk deny: access_denied even with a full session",
			in:   Input{RiskDeny: true, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Error: ErrAccessDenied},
		},
		{
			name: "reachable risk floor raises the target: step up with reason risk",
			in:   Input{RiskFloor: mfa, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonRisk}},
		},
		{
			name: "medium risk floor out of reach is waived: satisfied at the real level",
			in:   Input{RiskFloor: phr, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour), RiskWaived: true},
		},
		{
			name: "medium risk floor waived while the request still needs a factor",
			in:   Input{Requested: []string{mfa}, RiskFloor: phr, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonRequested}, RiskWaived: true},
		},
		{
			name: "high risk floor out of reach: access_denied",
			in:   Input{RiskFloor: phr, RiskHard: true, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Target: phr, Error: ErrAccessDenied},
		},

		// max_age, prompt=login and freshness.
		{
			name: "max_age excludes older factors: password asked again, reason max_age",
			in:   Input{Requested: []string{mfa}, MaxAge: dur(30 * time.Minute), RequestTime: t0, Done: []Factor{pwdAt(time.Hour), totpAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession, ReasonRequested, ReasonMaxAge}},
		},
		{
			name: "max_age keeps a factor done exactly at request time minus max_age",
			in:   Input{MaxAge: dur(time.Hour), RequestTime: t0, Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "max_age=0 behaves as prompt=login: a factor a second before the request does not count",
			in:   Input{MaxAge: dur(0), RequestTime: t0, Done: []Factor{pwdAt(time.Second)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: sfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession, ReasonMaxAge}},
		},
		{
			name: "prompt=login: nothing done before the request counts, even a full mfa session",
			in:   Input{Requested: []string{mfa}, PromptLogin: true, RequestTime: t0, Done: []Factor{pwdAt(time.Minute), totpAt(time.Second)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession, ReasonRequested, ReasonPromptLogin}},
		},
		{
			name: "prompt=login: factors done after the request count and set auth_time",
			in:   Input{Requested: []string{mfa}, PromptLogin: true, RequestTime: ago(5 * time.Minute), Done: []Factor{pwdAt(2 * time.Hour), pwdAt(2 * time.Minute), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(2 * time.Minute)},
		},
		{
			name: "password past the 12-hour window is asked again, reason stale",
			in:   Input{Requested: []string{mfa}, Done: []Factor{pwdAt(13 * time.Hour), totpAt(time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonRequested, ReasonStale}},
		},
		{
			name: "a factor exactly at the edge of the freshness window still counts",
			in:   Input{Done: []Factor{pwdAt(12 * time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"pwd"}, AuthTime: ago(12 * time.Hour)},
		},
		{
			name: "stale password and stale TOTP give one stale reason",
			in:   Input{Requested: []string{mfa}, Done: []Factor{pwdAt(20 * time.Hour), totpAt(13 * time.Hour)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession, ReasonRequested, ReasonStale}},
		},
		{
			name:   "a level's per-method window applies: a 20-minute-old TOTP is stale for mfa but fine for sfa",
			policy: shortTOTP,
			in:     Input{Requested: []string{mfa}, Done: []Factor{pwdAt(time.Hour), totpAt(20 * time.Minute)}, Enrolled: pwdTOTP},
			want:   Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonRequested, ReasonStale}},
		},
		{
			name: "a factor dated after now never counts",
			in:   Input{Done: []Factor{{Method: Password, At: t0.Add(time.Minute)}}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: sfa, Next: []Method{Password}, Reasons: []Reason{ReasonNoSession}},
		},

		// prompt=none.
		{
			name: "prompt=none and a step-up needed: login_required, no UI",
			in:   Input{Requested: []string{mfa}, PromptNone: true, Done: []Factor{pwdAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Target: mfa, Error: ErrLoginRequired},
		},
		{
			name: "prompt=none with a satisfying session: satisfied silently",
			in:   Input{Requested: []string{mfa}, PromptNone: true, Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: mfa, ACR: mfa, AMR: []string{"mfa", "otp", "pwd"}, AuthTime: ago(time.Hour)},
		},
		{
			name: "prompt=none with an essential acr out of reach reports unmet, not login_required",
			in:   Input{Requested: []string{phr}, Essential: true, PromptNone: true, Done: []Factor{pwdAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Target: phr, Error: ErrUnmet},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if in.Now.IsZero() {
				in.Now = t0
			}
			if in.RequestTime.IsZero() {
				in.RequestTime = t0
			}
			got := Decide(tt.policy, in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Logf("%d rows", len(tests))
}

// TestDecidePreferred pins Input.Preferred: among factors that would do
// equally it comes first, and it never adds a factor or jumps a factor that
// finishes in one step.
func TestDecidePreferred(t *testing.T) {
	all := []Enrolled{enPwd, enTOTP, enRec, enPasskey}
	pwd := []Factor{pwdAt(time.Minute)}
	tests := []struct {
		name      string
		requested string
		done      []Factor
		enrolled  []Enrolled
		preferred Method
		want      []Method
	}{
		{"no preference: webauthn first", mfa, pwd, all, "", []Method{WebAuthn, TOTP, Recovery}},
		{"totp preferred among one-step factors", mfa, pwd, all, TOTP, []Method{TOTP, WebAuthn, Recovery}},
		{"recovery preferred", mfa, pwd, all, Recovery, []Method{Recovery, WebAuthn, TOTP}},
		{"preferred not enrolled: nothing added", mfa, pwd, []Enrolled{enPwd, enPasskey}, TOTP, []Method{WebAuthn}},
		{"preferred cannot reach the level: nothing added", phr, pwd, all, TOTP, []Method{WebAuthn}},
		// With nothing counted a passkey finishes mfa in one step; a code
		// never comes first, preferred or not.
		{"nothing counted: one-step passkey before the password", mfa, nil, all, TOTP, []Method{WebAuthn, Password}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(nil, Input{Requested: []string{tt.requested}, Essential: true, RequestTime: t0, Now: t0, Done: tt.done, Enrolled: tt.enrolled, Preferred: tt.preferred})
			if d.Outcome != NeedFactor {
				t.Fatalf("outcome = %v, want need_factor", d.Outcome)
			}
			if diff := cmp.Diff(tt.want, d.Next); diff != "" {
				t.Errorf("Next (-want +got):\n%s", diff)
			}
		})
	}
}
