package conformance

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

func withRisk(f func(*signin.RiskConfig)) envOption {
	return func(c *idp.Config) {
		c.Risk = signin.DefaultRiskConfig()
		f(&c.Risk)
	}
}

// establish gives alice a sign-in history from home: one browser, one network.
func establish(t *testing.T, e *env, r *rp) *browser {
	t.Helper()
	home := e.browser().from("198.51.100.10")
	r.login(home, nil)
	return home
}

func (e *env) lastAudit(typ storage.EventType) storage.AuditEvent {
	e.t.Helper()
	ev, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ, Newest: true, Limit: 1})
	if err != nil || len(ev) == 0 {
		e.t.Fatalf("no %s audit event (%v)", typ, err)
	}
	return ev[0]
}

// A first sign-in ever is not an anomaly; the same device and network
// afterwards ask nothing more.
func TestRiskFirstSignInAndHomeAreQuiet(t *testing.T) {
	e := newEnv(t, behindProxy)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	home := establish(t, e, r)
	if got := e.lastAudit("login.completed").Details["risk_signals"]; got != "first_sign_in" {
		t.Fatalf("first sign-in signals %q", got)
	}
	e.clock.Advance(time.Second)
	a := r.authURL(url.Values{"prompt": {"login"}})
	p := home.signIn(home.get(a.url), alice, alicePass)
	tok := r.mustExchange(r.code(p, a), a)
	if tok.claims.ACR != acrSFA {
		t.Fatalf("acr %s", tok.claims.ACR)
	}
}

// A new device on a new network (medium) raises the floor to mfa: a user
// with an authenticator app is asked for it, told why, though the app asked
// for nothing.
func TestRiskNewDeviceAndNetworkAsksForSecondFactor(t *testing.T) {
	e := newEnv(t, behindProxy)
	secret := e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	establish(t, e, r)

	stranger := e.browser().from("203.0.113.50")
	a := r.authURL(nil)
	p := stranger.signIn(stranger.get(a.url), alice, alicePass)
	if !p.has("/login/otp") {
		t.Fatalf("medium risk did not ask for the second factor: %d\n%.2000s", p.status, p.body)
	}
	if !strings.Contains(p.body, "new device") && !strings.Contains(p.body, "new network") && !strings.Contains(p.body, "somewhere new") {
		t.Fatalf("the page does not say why:\n%.3000s", p.body)
	}
	tok := r.mustExchange(r.code(stranger.submitCode(p, "/login/otp", e.totp(secret)), a), a)
	if tok.claims.ACR != acrMFA {
		t.Fatalf("acr %s", tok.claims.ACR)
	}
	ev := e.lastAudit("login.completed")
	if ev.Details["risk_band"] != "medium" || !strings.Contains(ev.Details["risk_signals"], "new_device") {
		t.Fatalf("audit %v", ev.Details)
	}
	// Now that device and network are known, the next sign-in is quiet.
	e.clock.Advance(time.Second)
	a = r.authURL(url.Values{"prompt": {"login"}})
	p = stranger.signIn(stranger.get(a.url), alice, alicePass)
	if r.code(p, a) == "" {
		t.Fatal("no code")
	}
}

// Medium risk with no second factor to reach mfa: allowed at the real
// level, and audited as waived.
func TestRiskMediumWaivedWithoutSecondFactor(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	establish(t, e, r)
	stranger := e.browser().from("203.0.113.51")
	tok := r.login(stranger, nil)
	if tok.claims.ACR != acrSFA {
		t.Fatalf("acr %s", tok.claims.ACR)
	}
	if ev := e.lastAudit("login.completed"); ev.Details["risk_waived"] != "true" || ev.Details["risk_band"] != "medium" {
		t.Fatalf("audit %v", ev.Details)
	}
}

