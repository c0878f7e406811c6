package stepup

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestDecideInvariants checks, over many generated inputs, the promises that
// hold for every decision: no zero Decision, no acr the factors do not meet,
// auth_time inside max_age, no UI under prompt=none, and Next drawn from the
// enrolled factors with no TOTP or recovery code as a first factor.
func TestDecideInvariants(t *testing.T) {
	p := DefaultPolicy()
	rng := rand.New(rand.NewPCG(1, 2))
	values := append(p.Values(), "gold", "")
	pick := func() string { return values[rng.IntN(len(values))] }
	flip := func() bool { return rng.IntN(2) == 0 }
	minutes := func(n int) time.Duration { return time.Duration(rng.IntN(n)) * time.Minute }

	for i := range 20000 {
		in := Input{
			Essential:   flip(),
			Strict:      rng.IntN(4) == 0,
			RiskDeny:    rng.IntN(20) == 0,
			RiskHard:    flip(),
			PromptLogin: rng.IntN(5) == 0,
			PromptNone:  rng.IntN(5) == 0,
			RequestTime: t0.Add(-minutes(10)),
			Now:         t0,
		}
		for range rng.IntN(3) {
			in.Requested = append(in.Requested, pick())
		}
		if rng.IntN(4) == 0 {
			in.ClientMin = pick()
		}
		if rng.IntN(4) == 0 {
			in.ScopeMins = []string{pick()}
		}
		if rng.IntN(4) == 0 {
			in.RiskFloor = pick()
		}
		if rng.IntN(3) == 0 {
			in.MaxAge = dur(minutes(120))
		}
		if rng.IntN(3) == 0 {
			in.TransactionMin = pick()
			if flip() {
				in.TransactionMaxAge = dur(minutes(60))
			}
		}
		for range rng.IntN(5) {
			in.Done = append(in.Done, Factor{Method: methods[rng.IntN(len(methods))], At: t0.Add(-minutes(900) + 5*time.Minute), UserVerified: flip(), DeviceBound: flip(), Provisional: flip()})
		}
		for _, m := range methods {
			if flip() {
				in.Enrolled = append(in.Enrolled, Enrolled{Method: m, UserVerifying: flip(), DeviceBound: flip(), Provisional: flip()})
			}
		}

		d := Decide(p, in)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("input %d: %+v\ndecision: %+v\n"+format, append([]any{i, in, d}, args...)...)
		}
		switch d.Outcome {
		case Satisfied:
			if !p.Satisfies(d.ACR, in.Done, in.Now) {
				fail("acr %q is not met by the factors", d.ACR)
			}
			// DESIGN §3.3: never below what was enforced, and either a
			// value the RP sent (as it spelled it) or a canonical name.
			acrRank, lvl, _ := p.Lookup(d.ACR)
			if targetRank, _, _ := p.Lookup(d.Target); acrRank < targetRank {
				fail("acr %q is below the enforced target %q", d.ACR, d.Target)
			}
			if lvl.ACR != d.ACR && !slices.Contains(in.Requested, d.ACR) {
				fail("acr %q is an alias the RP did not send", d.ACR)
			}
			if in.MaxAge != nil && d.AuthTime.Before(in.RequestTime.Add(-*in.MaxAge)) {
				fail("auth_time is older than max_age")
			}
			if in.PromptLogin && d.AuthTime.Before(in.RequestTime) {
				fail("auth_time predates a prompt=login request")
			}
			if d.AuthTime.After(in.Now) || len(d.AMR) == 0 {
				fail("bad auth_time or empty amr")
			}
			if in.TransactionMin != "" {
				// A transaction is approved by a factor of this request, at
				// a level at least the details' floor, within their max age.
				if !slices.ContainsFunc(in.Done, func(f Factor) bool { return !f.At.Before(in.RequestTime) && !f.At.After(in.Now) }) {
					fail("a transaction approved with no factor done for the request")
				}
				txRank, _, ok := p.Lookup(in.TransactionMin)
				if acrRank, _, _ := p.Lookup(d.ACR); !ok || acrRank < txRank {
					fail("acr %q is below the transaction's floor %q", d.ACR, in.TransactionMin)
				}
				if in.TransactionMaxAge != nil && d.AuthTime.Before(in.RequestTime.Add(-*in.TransactionMaxAge)) {
					fail("auth_time is older than the transaction's max age")
				}
				if (d.ACR == phr || d.ACR == phrh) && !slices.ContainsFunc(in.Done, func(f Factor) bool {
					return f.Method == WebAuthn && !f.At.Before(in.RequestTime) && !f.At.After(in.Now) && !f.Provisional
				}) {
					fail("a phishing-resistant transaction approved without a passkey used for the request")
				}
			}
			if d.Next != nil || d.Reasons != nil || d.Error != "" {
				fail("fields of another outcome are set")
			}
		case NeedFactor:
			if in.PromptNone {
				fail("a factor asked under prompt=none")
			}
			if len(d.Next) == 0 || len(d.Reasons) == 0 {
				fail("NeedFactor with nothing to offer or no reason")
			}
			anonymous := len(in.Enrolled) == 0 && len(in.Done) == 0
			for _, m := range d.Next {
				if !anonymous && !slices.ContainsFunc(in.Enrolled, func(e Enrolled) bool { return e.Method == m }) {
					fail("offered %s, which is not enrolled", m)
				}
			}
			if (d.Target == phr || d.Target == phrh) && (slices.Contains(d.Next, TOTP) || slices.Contains(d.Next, Recovery)) {
				fail("TOTP or recovery offered for a phishing-resistant target")
			}
			trusted := slices.ContainsFunc(in.Enrolled, func(e Enrolled) bool { return e.Method == WebAuthn && !e.Provisional })
			if (d.Target == phr || d.Target == phrh) && slices.Contains(d.Next, WebAuthn) && !trusted && !anonymous {
				fail("a passkey offered for a phishing-resistant target with only provisional ones enrolled")
			}
			if slices.Contains(d.Reasons, ReasonNoSession) && (slices.Contains(d.Next, TOTP) || slices.Contains(d.Next, Recovery)) {
				fail("TOTP or recovery offered as a first factor")
			}
		case Fail:
			if d.Error == "" {
				fail("Fail without an error code")
			}
			if in.RiskDeny && d.Error != ErrAccessDenied {
				fail("risk deny did not give access_denied")
			}
		default:
			fail("zero or unknown outcome")
		}
		for j := 1; j < len(d.Reasons); j++ {
			if reasonIndex(d.Reasons[j-1]) >= reasonIndex(d.Reasons[j]) {
				fail("reasons repeated or out of order")
			}
		}
	}
}
