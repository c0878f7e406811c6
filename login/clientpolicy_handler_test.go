package login_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// payrollClient is a first-party app whose own policy the tests set.
const payrollClient = "payroll"

// withClientPolicy gives clientID its own policy (policy.Client).
func withClientPolicy(clientID string, c policy.Client) option {
	return func(cfg *fixtureConfig) {
		if cfg.Clients == nil {
			cfg.Clients = map[string]policy.Client{}
		}
		cfg.Clients[clientID] = c
	}
}

func newPayroll(t *testing.T, c policy.Client, opts ...option) *fixture {
	t.Helper()
	f := newFixture(t, append(opts, withClientPolicy(payrollClient, c))...)
	f.addClient(storage.Client{ID: payrollClient, Name: "Acme Payroll", FirstParty: true})
	return f
}

// The step-up at a client offers only the second factors its policy
// allows, the password always; the preferred one first.
func TestClientFactorsOffered(t *testing.T) {
	for _, tt := range []struct {
		name      string
		client    policy.Client
		wantForm  string   // the page shown first
		wantOther []string // the other ways offered
	}{
		{"no client policy: the code first, recovery the other way", policy.Client{}, "/login/otp", []string{"recovery"}},
		{"only recovery codes allowed", policy.Client{Factors: []stepup.Method{stepup.Recovery}}, "/login/recovery", nil},
		{"recovery preferred", policy.Client{Preferred: stepup.Recovery}, "/login/recovery", []string{"totp"}},
		{"only the app allowed, recovery preferred elsewhere", policy.Client{Factors: []stepup.Method{stepup.TOTP}}, "/login/otp", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newPayroll(t, tt.client)
			f.enrollTOTP(aliceID)
			f.recoveryCodes(aliceID)
			b := f.browser()
			id := f.request(b, payrollClient, acrValues(acrMFA))
			f.mustContinue(b.password(id, alice, alicePass), id)
			p := b.open(id)
			if !hasForm(p.body, tt.wantForm) {
				t.Fatalf("want the page posting to %s, got %d\n%.2000s", tt.wantForm, p.status, p.body)
			}
			ev := f.audit(storage.EventStepupRequested)
			if len(ev) != 1 {
				t.Fatalf("%d stepup.requested events", len(ev))
			}
			offered := strings.Fields(ev[0].Details["offered"])
			if diff := cmp.Diff(tt.wantOther, offered[1:], cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("offered %v (-want +got others):\n%s", offered, diff)
			}
			if got := ev[0].Details[login.PolicyVersionKey]; got != "0" {
				t.Errorf("policy_version %q, want 0", got)
			}
		})
	}
}

// A user whose only second factor is not allowed at a client cannot reach
// a level needing one there: the decision fails as for any unreachable
// level, and says so in its audit event. The same user reaches it at
// another client.
func TestClientFactorsUnreachable(t *testing.T) {
	f := newPayroll(t, policy.Client{Factors: []stepup.Method{stepup.WebAuthn}})
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	id := f.request(b, payrollClient, acrValues(acrMFA), essentialACR(acrMFA))
	f.mustContinue(b.password(id, alice, alicePass), id)
	p := goBack(t, id, b.open(id))
	if code, _ := errorOf(t, p.location); code != stepup.ErrUnmet {
		t.Fatalf("error %q, want %s", code, stepup.ErrUnmet)
	}
	ev := f.audit(storage.EventLoginFailed)
	if len(ev) != 1 || ev[0].Reason != stepup.ErrUnmet || ev[0].Details["why"] != "level out of reach: not offered for this app" || ev[0].Details[login.PolicyVersionKey] != "0" {
		t.Fatalf("login.failed %+v, want one out-of-reach failure with policy_version 0", ev)
	}
	// The replay records what the decision saw, and what the client's
	// policy kept from it.
	r, err := signin.ParseReplay(ev[0].Details[signin.ReplayKey])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]signin.ReplayFactor{{Method: stepup.Password}}, r.Enrolled); diff != "" {
		t.Errorf("replay enrolled (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]signin.ReplayFactor{{Method: stepup.TOTP}}, r.Disallowed); diff != "" {
		t.Errorf("replay disallowed (-want +got):\n%s", diff)
	}
	// The control: the same person at a client without that policy.
	f.clock.Advance(time.Minute)
	f.signInMFA(f.browser(), alice, alicePass, secret)
}