// A denied address is refused outright, whatever the factors.
func TestRiskDeniedAddress(t *testing.T) {
	deny, err := risk.ParsePrefixes([]string{"203.0.113.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, behindProxy, withRisk(func(c *signin.RiskConfig) { c.Deny = deny }))
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser().from("203.0.113.9")
	a := r.authURL(nil)
	if got := r.rpError(b.signIn(b.get(a.url), alice, alicePass), a); got != "access_denied" {
		t.Fatalf("error %q", got)
	}
}

// Impossible travel is high risk: the floor is phr and hard, so a user who
// cannot reach it is denied rather than waved through.
func TestRiskImpossibleTravel(t *testing.T) {
	locs, err := risk.ParseLocations(strings.NewReader("198.51.100.0/24,51.5,-0.12,London\n203.0.113.0/24,-33.87,151.21,Sydney\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, behindProxy, withRisk(func(c *signin.RiskConfig) { c.Locations = locs }))
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	establish(t, e, r)
	e.clock.Advance(2 * time.Hour) // London → Sydney in two hours
	b := e.browser().from("203.0.113.9")
	a := r.authURL(nil)
	if got := r.rpError(b.signIn(b.get(a.url), alice, alicePass), a); got != "access_denied" {
		t.Fatalf("error %q", got)
	}
	if !strings.Contains(e.lastAudit("login.failed").Details["risk_signals"], "impossible_travel") {
		t.Fatal("not audited as impossible travel")
	}
}

// A session cookie replayed from another network and browser counts as not
// fresh. With the device cookie stolen too (medium), the password is asked
// again; with the session cookie alone, the device is also new (high) and
// the user has nothing that reaches phr, so the request is denied.
func TestRiskSessionDrift(t *testing.T) {
	e := newEnv(t, behindProxy)
	r := e.rp(rpClient, e.rpSecret)
	home := establish(t, e, r)
	u, _ := url.Parse(e.issuer)
	var stolen []*http.Cookie
	for _, c := range home.client.Jar.Cookies(u) {
		stolen = append(stolen, &http.Cookie{Name: c.Name, Value: c.Value})
	}

	t.Run("all cookies replayed: the password is asked again", func(t *testing.T) {
		thief := e.browser().from("203.0.113.77")
		thief.ua = "curl/8.0"
		thief.client.Jar.SetCookies(u, stolen)
		p := thief.get(r.authURL(nil).url)
		if p.redirect != nil || !strings.Contains(p.body, `type="password"`) {
			t.Fatalf("want the password page, got %d %v\n%.1500s", p.status, p.redirect, p.body)
		}
	})
	t.Run("the session cookie alone: denied", func(t *testing.T) {
		thief := e.browser().from("203.0.113.78")
		thief.ua = "curl/8.0"
		for _, c := range stolen {
			if c.Name == "ks_session" {
				thief.client.Jar.SetCookies(u, []*http.Cookie{c})
			}
		}
		a := r.authURL(nil)
		if got := r.rpError(thief.get(a.url), a); got != "access_denied" {
			t.Fatalf("error %q", got)
		}
	})
}

// The portal is another way in: a password from a context risk refuses or
// challenges does not open it.
func TestRiskAppliesToThePortal(t *testing.T) {
	locs, err := risk.ParseLocations(strings.NewReader("198.51.100.0/24,51.5,-0.12,London\n203.0.113.0/24,-33.87,151.21,Sydney\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, behindProxy, withRisk(func(c *signin.RiskConfig) { c.Locations = locs }))
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	establish(t, e, r)

	t.Run("challenged: the portal asks for the code too", func(t *testing.T) {
		attacker := e.browser().from("192.0.2.200") // unknown place, new device: medium
		a := r.authURL(nil)
		if p := attacker.signIn(attacker.get(a.url), alice, alicePass); !p.has("/login/otp") {
			t.Fatalf("not challenged: %d", p.status)
		}
		p := attacker.get(e.issuer + "/account")
		if strings.Contains(p.body, "Hello, alice") || !p.has("/login/otp") {
			t.Fatalf("the portal opened with the password alone: %d\n%.1500s", p.status, p.body)
		}
	})
	t.Run("denied: the session is ended and the portal stays shut", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		attacker := e.browser().from("203.0.113.9") // Sydney an hour after London: high
		a := r.authURL(nil)
		if got := r.rpError(attacker.signIn(attacker.get(a.url), alice, alicePass), a); got != "access_denied" {
			t.Fatalf("error %q", got)
		}
		if c := sessionCookie(attacker, e); c != "" {
			t.Fatal("a denied sign-in left a session cookie")
		}
		if p := attacker.get(e.issuer + "/account"); strings.Contains(p.body, "Hello, alice") {
			t.Fatal("the portal opened")
		}
	})
}
