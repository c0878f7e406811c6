package conformance

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// The OP plans for what Keystep does not offer: Implicit and Hybrid, Form
// Post, Front-Channel and Session logout, 3rd Party-Initiated Login. Each
// module checks that Keystep neither advertises nor accepts the feature,
// then ends as not applicable. The Back-Channel Logout plan's modules are
// here too, and pass (backchannel_test.go).
var otherPlanModules = []oidccModule{
	{"oidcc-ensure-request-without-nonce-fails", oidccImplicitRefused},
	// The Form Post plans run the Basic modules with response_mode=form_post;
	// one subtest stands for them.
	{"oidcc-formpost-basic-certification-test-plan", oidccFormPostRefused},
	{"oidcc-backchannel-logout-discovery-endpoint-verification", oidccBackchannelDiscovery},
	{"oidcc-backchannel-rp-initiated-logout", oidccBackchannelRPInitiated},
	{"oidcc-frontchannel-logout-discovery-endpoint-verification", func(t *testing.T) { notAdvertised(t, "front-channel logout", "frontchannel_logout_supported") }},
	{"oidcc-frontchannel-rp-initiated-logout", func(t *testing.T) { notAdvertised(t, "front-channel logout", "frontchannel_logout_supported") }},
	{"oidcc-session-management-discovery-endpoint-verification", func(t *testing.T) { notAdvertised(t, "session management", "check_session_iframe") }},
	{"oidcc-session-management-rp-initiated-logout", func(t *testing.T) { notAdvertised(t, "session management", "check_session_iframe") }},
	{"oidcc-3rd_party-init-login", func(t *testing.T) { noRegistration(t, "initiate_login_uri") }},
	{"oidcc-3rd_party-init-login-nohttps", func(t *testing.T) { noRegistration(t, "initiate_login_uri") }},
}

// oidcc-ensure-request-without-nonce-fails (Implicit and Hybrid plans):
// Keystep is code-only; the other response types are refused at the client.
func oidccImplicitRefused(t *testing.T) {
	s := newSuiteOP(t)
	if rt, _ := s.metadata()["response_types_supported"].([]any); !slices.Equal(rt, []any{"code"}) {
		t.Fatalf("response_types_supported %v, want only code", rt)
	}
	for _, rt := range []string{"id_token", "id_token token", "code id_token", "code token", "code id_token token"} {
		a := s.request(url.Values{"response_type": {rt}, "nonce": nil})
		p := s.browser().get(s.url(a))
		if p.redirect == nil {
			errorPage(t, p)
			continue
		}
		// The error goes to the fragment for these response types
		// (OAuth 2.0 Multiple Response Types §5), or to the query.
		if p.redirect.Query().Get("code") != "" || strings.Contains(p.redirect.Fragment, "id_token=") || strings.Contains(p.redirect.Fragment, "access_token=") {
			t.Fatalf("response_type %q was served: %s", rt, p.redirect)
		}
		params := p.redirect.Query()
		if p.redirect.Fragment != "" {
			params, _ = url.ParseQuery(p.redirect.Fragment)
		}
		if e := params.Get("error"); e != "unsupported_response_type" && e != "unauthorized_client" {
			t.Fatalf("response_type %q: error %q", rt, e)
		}
	}
	notApplicable(t, "Implicit and Hybrid OP plans; Keystep supports response_type=code only")
}

// oidcc-formpost-*-certification-test-plan: Keystep answers in the query
// only, and refuses form_post at the client, in the query.
func oidccFormPostRefused(t *testing.T) {
	s := newSuiteOP(t)
	if rm, _ := s.metadata()["response_modes_supported"].([]any); !slices.Equal(rm, []any{"query"}) {
		t.Fatalf("response_modes_supported %v, want only query", rm)
	}
	for _, mode := range []string{"form_post", "fragment"} {
		a := s.request(url.Values{"response_mode": {mode}})
		if got := s.authError(s.browser().get(s.url(a)), a); got != "invalid_request" {
			t.Fatalf("response_mode=%s: error %q, want invalid_request", mode, got)
		}
	}
	notApplicable(t, "Form Post OP plans; response_modes_supported is query only")
}

// notAdvertised ends a module of a logout mechanism Keystep does not offer.
func notAdvertised(t *testing.T, what, member string) {
	s := newSuiteOP(t)
	if v, ok := s.metadata()[member]; ok && v != false {
		t.Fatalf("%s = %v is advertised", member, v)
	}
	notApplicable(t, "Keystep does not implement "+what+" ("+member+" is not advertised)")
}
