package signin_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/signin"
)

// TestReplayRoundTrip: what a decision's audit event records reads back
// as the same input, but for the floors and risk, which the preview
// applies under the policy it decides with (they are recorded as applied,
// for reading).
func TestReplayRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	maxAge, txAge := 5*time.Minute, 2*time.Minute
	in := stepup.Input{
		Requested: []string{stepup.ACRPhishing, stepup.ACRMultiFactor}, Essential: true, Strict: true,
		ClientMin: stepup.ACRMultiFactor, ScopeMins: []string{stepup.ACRPhishing},
		MaxAge: &maxAge, PromptLogin: true, TransactionMin: stepup.ACRPhishing, TransactionMaxAge: &txAge,
		RiskFloor: stepup.ACRPhishing, RiskHard: true, Drifted: true,
		RequestTime: at, Now: at.Add(time.Second),
		Done: []stepup.Factor{{Method: stepup.Password, At: at.Add(-time.Hour)},
			{Method: stepup.WebAuthn, At: at, UserVerified: true, DeviceBound: true, Provisional: true, ForRequest: true}},
		Enrolled: []stepup.Enrolled{{Method: stepup.Password}, {Method: stepup.WebAuthn, UserVerifying: true, DeviceBound: true, Provisional: true}},
	}
	r, err := signin.ParseReplay(signin.ReplayOf("ar1", []string{"openid", "email"}, in).Encode())
	if err != nil {
		t.Fatal(err)
	}
	if r.Request != "ar1" || !reflect.DeepEqual(r.Scopes, []string{"openid", "email"}) || r.ClientMin != in.ClientMin ||
		!reflect.DeepEqual(r.ScopeMins, in.ScopeMins) || !r.Strict || r.RiskFloor != in.RiskFloor || !r.RiskHard || !r.Drifted {
		t.Errorf("recorded %+v", r)
	}
	want := in
	want.Strict, want.ClientMin, want.ScopeMins = false, "", nil
	want.RiskFloor, want.RiskHard, want.Drifted = "", false, false
	if got := r.Input(); !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"", "{", `{"req":"ar1"}`, `{"t":5}`} {
		if _, err := signin.ParseReplay(bad); err == nil {
			t.Errorf("ParseReplay(%q) accepted", bad)
		}
	}
}
