package impact_test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin/impact"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

const (
	payroll      = "payroll"
	wiki         = "wiki"
	payrollWrite = "payroll:write"
)

var (
	pwdOnly  = stepup.Enrolled{Method: stepup.Password}
	totpEnr  = stepup.Enrolled{Method: stepup.TOTP}
	passkey  = stepup.Enrolled{Method: stepup.WebAuthn, UserVerifying: true}
	withTOTP = []stepup.Enrolled{pwdOnly, totpEnr}
	withBoth = []stepup.Enrolled{pwdOnly, totpEnr, passkey}
	withKey  = []stepup.Enrolled{pwdOnly, passkey}
)

// recorded is one sign-in as the dispatcher records it.
type recorded struct {
	user, client string
	scopes       []string
	earlier      []stepup.Method // the session's factors besides the password, done an hour before
	enrolled     []stepup.Enrolled
	did          []stepup.Method // factors the person did when asked
	signals      string
}

// log writes the audit events of rs as login/flow.go does: a
// stepup.requested per prompt, then login.completed, each with the
// decision's input.
func log(rs []recorded) []storage.AuditEvent {
	var evs []storage.AuditEvent
	seq := int64(0)
	add := func(typ storage.EventType, r recorded, rp signin.Replay) {
		seq++
		evs = append(evs, storage.AuditEvent{Seq: seq, Type: typ, UserID: r.user, ClientID: r.client,
			Details: map[string]string{signin.ReplayKey: rp.Encode(), "risk_signals": r.signals}})
	}
	for i, r := range rs {
		at := t0.Add(time.Duration(i) * time.Hour)
		in := stepup.Input{RequestTime: at, Now: at, Done: []stepup.Factor{{Method: stepup.Password, At: at}}, Enrolled: r.enrolled}
		for _, m := range r.earlier {
			in.Done = append(in.Done, stepup.Factor{Method: m, At: at.Add(-time.Hour), UserVerified: m == stepup.WebAuthn})
		}
		id := fmt.Sprintf("ar%d", i)
		for _, m := range r.did {
			add(storage.EventStepupRequested, r, signin.ReplayOf(id, r.scopes, in))
			in.Now = in.Now.Add(time.Minute)
			in.Done = append(in.Done, stepup.Factor{Method: m, At: in.Now, UserVerified: m == stepup.WebAuthn, ForRequest: true})
		}
		add(storage.EventLoginCompleted, r, signin.ReplayOf(id, r.scopes, in))
	}
	return evs
}

func policy(scopeMin string, clients map[string]impact.ClientFloor, rules risk.Rules) *impact.Policy {
	p := &impact.Policy{Levels: stepup.DefaultPolicy(), ScopeMinACR: map[string]string{}, Clients: clients, Risk: rules}
	if scopeMin != "" {
		p.ScopeMinACR[payrollWrite] = scopeMin
	}
	return p
}

// history: ten sign-ins, nine to payroll with payroll:write (mfa today).
//
//	#0-2 tess (password, TOTP, passkey) did TOTP        phr: passkey instead → extra prompt webauthn
//	#3-4 nils (password, TOTP only)     did TOTP        phr: unreachable → denied
//	#5-6 pia  (password, passkey)       did passkey     phr: same prompt → unchanged
//	#7   sam  session has a passkey from an hour ago   phr: met already → unchanged
//	#8   tess session has TOTP from an hour ago        mfa met, phr: passkey → extra prompt webauthn
//	#9   nils to wiki, openid only                      unchanged
func history() []recorded {
	var rs []recorded
	pw := []string{"openid", payrollWrite}
	for range 3 {
		rs = append(rs, recorded{user: "tess", client: payroll, scopes: pw, enrolled: withBoth, did: []stepup.Method{stepup.TOTP}})
	}
	for range 2 {
		rs = append(rs, recorded{user: "nils", client: payroll, scopes: pw, enrolled: withTOTP, did: []stepup.Method{stepup.TOTP}})
	}
	for range 2 {
		rs = append(rs, recorded{user: "pia", client: payroll, scopes: pw, enrolled: withKey, did: []stepup.Method{stepup.WebAuthn}})
	}
	rs = append(rs, recorded{user: "sam", client: payroll, scopes: pw, enrolled: withKey, earlier: []stepup.Method{stepup.WebAuthn}})
	rs = append(rs, recorded{user: "tess", client: payroll, scopes: pw, enrolled: withBoth, earlier: []stepup.Method{stepup.TOTP}})
	rs = append(rs, recorded{user: "nils", client: wiki, scopes: []string{"openid"}, enrolled: withTOTP})
	return rs
}

