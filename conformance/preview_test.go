package conformance

import (
	"context"
	"maps"
	"net/url"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin/impact"
	"github.com/keystep/keystep/storage"
)

// TestPolicyPreviewReplaysRealSignIns: the dispatcher records each
// decision's input with its audit event, and the policy preview decides
// the recorded sign-ins again (issue 21, item 3). Under the policy that
// recorded them nothing changes; under proposed policies the counts are
// the ones worked out by hand below.
func TestPolicyPreviewReplaysRealSignIns(t *testing.T) {
	// The scope with a minimum is email: the provider keeps only the
	// scopes it supports (idp supportedScopes), so a payroll:write would
	// not reach the decision today.
	const write = "email"
	mins := map[string]string{write: acrMFA}
	e := newEnv(t, func(c *idp.Config) { c.ScopeMinACR = mins })
	secret := e.enrollTOTP("u-alice")
	e.addUser("bob", "bob-password-1")
	r := e.rp(rpClient, e.rpSecret)
	payroll := url.Values{"scope": {"openid " + write}}

	// 1. alice, email: password, then her TOTP code (mfa).
	b := e.browser()
	a := r.authURL(payroll)
	p := b.signIn(b.get(a.url), alice, alicePass)
	r.mustExchange(r.code(b.submitCode(p, "/login/otp", e.totp(secret)), a), a)
	// 2. bob, email: a password only, so mfa is out of reach.
	e.clock.Advance(time.Minute)
	b = e.browser()
	a = r.authURL(payroll)
	if got := r.rpError(b.goBack(b.signIn(b.get(a.url), "bob", "bob-password-1")), a); got != stepup.ErrUnmet {
		t.Fatalf("bob: %s, want %s", got, stepup.ErrUnmet)
	}
	// 3. alice, openid only: the password is enough.
	e.clock.Advance(time.Minute)
	r.login(e.browser(), nil)

	events, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Types: impact.DecisionTypes()})
	if err != nil {
		t.Fatal(err)
	}
	sis, skipped := impact.SignIns(events)
	if len(sis) != 3 || len(skipped) != 0 {
		t.Fatalf("%d sign-ins, skipped %v; want 3, none", len(sis), skipped)
	}
	pol := func(mins map[string]string) *impact.Policy {
		return &impact.Policy{Levels: stepup.DefaultPolicy(), ScopeMinACR: mins, Risk: risk.DefaultRules()}
	}
	cur := pol(mins)
	for _, tc := range []struct {
		name string
		prop *impact.Policy
		want impact.Counts
	}{
		{"the same policy", pol(mins), impact.Counts{SignIns: 3}},
		// alice's code is no longer asked (1), bob gets in (2).
		{"no scope minimum", pol(nil), impact.Counts{SignIns: 3, Removed: 1, Allowed: 1,
			ByWhat:   map[string]int{"fewer_prompts totp": 1, "allowed unmet_authentication_requirements": 1},
			ByReason: map[string]int{"fewer_prompts scope_minimum → " + acrMFA: 1, "allowed now reaches " + acrSFA: 1}}},
		// alice has no passkey: denied (1); bob already was (2).
		{"email needs phr", pol(map[string]string{write: stepup.ACRPhishing}), impact.Counts{SignIns: 3, Denied: 1,
			ByWhat:   map[string]int{"denied unmet_authentication_requirements": 1},
			ByReason: map[string]int{"denied cannot reach phr": 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := impact.Preview(sis, skipped, cur, tc.prop)
			got := rep.Total
			if got.SignIns != tc.want.SignIns || got.Removed != tc.want.Removed || got.Allowed != tc.want.Allowed ||
				got.Denied != tc.want.Denied || got.ExtraPrompt != 0 || got.Different != 0 ||
				!maps.Equal(got.ByWhat, tc.want.ByWhat) || !maps.Equal(got.ByReason, tc.want.ByReason) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			if rep.RecordedDiffers != 0 {
				t.Errorf("%d sign-ins replay otherwise than recorded under the policy that recorded them", rep.RecordedDiffers)
			}
		})
	}
}