// A factor the client does not allow is refused at its endpoint before
// anything is checked or spent, audited, and changes nothing; a passkey
// ceremony too.
func TestClientFactorNotAllowedIsRefused(t *testing.T) {
	t.Run("a code at a passkey-only client", func(t *testing.T) {
		f := newPayroll(t, policy.Client{Factors: []stepup.Method{stepup.WebAuthn}})
		secret := f.enrollTOTP(aliceID)
		b := f.browser()
		id := f.request(b, payrollClient, acrValues(acrMFA))
		f.mustContinue(b.password(id, alice, alicePass), id)
		before := f.sessions(aliceID)
		code := f.totp(secret)
		got := b.code("/login/otp", id, code)
		if got.status != http.StatusBadRequest || !says(got.body, "That step isn't expected now") {
			t.Fatalf("got %d, want 400 \"not expected\"\n%.1500s", got.status, got.body)
		}
		if diff := cmp.Diff(before, f.sessions(aliceID), cmpopts.IgnoreFields(storage.Session{}, "LastSeen")); diff != "" {
			t.Errorf("sessions changed (-before +after):\n%s", diff)
		}
		if ar, ok := f.authRequest(id); !ok || ar.Done || ar.FailedAttempts != 0 {
			t.Errorf("request changed: ok=%v done=%v failures=%d", ok, ar.Done, ar.FailedAttempts)
		}
		evs := f.audit(storage.EventStepupFactor)
		if len(evs) != 1 || evs[0].Outcome != "denied" || evs[0].Reason != "factor not allowed for this app" || evs[0].Details["factor"] != "totp" {
			t.Fatalf("stepup.factor audit %+v, want one denial: not allowed", evs)
		}
		// The code was not spent: where the app is allowed, it works.
		want := f.request(b, appClient, acrValues(acrMFA))
		if p := b.open(want); !hasForm(p.body, "/login/otp") {
			t.Fatalf("want the code page at the app, got %d", p.status)
		}
		f.mustContinue(b.code("/login/otp", want, code), want)
	})
	t.Run("a passkey at a client allowing only the app", func(t *testing.T) {
		f := newPayroll(t, policy.Client{Factors: []stepup.Method{stepup.TOTP}}, withPasskeys(t))
		b := f.browser()
		id := f.request(b, payrollClient)
		if p := b.open(id); strings.Contains(p.body, "data-passkey") {
			t.Errorf("the sign-in page offers a passkey at a client that does not allow one")
		}
		got := b.postJSON("/login/webauthn/options", map[string]string{"id": id})
		if got.status != http.StatusForbidden {
			t.Fatalf("passkey options: %d, want 403\n%.1000s", got.status, got.body)
		}
		evs := f.audit(storage.EventStepupFactor)
		if len(evs) != 1 || evs[0].Outcome != "denied" || evs[0].Reason != "factor not allowed for this app" || evs[0].Details["factor"] != "webauthn" {
			t.Fatalf("stepup.factor audit %+v, want one denial: not allowed", evs)
		}
		if got := b.postJSON("/login/webauthn/verify", map[string]any{"id": id, "credential": map[string]string{}}); got.status != http.StatusForbidden {
			t.Fatalf("passkey verify: %d, want 403", got.status)
		}
	})
}

// Factors done in the session count at a client only if its policy
// allows them: a client's factors are the factors this app accepts, not
// only what it offers (issue 21 review; this used to pin the opposite). A
// TOTP done at another app does not get the passkey-only app its level:
// with nothing allowed to reach it, the person sees the out-of-reach page
// and the app gets the error. At an app that accepts recovery codes, the
// step-up asks for one even though the session did TOTP a minute ago, and
// the amr names only what the acr rests on.
func TestClientFactorsDoneCountOnlyIfAllowed(t *testing.T) {
	t.Run("nothing allowed left: the out-of-reach page", func(t *testing.T) {
		f := newPayroll(t, policy.Client{Factors: []stepup.Method{stepup.WebAuthn}})
		secret := f.enrollTOTP(aliceID)
		b := f.browser()
		f.signInMFA(b, alice, alicePass, secret)
		id := f.request(b, payrollClient, acrValues(acrMFA), essentialACR(acrMFA))
		checkDispatch(t, f, id, b.open(id), dispatchWant{oauthErr: stepup.ErrUnmet, viaPage: true})
		if ev := f.audit(storage.EventLoginCompleted); ev[len(ev)-1].ClientID == payrollClient {
			t.Fatalf("login.completed at payroll %+v: the session's TOTP counted", ev[len(ev)-1].Details)
		}
	})
	t.Run("an allowed factor is asked for; amr names only it", func(t *testing.T) {
		f := newPayroll(t, policy.Client{Factors: []stepup.Method{stepup.Recovery}})
		secret := f.enrollTOTP(aliceID)
		codes := f.recoveryCodes(aliceID)
		b := f.browser()
		f.signInMFA(b, alice, alicePass, secret)
		f.clock.Advance(time.Minute)
		id := f.request(b, payrollClient, acrValues(acrMFA), essentialACR(acrMFA))
		checkDispatch(t, f, id, b.open(id), dispatchWant{status: http.StatusOK, form: "/login/recovery"})
		f.mustContinue(b.code("/login/recovery", id, codes[0]), id)
		f.mustComplete(b.open(id), id)
		// The decision that finished counted the password and the recovery
		// code, not the session's TOTP; amr (pwd, otp for the code, mfa)
		// is made from what it counted.
		ev := f.audit(storage.EventLoginCompleted)
		last := ev[len(ev)-1]
		r, err := signin.ParseReplay(last.Details[signin.ReplayKey])
		if err != nil {
			t.Fatal(err)
		}
		var done []stepup.Method
		for _, d := range r.Done {
			done = append(done, d.Method)
		}
		if last.ClientID != payrollClient || last.Details["achieved_acr"] != acrMFA || slices.Contains(done, stepup.TOTP) || !slices.Contains(done, stepup.Recovery) {
			t.Fatalf("login.completed at %s acr %q counted %v: want mfa from the password and the recovery code, not the TOTP", last.ClientID, last.Details["achieved_acr"], done)
		}
		if ar, _ := f.authRequest(id); ar.ACR != acrMFA || !slices.Equal(ar.AMR, []string{"mfa", "otp", "pwd"}) {
			t.Fatalf("acr %q amr %v", ar.ACR, ar.AMR)
		}
	})
}