func TestPreview(t *testing.T) {
	highAt50 := risk.DefaultRules()
	highAt50.High = 50
	rs := history()
	rs[3].signals = risk.NewDevice + " " + risk.NewNetwork // 25 + 25: medium today, high at 50
	cur := policy(stepup.ACRMultiFactor, nil, risk.DefaultRules())
	for _, tc := range []struct {
		name       string
		prop       *impact.Policy
		total      impact.Counts
		payroll    impact.Counts
		wiki       impact.Counts
		exampleSeq []int64
	}{{
		name: "payroll:write needs phr",
		prop: policy(stepup.ACRPhishing, nil, risk.DefaultRules()),
		// Extra prompts: #0-2 and #8 (4, all passkeys); denied: #3-4.
		total: impact.Counts{SignIns: 10, ExtraPrompt: 4, Denied: 2,
			ByWhat:   map[string]int{"extra_prompt webauthn": 4, "denied unmet_authentication_requirements": 2},
			ByReason: map[string]int{"extra_prompt scope_minimum → phr": 4, "denied cannot reach phr": 2}},
		payroll: impact.Counts{SignIns: 9, ExtraPrompt: 4, Denied: 2,
			ByWhat:   map[string]int{"extra_prompt webauthn": 4, "denied unmet_authentication_requirements": 2},
			ByReason: map[string]int{"extra_prompt scope_minimum → phr": 4, "denied cannot reach phr": 2}},
		wiki: impact.Counts{SignIns: 1},
		// The first event of #0, #1, #2 (two events each: 1, 3, 5) and of
		// #3, #4 (7, 9).
		exampleSeq: []int64{1, 3, 5, 7, 9},
	}, {
		name: "no scope minimum",
		prop: policy("", nil, risk.DefaultRules()),
		// The payroll prompts of #0-6 go (7), but for #3: its new device
		// and network score 50, medium, whose floor is mfa too; #7, #8 had
		// none. 6: four TOTP (#0-2, #4), two passkeys (#5-6).
		total: impact.Counts{SignIns: 10, Removed: 6,
			ByWhat:   map[string]int{"fewer_prompts totp": 4, "fewer_prompts webauthn": 2},
			ByReason: map[string]int{"fewer_prompts scope_minimum → urn:keystep:acr:mfa": 6}},
		payroll: impact.Counts{SignIns: 9, Removed: 6,
			ByWhat:   map[string]int{"fewer_prompts totp": 4, "fewer_prompts webauthn": 2},
			ByReason: map[string]int{"fewer_prompts scope_minimum → urn:keystep:acr:mfa": 6}},
		wiki:       impact.Counts{SignIns: 1},
		exampleSeq: []int64{1, 3, 5},
	}, {
		name: "wiki needs mfa",
		prop: policy(stepup.ACRMultiFactor, map[string]impact.ClientFloor{wiki: {MinACR: stepup.ACRMultiFactor}}, risk.DefaultRules()),
		// #9: nils has a TOTP app: one prompt more.
		total: impact.Counts{SignIns: 10, ExtraPrompt: 1,
			ByWhat:   map[string]int{"extra_prompt totp": 1},
			ByReason: map[string]int{"extra_prompt client_minimum → urn:keystep:acr:mfa": 1}},
		payroll: impact.Counts{SignIns: 9},
		wiki: impact.Counts{SignIns: 1, ExtraPrompt: 1,
			ByWhat:   map[string]int{"extra_prompt totp": 1},
			ByReason: map[string]int{"extra_prompt client_minimum → urn:keystep:acr:mfa": 1}},
		// #0-6 wrote two events each (1-14), #7 and #8 one: #9 is 17.
		exampleSeq: []int64{17},
	}, {
		name: "high risk from 50",
		prop: policy(stepup.ACRMultiFactor, nil, highAt50),
		// #3: new device and network score 50, now high: phr, hard, out
		// of nils's reach.
		total: impact.Counts{SignIns: 10, Denied: 1,
			ByWhat:   map[string]int{"denied access_denied": 1},
			ByReason: map[string]int{"denied cannot reach phr": 1}},
		payroll: impact.Counts{SignIns: 9, Denied: 1,
			ByWhat:   map[string]int{"denied access_denied": 1},
			ByReason: map[string]int{"denied cannot reach phr": 1}},
		wiki:       impact.Counts{SignIns: 1},
		exampleSeq: []int64{7},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			sis, skipped := impact.SignIns(log(rs))
			if len(sis) != 10 || len(skipped) != 0 {
				t.Fatalf("SignIns: %d sign-ins, skipped %v; want 10, none", len(sis), skipped)
			}
			r := impact.Preview(sis, skipped, cur, tc.prop)
			same(t, "total", r.Total, tc.total)
			same(t, payroll, r.Clients[payroll], tc.payroll)
			same(t, wiki, r.Clients[wiki], tc.wiki)
			var seqs []int64
			for _, e := range r.Examples {
				seqs = append(seqs, e.Seq)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tc.exampleSeq) {
				t.Errorf("examples %v, want %v", seqs, tc.exampleSeq)
			}
			if r.RecordedDiffers != 0 || len(r.Caveats) != 0 {
				t.Errorf("recorded differs %d, caveats %q; want none", r.RecordedDiffers, r.Caveats)
			}
		})
	}
}

