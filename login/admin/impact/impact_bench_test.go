package impact_test

import (
	"testing"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin/impact"
)

// hundredThousand is the history of TestPreview ten thousand times over:
// 100,000 recorded sign-ins (170,000 audit events).
func hundredThousand(b *testing.B) []recorded {
	b.Helper()
	var rs []recorded
	for range 10000 {
		rs = append(rs, history()...)
	}
	return rs
}

// BenchmarkPreview replays 100,000 recorded sign-ins under the current
// and a proposed policy (issue 21: under 5 s on 2 vCPU).
func BenchmarkPreview(b *testing.B) {
	sis, skipped := impact.SignIns(log(hundredThousand(b)))
	if len(sis) != 100000 {
		b.Fatalf("%d sign-ins", len(sis))
	}
	cur := policy(stepup.ACRMultiFactor, nil, risk.DefaultRules())
	prop := policy(stepup.ACRPhishing, nil, risk.DefaultRules())
	b.ResetTimer()
	for b.Loop() {
		r := impact.Preview(sis, skipped, cur, prop)
		if r.Total.ExtraPrompt != 40000 || r.Total.Denied != 20000 {
			b.Fatalf("total %+v", r.Total)
		}
	}
}

// BenchmarkSignIns reads the 170,000 audit events of 100,000 sign-ins:
// the other half of a preview's work once the events are loaded.
func BenchmarkSignIns(b *testing.B) {
	evs := log(hundredThousand(b))
	b.ResetTimer()
	for b.Loop() {
		if sis, _ := impact.SignIns(evs); len(sis) != 100000 {
			b.Fatalf("%d sign-ins", len(sis))
		}
	}
}
