package stepup

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCurrent(t *testing.T) {
	tests := []struct {
		name   string
		done   []Factor
		want   string
		wantOK bool
	}{
		{name: "nothing done meets no level", done: nil, want: "", wantOK: false},
		{name: "a password meets sfa", done: []Factor{pwdAt(time.Hour)}, want: sfa, wantOK: true},
		{name: "password and TOTP meet mfa", done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, want: mfa, wantOK: true},
		{name: "password and a device-bound key meet phrh", done: []Factor{pwdAt(time.Hour), keyAt(time.Minute, false, true)}, want: phrh, wantOK: true},
		{name: "a provisional user-verified passkey meets mfa only", done: []Factor{pendingAt(time.Minute, true, true)}, want: mfa, wantOK: true},
		{name: "a password past its 12-hour window meets nothing", done: []Factor{pwdAt(13 * time.Hour)}, want: "", wantOK: false},
		{name: "a stale password leaves a fresh TOTP at sfa", done: []Factor{pwdAt(13 * time.Hour), totpAt(time.Minute)}, want: sfa, wantOK: true},
		{name: "a factor dated after now does not count", done: []Factor{{Method: Password, At: t0.Add(time.Second)}}, want: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := DefaultPolicy().Current(Session{Done: tt.done, Now: t0})
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Current() = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestFresh(t *testing.T) {
	const tenMinutes = 10 * time.Minute // DESIGN §3.3, NIST SP 800-63B §6.1.2.1
	tests := []struct {
		name     string
		done     []Factor
		acr      string
		within   time.Duration
		wantAt   time.Time
		wantHeld bool
	}{
		{name: "a password from 5 minutes ago holds sfa within 10 minutes", done: []Factor{pwdAt(5 * time.Minute)}, acr: sfa, within: tenMinutes, wantAt: ago(5 * time.Minute), wantHeld: true},
		{name: "a password from 11 minutes ago does not hold sfa within 10 minutes", done: []Factor{pwdAt(11 * time.Minute)}, acr: sfa, within: tenMinutes},
		{name: "a factor exactly 10 minutes old still counts", done: []Factor{pwdAt(tenMinutes)}, acr: sfa, within: tenMinutes, wantAt: ago(tenMinutes), wantHeld: true},
		{name: "mfa needs both factors inside the window", done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, acr: mfa, within: tenMinutes},
		{name: "mfa inside the window: auth_time is the older of the two", done: []Factor{pwdAt(8 * time.Minute), totpAt(time.Minute)}, acr: mfa, within: tenMinutes, wantAt: ago(8 * time.Minute), wantHeld: true},
		{name: "a fresh user-verified passkey alone holds mfa", done: []Factor{pwdAt(time.Hour), keyAt(time.Minute, true, false)}, acr: PAPEMultiFactor, within: tenMinutes, wantAt: ago(time.Minute), wantHeld: true},
		{name: "a level held at a higher one: phr's session holds mfa", done: []Factor{pwdAt(2 * time.Minute), keyAt(time.Minute, false, false)}, acr: mfa, within: tenMinutes, wantAt: ago(2 * time.Minute), wantHeld: true},
		{name: "a provisional key does not hold phr", done: []Factor{pwdAt(2 * time.Minute), pendingAt(time.Minute, true, true)}, acr: phr, within: tenMinutes},
		{name: "no bound (0): the level's own 12-hour window applies", done: []Factor{pwdAt(11 * time.Hour)}, acr: sfa, within: 0, wantAt: ago(11 * time.Hour), wantHeld: true},
		{name: "no bound still drops a factor past its window", done: []Factor{pwdAt(13 * time.Hour)}, acr: sfa, within: 0},
		{name: "an unknown acr is never held", done: []Factor{pwdAt(time.Minute)}, acr: "gold", within: tenMinutes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, held := DefaultPolicy().Fresh(Session{Done: tt.done, Enrolled: []Enrolled{enPwd, enTOTP, enKey}, Now: t0}, tt.acr, tt.within)
			if held != tt.wantHeld || !at.Equal(tt.wantAt) {
				t.Errorf("Fresh() = %v, %v; want %v, %v", at, held, tt.wantAt, tt.wantHeld)
			}
		})
	}
}

func TestReachable(t *testing.T) {
	tests := []struct {
		name     string
		done     []Factor
		enrolled []Enrolled
		acr      string
		within   time.Duration
		want     bool
	}{
		{name: "password and TOTP enrolled reach mfa", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd, enTOTP}, acr: mfa, want: true},
		{name: "password alone cannot reach mfa", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd}, acr: mfa},
		{name: "phr needs a trusted WebAuthn credential: TOTP is not enough", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd, enTOTP}, acr: phr},
		{name: "a provisional credential cannot reach phr", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd, enPending}, acr: phr},
		{name: "a user without a password reaches phr with a user-verified passkey", done: []Factor{keyAt(time.Hour, true, false)}, enrolled: []Enrolled{enPasskey}, acr: phr, want: true},
		{name: "a user without a password and with a key that cannot verify them cannot reach mfa", done: []Factor{keyAt(time.Hour, false, true)}, enrolled: []Enrolled{enHWKey}, acr: mfa},
		{name: "a factor done but no longer enrolled still counts while it is fresh", done: []Factor{pwdAt(time.Hour), totpAt(5 * time.Minute)}, enrolled: []Enrolled{enPwd}, acr: mfa, within: 10 * time.Minute, want: true},
		{name: "a factor done before the window and no longer enrolled does not", done: []Factor{pwdAt(time.Hour), totpAt(20 * time.Minute)}, enrolled: []Enrolled{enPwd}, acr: mfa, within: 10 * time.Minute},
		{name: "a known user with nothing enrolled and nothing done reaches nothing", acr: sfa},
		{name: "an unknown acr is never reachable", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd}, acr: "gold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultPolicy().Reachable(Session{Done: tt.done, Enrolled: tt.enrolled, Now: t0}, tt.acr, tt.within); got != tt.want {
				t.Errorf("Reachable() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReachableUpTo(t *testing.T) {
	tests := []struct {
		name     string
		done     []Factor
		enrolled []Enrolled
		acr      string
		want     string
	}{
		{name: "a trusted key enrolled: phr itself", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd, enKey}, acr: phr, want: phr},
		{name: "password and TOTP: phr is out of reach, mfa is the best", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd, enTOTP}, acr: phr, want: mfa},
		{name: "password and a provisional key: mfa", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd, enPending}, acr: phr, want: mfa},
		{name: "password only: sfa", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd}, acr: phr, want: sfa},
		{name: "never above the level asked: mfa for a user who could reach phrh", done: []Factor{pwdAt(time.Hour)}, enrolled: []Enrolled{enPwd, enHWKey}, acr: mfa, want: mfa},
		{name: "nothing reachable: the lowest level", acr: phr, want: sfa},
		{name: "an unknown acr is returned as it is", enrolled: []Enrolled{enPwd}, acr: "gold", want: "gold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultPolicy().ReachableUpTo(Session{Done: tt.done, Enrolled: tt.enrolled, Now: t0}, tt.acr); got != tt.want {
				t.Errorf("ReachableUpTo() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAdmit(t *testing.T) {
	pwdTOTP := []Enrolled{enPwd, enTOTP}
	tests := []struct {
		name string
		s    Session
		risk Risk
		want Outcome
	}{
		{name: "low risk: a password session is admitted", s: Session{Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP}, want: Satisfied},
		{name: "a reachable risk floor above the session: step up", s: Session{Done: []Factor{pwdAt(time.Hour)}, Enrolled: pwdTOTP}, risk: Risk{Floor: mfa}, want: NeedFactor},
		{name: "a session already at the risk floor is admitted", s: Session{Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP}, risk: Risk{Floor: mfa}, want: Satisfied},
		{name: "medium risk floor out of reach is waived: admitted at the real level", s: Session{Done: []Factor{pwdAt(time.Hour)}, Enrolled: []Enrolled{enPwd}}, risk: Risk{Floor: mfa}, want: Satisfied},
		{name: "high risk floor out of reach: refused", s: Session{Done: []Factor{pwdAt(time.Hour)}, Enrolled: []Enrolled{enPwd}}, risk: Risk{Floor: mfa, Hard: true}, want: Fail},
		{name: "risk deny refuses even a full session", s: Session{Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP}, risk: Risk{Deny: true}, want: Fail},
		{name: "a drifted session proves its level again, even at low risk", s: Session{Done: []Factor{pwdAt(time.Hour), totpAt(time.Minute)}, Enrolled: pwdTOTP}, risk: Risk{Drifted: true}, want: NeedFactor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.Now = t0
			if got := DefaultPolicy().Admit(tt.s, tt.risk); got != tt.want {
				t.Errorf("Admit() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNeedsVerification(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want bool
	}{
		{
			name: "password done, key enrolled, RP asks phr: the password carries the knowledge, UV only preferred",
			in:   Input{Requested: []string{phr}, Done: []Factor{pwdAt(time.Minute)}, Enrolled: []Enrolled{enPwd, enPasskey}},
		},
		{
			name: "a user without a password signing in again: only a user-verified passkey reaches mfa",
			in:   Input{Requested: []string{mfa}, PromptLogin: true, Done: []Factor{keyAt(time.Hour, true, false)}, Enrolled: []Enrolled{enPasskey}},
			want: true,
		},
		{
			name: "a user without a password signing in again at sfa: any key will do, UV only preferred",
			in:   Input{PromptLogin: true, Done: []Factor{keyAt(time.Hour, true, false)}, Enrolled: []Enrolled{enPasskey}},
		},
		{
			name: "a stale password and a passkey: the password can be entered again, UV only preferred",
			in:   Input{Requested: []string{mfa}, Done: []Factor{pwdAt(13 * time.Hour)}, Enrolled: []Enrolled{enPwd, enPasskey}},
		},
		{
			name: "a satisfied request asks nothing: not needed",
			in:   Input{Done: []Factor{pwdAt(time.Minute)}, Enrolled: []Enrolled{enPwd, enPasskey}},
		},
		{
			name: "a drifted passwordless session: its passkey no longer counts, so UV is needed again",
			in:   Input{Drifted: true, Done: []Factor{keyAt(time.Hour, true, false)}, Enrolled: []Enrolled{enPasskey}},
			want: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now, in.RequestTime = t0, t0
			if got := DefaultPolicy().NeedsVerification(in); got != tt.want {
				t.Errorf("NeedsVerification() = %v, want %v (decision %+v)", got, tt.want, Decide(nil, in))
			}
		})
	}
}

func TestPreview(t *testing.T) {
	pwdTOTP := []Enrolled{enPwd, enTOTP}
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{
			name: "no request: the password alone signs in at sfa, now",
			in:   Input{Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"pwd"}, AuthTime: t0},
		},
		{
			name: "a client floor of mfa: after the password, the TOTP",
			in:   Input{ClientMin: mfa, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonClientMin}},
		},
		{
			name: "factors in the input are replaced by the password: an old TOTP does not count",
			in:   Input{ClientMin: mfa, Done: []Factor{totpAt(time.Minute)}, Enrolled: pwdTOTP},
			want: Decision{Outcome: NeedFactor, Target: mfa, Next: []Method{TOTP}, Reasons: []Reason{ReasonClientMin}},
		},
		{
			name: "a preview has no session to miss or to drift",
			in:   Input{NoSession: true, Drifted: true, Enrolled: pwdTOTP},
			want: Decision{Outcome: Satisfied, Target: sfa, ACR: sfa, AMR: []string{"pwd"}, AuthTime: t0},
		},
		{
			name: "risk denies: refused",
			in:   Input{RiskDeny: true, Enrolled: pwdTOTP},
			want: Decision{Outcome: Fail, Error: ErrAccessDenied},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now, in.RequestTime = t0, t0
			if diff := cmp.Diff(tt.want, DefaultPolicy().Preview(in)); diff != "" {
				t.Errorf("Preview() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnlocks(t *testing.T) {
	pwdOnly := []Enrolled{{Method: Password}}
	totp := Enrolled{Method: TOTP}
	key := Enrolled{Method: WebAuthn, UserVerifying: true}
	pending := Enrolled{Method: WebAuthn, UserVerifying: true, Provisional: true}
	tests := []struct {
		name      string
		clientMin string
		enrolled  []Enrolled
		add       Enrolled
		want      bool
	}{
		{name: "an authenticator app unlocks an mfa floor out of reach", clientMin: mfa, enrolled: pwdOnly, add: totp, want: true},
		{name: "an authenticator app does not unlock phr", clientMin: phr, enrolled: pwdOnly, add: totp, want: false},
		{name: "a trusted passkey unlocks phr", clientMin: phr, enrolled: pwdOnly, add: key, want: true},
		{name: "a passkey not trusted yet does not unlock phr", clientMin: phr, enrolled: pwdOnly, add: pending, want: false},
		{name: "nothing to unlock when the level is reachable already", clientMin: mfa, enrolled: append(pwdOnly, totp), add: key, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{ClientMin: tt.clientMin, RequestTime: t0, Now: t0, Done: []Factor{pwdAt(time.Minute)}, Enrolled: tt.enrolled}
			if got := DefaultPolicy().Unlocks(in, tt.add); got != tt.want {
				t.Errorf("Unlocks() = %v, want %v", got, tt.want)
			}
		})
	}
}
