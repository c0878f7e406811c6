package conformance

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The Config OP plan (oidcc-config-certification-test-plan), against an https
// issuer as the plan requires.
var configOPModules = []oidccModule{
	{"oidcc-discovery-endpoint-verification", oidccDiscovery},
}

// knownMetadata are the discovery members the suite knows (RFC 8414, OIDC
// Discovery §3, the logout specs, RFC 9207, PAR, DPoP, CIBA, mTLS, JARM);
// any other member is a WARNING.
var knownMetadata = []string{
	"issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "registration_endpoint",
	"scopes_supported", "response_types_supported", "response_modes_supported", "grant_types_supported",
	"acr_values_supported", "subject_types_supported", "id_token_signing_alg_values_supported",
	"id_token_encryption_alg_values_supported", "id_token_encryption_enc_values_supported",
	"userinfo_signing_alg_values_supported", "userinfo_encryption_alg_values_supported", "userinfo_encryption_enc_values_supported",
	"request_object_signing_alg_values_supported", "request_object_encryption_alg_values_supported", "request_object_encryption_enc_values_supported",
	"token_endpoint_auth_methods_supported", "token_endpoint_auth_signing_alg_values_supported",
	"display_values_supported", "claim_types_supported", "claims_supported", "service_documentation",
	"claims_locales_supported", "ui_locales_supported", "claims_parameter_supported", "request_parameter_supported",
	"request_uri_parameter_supported", "require_request_uri_registration", "op_policy_uri", "op_tos_uri",
	"revocation_endpoint", "revocation_endpoint_auth_methods_supported", "revocation_endpoint_auth_signing_alg_values_supported",
	"introspection_endpoint", "introspection_endpoint_auth_methods_supported", "introspection_endpoint_auth_signing_alg_values_supported",
	"code_challenge_methods_supported", "signed_metadata", "end_session_endpoint", "check_session_iframe",
	"frontchannel_logout_supported", "frontchannel_logout_session_supported", "backchannel_logout_supported",
	"backchannel_logout_session_supported", "authorization_response_iss_parameter_supported",
	"pushed_authorization_request_endpoint", "require_pushed_authorization_requests", "dpop_signing_alg_values_supported",
	"tls_client_certificate_bound_access_tokens", "mtls_endpoint_aliases", "authorization_signing_alg_values_supported",
	"authorization_encryption_alg_values_supported", "authorization_encryption_enc_values_supported",
	"backchannel_token_delivery_modes_supported", "backchannel_authentication_endpoint",
	"backchannel_authentication_request_signing_alg_values_supported", "backchannel_user_code_parameter_supported",
	"device_authorization_endpoint", "require_signed_request_object", "prompt_values_supported",
}

// oidcc-discovery-endpoint-verification, against an https issuer.
func oidccDiscovery(t *testing.T) {
	s := newSuiteOP(t, overHTTPS)
	discoveryURL := s.e.issuer + "/.well-known/openid-configuration"
	if !strings.HasPrefix(discoveryURL, "https://") {
		t.Fatalf("discovery URL %s is not https", discoveryURL)
	}
	d := s.discovery()
	if d.status != http.StatusOK || !strings.HasPrefix(d.header.Get("Content-Type"), "application/json") || d.body == nil {
		t.Fatalf("discovery: %d %q %s", d.status, d.header.Get("Content-Type"), d.raw)
	}
	m := d.body
	if iss, _ := m["issuer"].(string); strings.TrimSuffix(iss, "/") != strings.TrimSuffix(strings.TrimSuffix(discoveryURL, "/.well-known/openid-configuration"), "/") {
		t.Errorf("issuer %q does not match the discovery URL %s", iss, discoveryURL)
	}
	for k := range m {
		if !slices.Contains(knownMetadata, k) {
			t.Errorf("unknown metadata member %q", k)
		}
	}
	strs := func(name string) []string {
		v, ok := m[name]
		if !ok {
			return nil
		}
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			t.Errorf("%s = %v is not a non-empty array", name, v)
			return nil
		}
		out := make([]string, len(arr))
		for i, x := range arr {
			if out[i], ok = x.(string); !ok {
				t.Errorf("%s has a non-string %v", name, x)
			}
		}
		return out
	}
	if !slices.Contains(strs("response_types_supported"), "code") {
		t.Error("response_types_supported lacks code")
	}
	if st := strs("subject_types_supported"); !slices.Contains(st, "public") && !slices.Contains(st, "pairwise") {
		t.Errorf("subject_types_supported %v", st)
	}
	if !slices.Contains(strs("id_token_signing_alg_values_supported"), "RS256") {
		t.Error("id_token_signing_alg_values_supported lacks RS256 (OIDC Core §15.1)")
	}
	for _, name := range []string{"userinfo_signing_alg_values_supported", "grant_types_supported", "code_challenge_methods_supported"} {
		strs(name)
	}
	scopes := strs("scopes_supported")
	if !slices.Contains(scopes, "openid") {
		t.Errorf("scopes_supported %v lacks openid", scopes)
	}
	scopeToken := regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`) // RFC 6749 §3.3
	for _, sc := range scopes {
		if !scopeToken.MatchString(sc) {
			t.Errorf("scope %q is not a scope-token", sc)
		}
	}
	bcp47 := regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)
	for _, name := range []string{"ui_locales_supported", "claims_locales_supported"} {
		for _, l := range strs(name) {
			if !bcp47.MatchString(l) {
				t.Errorf("%s: %q is not a BCP 47 tag", name, l)
			}
		}
	}
	for _, name := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"} {
		if _, ok := m[name]; !ok {
			t.Errorf("%s is missing", name)
		}
	}
	for k, v := range m {
		if strings.HasSuffix(k, "_endpoint") || k == "jwks_uri" {
			if u, _ := v.(string); !strings.HasPrefix(u, "https://") {
				t.Errorf("%s %q is not https", k, u)
			}
		}
	}
	if algs := strs("request_object_signing_alg_values_supported"); algs != nil && !slices.Contains(algs, "RS256") {
		t.Errorf("request_object_signing_alg_values_supported %v lacks RS256", algs)
	}
	if len(strs("claims_supported")) == 0 {
		t.Error("claims_supported is missing")
	}
	checkServerKeys(t, s)
}
