package signin

import (
	"testing"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
)

// Risk only raises the bar (DESIGN §3.3): no combination of signals lets a
// request through with fewer factors than the RP, the client or a scope
// asks for. Every combination of the boolean facts is tried against every
// requirement source.
func TestRiskNeverLowersTheBar(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := stepup.DefaultPolicy()
	rules := risk.DefaultRules()
	done := []stepup.Factor{{Method: stepup.Password, At: t0.Add(-time.Minute)}}
	enrolled := []stepup.Enrolled{{Method: stepup.Password}, {Method: stepup.TOTP}}
	requirements := map[string]func(*stepup.Input){
		"the RP asks (voluntary)": func(in *stepup.Input) { in.Requested = []string{"urn:keystep:acr:mfa"} },
		"the RP asks (essential)": func(in *stepup.Input) { in.Requested, in.Essential = []string{"urn:keystep:acr:mfa"}, true },
		"the client's minimum":    func(in *stepup.Input) { in.ClientMin = "urn:keystep:acr:mfa" },
		"a scope's minimum":       func(in *stepup.Input) { in.ScopeMins = []string{"urn:keystep:acr:mfa"} },
	}
	const nFacts = 9
	for mask := range 1 << nFacts {
		bit := func(i int) bool { return mask&(1<<i) != 0 }
		f := risk.Facts{
			Now: t0, FirstSignIn: bit(0), DeviceKnown: bit(1), NetworkKnown: bit(2),
			SessionNetworkChanged: bit(3), SessionAgentChanged: bit(4),
			IPSuspicious: bit(5), SensitiveClient: bit(6), SensitiveScope: bit(7), IPDenied: bit(8),
		}
		a := risk.Assess(f, rules)
		for name, set := range requirements {
			in := stepup.Input{RequestTime: t0, Now: t0, Done: done, Enrolled: enrolled}
			set(&in)
			ApplyRisk(&in, a)
			d := stepup.Decide(p, in)
			if d.Outcome == stepup.Satisfied {
				t.Fatalf("%s, signals %q (band %s): satisfied with the password alone (acr %s)", name, SignalNames(a), a.Band, d.ACR)
			}
		}
		// And with no requirement at all, a low assessment changes nothing
		// while a higher one never yields less than the password gives.
		in := stepup.Input{RequestTime: t0, Now: t0, Done: done, Enrolled: enrolled}
		ApplyRisk(&in, a)
		if d := stepup.Decide(p, in); d.Outcome == stepup.Satisfied && a.Band > risk.Low {
			t.Fatalf("signals %q (band %s, floor %q): no step-up", SignalNames(a), a.Band, a.Floor)
		}
	}
}
