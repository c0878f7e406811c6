package risk

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAssess measures a returning user on a new device: the common
// case that raises a signal.
func BenchmarkAssess(b *testing.B) {
	r := DefaultRules()
	f := Facts{Now: t0, NetworkKnown: true, Travel: &Travel{From: london, FromAt: t0.Add(-2 * time.Hour), To: paris}}
	b.ReportAllocs()
	for b.Loop() {
		if a := Assess(f, r); a.Band != Low {
			b.Fatalf("Assess().Band = %v, want low", a.Band)
		}
	}
}

// BenchmarkAssessHigh measures an attack that raises most signals.
func BenchmarkAssessHigh(b *testing.B) {
	r := DefaultRules()
	f := Facts{
		Now: t0, SessionNetworkChanged: true, SessionAgentChanged: true,
		AccountFailures: 9, IPFailures: 99, IPUsernames: 9, IPSuspicious: true,
		Travel: &Travel{From: london, FromAt: t0.Add(-time.Minute), To: newYork},
	}
	b.ReportAllocs()
	for b.Loop() {
		if a := Assess(f, r); a.Band != High {
			b.Fatalf("Assess().Band = %v, want high", a.Band)
		}
	}
}

func ExampleAssess() {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	// A returning user signs in from a laptop and a network never seen
	// before for them.
	a := Assess(Facts{Now: t0}, DefaultRules())
	fmt.Println(a.Score, a.Band, a.Floor)
	for _, s := range a.Signals {
		fmt.Println(s.Name, s.Weight, s.Reason)
	}
	// Output:
	// 50 medium urn:keystep:acr:mfa
	// new_device 25 You're signing in from a new device.
	// new_network 25 You're signing in from a network you haven't used before.
}
