package conformance

import (
	"net/url"
	"slices"
	"testing"
	"time"
)

// keystepModules are the step-up checks the suite does not make but an acr
// step-up OP needs (the reference's "(a)–(f)"). They mirror stepup_test.go
// through the suite's client and checks.
var keystepModules = []oidccModule{
	{"keystep-stepup-acr-values", keystepStepUpACRValues},
	{"keystep-essential-acr-unmet", keystepEssentialACRUnmet},
	{"keystep-prompt-none-lower-session", keystepPromptNoneLowerSession},
	{"keystep-refresh-keeps-acr", keystepRefreshKeepsACR},
}

func amrOf(claims map[string]any) []string {
	var out []string
	for _, v := range claims["amr"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

// keystep-stepup-acr-values: a password session asked for mfa shows the
// missing factor (never a silent answer with the old acr), then issues mfa
// with the amr of both factors. An essential request is answered with one of
// its values (OIDC Core §5.5.1.1).
func keystepStepUpACRValues(t *testing.T) {
	s := newSuiteOP(t)
	secret := s.e.enrollTOTP("u-alice")
	b := s.browser()
	_, first := s.login(b, nil)
	if first.claims["acr"] != acrSFA {
		t.Fatalf("first acr %v, want %s", first.claims["acr"], acrSFA)
	}
	s.e.clock.Advance(30 * time.Second)
	a := s.request(url.Values{"acr_values": {acrMFA}})
	p := b.get(s.url(a))
	if p.redirect != nil || !p.has("/login/otp") {
		t.Fatalf("acr_values=mfa over a password session did not ask for the second factor: %d %v", p.status, p.redirect)
	}
	second := s.exchange(s.callback(b.submitCode(p, "/login/otp", s.e.totp(secret)), a), a, nil)
	sameSubject(t, first, second)
	if second.claims["acr"] != acrMFA {
		t.Fatalf("acr %v, want %s", second.claims["acr"], acrMFA)
	}
	amr := amrOf(second.claims)
	for _, m := range []string{"pwd", "otp", "mfa"} {
		if !slices.Contains(amr, m) {
			t.Errorf("amr %v lacks %s (RFC 8176)", amr, m)
		}
	}
	if slices.Equal(amr, amrOf(first.claims)) {
		t.Error("amr did not change with the step-up")
	}
	// Keystep's rule (README, "Integrating an app"): auth_time is the
	// earliest factor of the set that met the level, here the password.
	if authTime(t, second.claims) != authTime(t, first.claims) {
		t.Errorf("auth_time %d, want the password's %d", authTime(t, second.claims), authTime(t, first.claims))
	}
	// (a): an essential acr is met, so acr is one of its values.
	a = s.request(url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + papeMF + `"]}}}`}})
	third := s.exchange(s.callback(s.silent(b, a), a), a, nil)
	if third.claims["acr"] != papeMF {
		t.Fatalf("essential acr answered with %v, want %s", third.claims["acr"], papeMF)
	}
}

// keystep-essential-acr-unmet: an essential acr the user cannot reach ends
// in unmet_authentication_requirements (OpenID Connect Core Unmet
// Authentication Requirements 1.0), state echoed, no code; the signed-in
// person first reads why on a page whose "Go back" sends the error.
func keystepEssentialACRUnmet(t *testing.T) {
	s := newSuiteOP(t)
	b := s.browser()
	s.login(b, nil)
	a := s.request(url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["phr"]}}}`}})
	if got := s.authError(b.goBack(b.get(s.url(a))), a); got != "unmet_authentication_requirements" {
		t.Fatalf("error %q, want unmet_authentication_requirements", got)
	}
	// Voluntary values the user cannot reach must not error (the acr_values
	// module): the session's true acr comes back.
	_, tok := s.login(b, url.Values{"acr_values": {"phr " + acrMFA}})
	if tok.claims["acr"] != acrSFA {
		t.Fatalf("voluntary unreachable acr answered with %v, want the true %s", tok.claims["acr"], acrSFA)
	}
}

// keystep-prompt-none-lower-session: prompt=none when the session is below
// the requested acr is login_required or interaction_required, never a page
// and never the lower acr.
func keystepPromptNoneLowerSession(t *testing.T) {
	s := newSuiteOP(t)
	s.e.enrollTOTP("u-alice")
	b := s.browser()
	s.login(b, nil)
	a := s.request(url.Values{"prompt": {"none"}, "acr_values": {acrMFA}, "state": {longState()}})
	a.state = a.params.Get("state")
	if got := s.authError(b.get(s.url(a)), a); got != "login_required" && got != "interaction_required" {
		t.Fatalf("error %q, want login_required or interaction_required", got)
	}
}

// keystep-refresh-keeps-acr: a refreshed ID token keeps acr, amr and
// auth_time and has a new iat (OIDC Core §12.2); a refresh token from a
// lower grant never gains the session's later step-up (RFC 9470 §6.1).
func keystepRefreshKeepsACR(t *testing.T) {
	s := newSuiteOP(t)
	secret := s.e.enrollTOTP("u-alice")
	b := s.browser()
	offline := url.Values{"scope": {"openid offline_access"}}
	_, low := s.login(b, offline)
	a := s.request(url.Values{"scope": {"openid offline_access"}, "acr_values": {acrMFA}})
	high := s.exchange(s.callback(b.submitCode(b.get(s.url(a)), "/login/otp", s.e.totp(secret)), a), a, nil)
	if high.claims["acr"] != acrMFA {
		t.Fatalf("acr %v after step-up", high.claims["acr"])
	}
	s.e.clock.Advance(time.Minute)
	nextIATSecond()
	for _, c := range []struct {
		name string
		tok  suiteTokens
	}{{"mfa grant", high}, {"sfa grant", low}} {
		ref := s.checkTokenResponse(s.tokenCall(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.tok.refresh}}), "", true)
		for _, k := range []string{"acr", "auth_time", "sub", "sid"} {
			if ref.claims[k] != c.tok.claims[k] {
				t.Errorf("%s: refreshed %s %v, want %v", c.name, k, ref.claims[k], c.tok.claims[k])
			}
		}
		if !slices.Equal(amrOf(ref.claims), amrOf(c.tok.claims)) {
			t.Errorf("%s: refreshed amr %v, want %v", c.name, amrOf(ref.claims), amrOf(c.tok.claims))
		}
		if ref.claims["iat"] == c.tok.claims["iat"] {
			t.Errorf("%s: the refreshed ID token has the same iat", c.name)
		}
	}
}