func same(t *testing.T, what string, got, want impact.Counts) {
	t.Helper()
	if got.SignIns != want.SignIns || got.ExtraPrompt != want.ExtraPrompt || got.Denied != want.Denied ||
		got.Removed != want.Removed || got.Allowed != want.Allowed || got.Different != want.Different ||
		!maps.Equal(got.ByWhat, want.ByWhat) || !maps.Equal(got.ByReason, want.ByReason) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// TestNotReplayable: events recorded without their decision input are
// counted, not guessed; a failure before any session is no policy's.
func TestNotReplayable(t *testing.T) {
	evs := log(history()[:1])
	evs = append(evs,
		storage.AuditEvent{Seq: 10, Type: storage.EventLoginCompleted, ClientID: payroll, UserID: "old"},
		storage.AuditEvent{Seq: 11, Type: storage.EventLoginFailed, ClientID: payroll, Reason: stepup.ErrLoginRequired, Details: map[string]string{"why": "no session"}},
		storage.AuditEvent{Seq: 12, Type: storage.EventLoginFailed, ClientID: payroll, Details: map[string]string{signin.ReplayKey: "{"}},
	)
	sis, skipped := impact.SignIns(evs)
	want := impact.Skipped{"recorded without its decision input (login.completed)": 1, "decision input unreadable (login.failed)": 1}
	if len(sis) != 1 || !maps.Equal(skipped, want) {
		t.Fatalf("SignIns: %d, skipped %v; want 1, %v", len(sis), skipped, want)
	}
	if r := impact.Preview(sis, skipped, policy("", nil, risk.DefaultRules()), policy("", nil, risk.DefaultRules())); !maps.Equal(r.NotReplayable, want) {
		t.Errorf("report not replayable %v, want %v", r.NotReplayable, want)
	}
}

// TestRecordedDiffers: a sign-in recorded as completed that the current
// policy would refuse is counted, so a preview against a policy other
// than the one that decided the log says so.
func TestRecordedDiffers(t *testing.T) {
	rs := history()[3:4] // nils, TOTP only
	sis, _ := impact.SignIns(log(rs))
	phr := policy(stepup.ACRPhishing, nil, risk.DefaultRules())
	if r := impact.Preview(sis, nil, phr, phr); r.RecordedDiffers != 1 {
		t.Errorf("recorded differs %d, want 1", r.RecordedDiffers)
	}
}

func TestCaveats(t *testing.T) {
	a, b := risk.DefaultRules(), risk.DefaultRules()
	b.MinAccountFailures, b.MaxTravelKmh = 3, 500
	got := impact.Caveats(&impact.Policy{Risk: a}, &impact.Policy{Risk: b})
	if len(got) != 2 {
		t.Errorf("caveats %q, want min_account_failures and max_travel_kmh", got)
	}
}
