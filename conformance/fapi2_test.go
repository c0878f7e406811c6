package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp/resource"
	"github.com/keystep/keystep/storage"
)

// TestFAPI2SecurityProfileFinal replicates the OpenID conformance suite's
// "FAPI2-Security-Profile-Final: Authorization server test" plan
// (fapi2-security-profile-final-test-plan; upstream package
// net.openid.conformance.fapi2spfinal) module by module, as TestOIDCC does
// for the OpenID Connect plans: one subtest per module, named as the suite
// names it, so one module runs with
//
//	go test ./conformance -run 'TestFAPI2SecurityProfileFinal/fapi2-security-profile-final-happy-flow$'
//
// The variant is the one Keystep offers: client_auth_type=private_key_jwt,
// sender_constrain=dpop, openid=openid_connect, fapi_profile=plain_fapi,
// fapi_request_method=unsigned, fapi_response_mode=plain_response. The
// suite's two clients are fapi2-profile clients with ES256 keys (and an RSA
// key each, for the RS256 refusals); its resource.resourceUrl is Keystep's
// userinfo endpoint, and the DPoP negative tests also run against an API
// behind idp/resource. The harness serves plain http on 127.0.0.1: the
// suite's TLS checks are the deployment's (the TLS terminator), not made
// here.
//
// Where the suite accepts more than one outcome (an error page or an error
// redirect, a PAR error or an authorization error) the subtest asserts the
// one Keystep gives; where Keystep deliberately differs from what a module
// recommends it says so and asserts Keystep's documented behaviour. The
// README's "FAPI 2.0" section tabulates every module.
func TestFAPI2SecurityProfileFinal(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range fapi2Modules {
		if seen[m.id] {
			t.Fatalf("module %s is listed twice", m.id)
		}
		seen[m.id] = true
		t.Run(m.id, func(t *testing.T) {
			t.Parallel()
			m.run(t)
		})
	}
}

const fapi2Prefix = "fapi2-security-profile-final-"

var fapi2Modules = []oidccModule{
	{fapi2Prefix + "discovery-end-point-verification", fapi2Discovery},
	{fapi2Prefix + "happy-flow", func(t *testing.T) { newFAPI2(t).happyFlow(nil) }},
	{fapi2Prefix + "user-rejects-authentication", fapi2UserRejects},
	{fapi2Prefix + "ensure-authorization-request-without-state-success", fapi2WithoutState},
	{fapi2Prefix + "ensure-authorization-request-without-nonce-success", fapi2WithoutNonce},
	{fapi2Prefix + "ensure-authorization-request-with-64-char-nonce-success", func(t *testing.T) {
		newFAPI2(t).happyFlow(url.Values{"nonce": {alnum(64)}})
	}},
	{fapi2Prefix + "ensure-other-scope-order-succeeds", func(t *testing.T) {
		newFAPI2(t).happyFlow(url.Values{"scope": {"offline_access profile openid"}})
	}},
	{fapi2Prefix + "test-claims-parameter-identity-claims", fapi2ClaimsParameter},
	{fapi2Prefix + "access-token-type-header-case-sensitivity", fapi2SchemeCase},
	{fapi2Prefix + "check-dpop-proof-nbf-exp", func(t *testing.T) {
		newFAPI2(t).proofTimingFlow(func(now time.Time) map[string]any {
			return map[string]any{"nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		})
	}},
	{fapi2Prefix + "ensure-dpopproof-with-iat-10seconds-before-succeeds", func(t *testing.T) {
		newFAPI2(t).proofTimingFlow(func(now time.Time) map[string]any { return map[string]any{"iat": now.Add(-10 * time.Second).Unix()} })
	}},
	{fapi2Prefix + "ensure-dpopproof-with-iat-10seconds-after-succeeds", func(t *testing.T) {
		newFAPI2(t).proofTimingFlow(func(now time.Time) map[string]any { return map[string]any{"iat": now.Add(10 * time.Second).Unix()} })
	}},
	{fapi2Prefix + "ensure-mismatched-dpop-jkt-fails", fapi2MismatchedJKTAtPAR},
	{fapi2Prefix + "ensure-token-endpoint-fails-with-mismatched-dpop-proof-jkt", fapi2MismatchedProofKeys},
	{fapi2Prefix + "ensure-token-endpoint-fails-with-mismatched-dpop-jkt", fapi2MismatchedJKTAtToken},
	{fapi2Prefix + "ensure-dpopproof-at-par-endpoint-binding-success", func(t *testing.T) { newFAPI2(t).parBindingFlow(false) }},
	{fapi2Prefix + "ensure-dpop-auth-code-binding-success", func(t *testing.T) { newFAPI2(t).parBindingFlow(true) }},
	{fapi2Prefix + "ensure-different-nonce-inside-and-outside-request-object", fapi2DifferentNonce},
	{fapi2Prefix + "ensure-different-state-inside-and-outside-request-object", fapi2DifferentState},
	{fapi2Prefix + "ensure-authorization-request-with-long-nonce", func(t *testing.T) {
		newFAPI2(t).happyFlow(url.Values{"nonce": {alnum(384)}})
	}},
	{fapi2Prefix + "ensure-authorization-request-with-long-state", func(t *testing.T) {
		newFAPI2(t).happyFlow(url.Values{"state": {alnum(384)}})
	}},
	{fapi2Prefix + "state-only-outside-request-object-not-used", fapi2StateOnlyOutside},
	{fapi2Prefix + "ensure-request-object-without-redirect-uri-fails", fapi2WithoutRedirectURI},
	{fapi2Prefix + "ensure-registered-redirect-uri", fapi2UnregisteredRedirectURI},
	{fapi2Prefix + "plain-fapi-tolerate-unregistered-redirect-uri", fapi2TolerateUnregisteredRedirectURI},
	{fapi2Prefix + "ensure-unsigned-authorization-request-without-using-par-fails", fapi2FrontChannelFails},
	{fapi2Prefix + "ensure-redirect-uri-in-authorization-request", fapi2WithoutRedirectURI},
	{fapi2Prefix + "ensure-response-type-code-idtoken-fails", func(t *testing.T) { newFAPI2(t).responseTypeFails("code id_token") }},
	{fapi2Prefix + "australia-connectid-ensure-invalid-purpose-fails", fapi2OtherProfile("ConnectID Australia (purpose)")},
	{fapi2Prefix + "ensure-response-type-token-fails", func(t *testing.T) { newFAPI2(t).responseTypeFails("token") }},
	{fapi2Prefix + "ensure-client-id-in-token-endpoint", fapi2ClientIDInTokenEndpoint},
	{fapi2Prefix + "ensure-holder-of-key-required", fapi2HolderOfKeyRequired},
	{fapi2Prefix + "ensure-authorization-code-is-bound-to-client", fapi2CodeBoundToClient},
	{fapi2Prefix + "attempt-reuse-authorization-code-after-one-second", fapi2CodeReuse},
	{fapi2Prefix + "ensure-token-endpoint-fails-with-expired-auth-code", fapi2ExpiredCode},
	{fapi2Prefix + "ensure-signed-client-assertion-with-RS256-fails", func(t *testing.T) {
		newFAPI2(t).assertionRefused(jose.RS256, nil)
	}},
	{fapi2Prefix + "ensure-client-assertion-in-token-endpoint", func(t *testing.T) { newFAPI2(t).happyFlow(nil) }},
	{fapi2Prefix + "ensure-client-assertion-with-exp-is-5-minutes-in-past-fails", func(t *testing.T) {
		f := newFAPI2(t)
		now := f.e.clock.Now()
		f.assertionRefused(jose.ES256, map[string]any{"iat": now.Add(-10 * time.Minute).Unix(), "exp": now.Add(-5 * time.Minute).Unix()})
	}},
	{fapi2Prefix + "ensure-client-assertion-with-wrong-aud-fails", func(t *testing.T) {
		newFAPI2(t).assertionRefused(jose.ES256, map[string]any{"aud": "https://suite.example/not-the-issuer"})
	}},
	{fapi2Prefix + "ensure-client-assertion-with-no-sub-fails", func(t *testing.T) {
		newFAPI2(t).assertionRefused(jose.ES256, map[string]any{"sub": nil})
	}},
	{fapi2Prefix + "ensure-invalid-client-assertions-fail", fapi2InvalidClientAssertions},
	{fapi2Prefix + "dpop-negative-tests", fapi2DPoPNegative},
	{fapi2Prefix + "refresh-token", fapi2RefreshToken},
	{fapi2Prefix + "cdr-sharing-duration-zero", fapi2OtherProfile("Consumer Data Right Australia (cdr_arrangement_id, sharing_duration)")},
	{fapi2Prefix + "cdr-negative-sharing-duration", fapi2OtherProfile("Consumer Data Right Australia (sharing_duration)")},
	{fapi2Prefix + "cdr-refresh-token-introspection-expiry", fapi2OtherProfile("Consumer Data Right Australia (refresh token expiry in introspection)")},
	{fapi2Prefix + "cdr-arrangement-amendment", fapi2OtherProfile("Consumer Data Right Australia (cdr_arrangement_id)")},
	{fapi2Prefix + "cdr-unrecognised-arrangement-id", fapi2OtherProfile("Consumer Data Right Australia (cdr_arrangement_id)")},
	{fapi2Prefix + "brazil-ensure-bad-payment-signature-fails", fapi2OtherProfile("Open Finance Brazil (signed payment consents)")},
	{fapi2Prefix + "australia-connectid-test-claims-parameter-idtoken-identity-claims", fapi2OtherProfile("ConnectID Australia (verified claims)")},
	{fapi2Prefix + "par-ensure-reused-request-uri-prior-to-auth-completion-succeeds", fapi2PARReuseBeforeCompletion},
	{fapi2Prefix + "par-attempt-reuse-request_uri", fapi2PARReuse},
	{fapi2Prefix + "par-attempt-to-use-expired-request_uri", fapi2PARExpired},
	{fapi2Prefix + "par-attempt-to-use-request_uri-for-different-client", fapi2PARDifferentClient},
	{fapi2Prefix + "par-authorization-request-containing-request_uri-form-param", fapi2PARRequestURIParam},
	{fapi2Prefix + "par-attempt-invalid-http-method", fapi2PARMethod},
	{fapi2Prefix + "par-ensure-pkce-required", func(t *testing.T) {
		newFAPI2(t).parRefused(url.Values{"code_challenge": nil, "code_challenge_method": nil}, "invalid_request")
	}},
	{fapi2Prefix + "ensure-pkce-code-verifier-required", func(t *testing.T) { newFAPI2(t).verifierRefused(url.Values{"code_verifier": nil}) }},
	{fapi2Prefix + "incorrect-pkce-code-verifier-rejected", func(t *testing.T) {
		newFAPI2(t).verifierRefused(url.Values{"code_verifier": {alnum(50)}})
	}},
	{fapi2Prefix + "par-plain-pkce-rejected", func(t *testing.T) {
		v := alnum(50)
		newFAPI2(t).parRefused(url.Values{"code_challenge": {v}, "code_challenge_method": {"plain"}}, "invalid_request")
	}},
	{fapi2Prefix + "par-without-duplicate-parameters", fapi2WithoutDuplicates},
	{fapi2Prefix + "grant-management-query-and-revoke", fapi2NoGrantManagement},
	{fapi2Prefix + "grant-management-merge", fapi2NoGrantManagement},
	{fapi2Prefix + "grant-management-replace", fapi2NoGrantManagement},
	{fapi2Prefix + "grant-management-ensure-invalid-grant-id-fails", fapi2NoGrantManagement},
	{fapi2Prefix + "grant-management-ensure-query-nonexistent-grant-fails", fapi2NoGrantManagement},
	{fapi2Prefix + "grant-management-ensure-wrong-client-cannot-query-grant", fapi2NoGrantManagement},
	{fapi2Prefix + "grant-management-ensure-wrong-client-cannot-revoke-grant", fapi2NoGrantManagement},
	// The variants Keystep does not offer, and the check that nothing
	// advertises them.
	{"keystep-discovery-advertises-no-mtls", fapi2NoMTLSAdvertised},
	{"mtls-variants", func(t *testing.T) {
		fapi2NoMTLSAdvertised(t)
		notApplicable(t, "client_auth_type=mtls and sender_constrain=mtls need mutual TLS (RFC 8705); Keystep has none — it sender-constrains with DPoP and authenticates clients with private_key_jwt")
	}},
}

// ---- the suite's clients ----

const (
	fapi2ClientID  = "fapi2-suite"
	fapi2Client2ID = "fapi2-suite-2"
	// fapi2Scope is the suite's client.scope: offline_access for the
	// refresh-token module.
	fapi2Scope = "openid profile offline_access"
)

// fapi2Keys are the two clients' keys, made once for all modules: RSA
// keys are slow to make.
var fapi2Keys struct {
	once   sync.Once
	k1, k2 clientKeys
}

func fapi2SharedKeys(t *testing.T) (clientKeys, clientKeys) {
	fapi2Keys.once.Do(func() { fapi2Keys.k1, fapi2Keys.k2 = newClientKeys(t), newClientKeys(t) })
	if fapi2Keys.k1.ec == nil {
		t.Fatal("the suite's client keys could not be made")
	}
	return fapi2Keys.k1, fapi2Keys.k2
}

// fapi2 is Keystep as the FAPI 2.0 suite sees it.
type fapi2 struct {
	e           *env
	t           *testing.T
	keys, keys2 clientKeys
	op          *suiteOP // ID token checks and discovery
	key         *dpopKey // the suite's DPoP key
}

func newFAPI2(t *testing.T) *fapi2 {
	t.Helper()
	e := newEnv(t)
	k1, k2 := fapi2SharedKeys(t)
	for id, k := range map[string]clientKeys{fapi2ClientID: k1, fapi2Client2ID: k2} {
		e.addClient(storage.Client{ID: id, Name: "FAPI 2.0 conformance suite " + id, AuthMethod: "private_key_jwt", JWKS: k.jwks(),
			Profile: storage.ProfileFAPI2, RedirectURIs: []string{suiteRedirect}, GrantTypes: []string{"authorization_code", "refresh_token"},
			IDTokenAlg: "ES256", FirstParty: true})
	}
	return &fapi2{e: e, t: t, keys: k1, keys2: k2, op: newSuiteClient(t, e, fapi2ClientID, "", false), key: e.newDPoPKey()}
}

// assertion is a private_key_jwt client assertion of client id signed
// with k by alg, with edit applied to its claims (nil deletes).
func (f *fapi2) assertion(id string, k clientKeys, alg jose.SignatureAlgorithm, edit map[string]any) url.Values {
	now := f.e.clock.Now()
	c := map[string]any{"iss": id, "sub": id, "aud": f.e.issuer, "jti": randomString(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	for n, v := range edit {
		if v == nil {
			delete(c, n)
		} else {
			c[n] = v
		}
	}
	return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {k.sign(f.t, alg, c, nil)}}
}

// auth is client 1's client authentication.
func (f *fapi2) auth() url.Values { return f.assertion(fapi2ClientID, f.keys, jose.ES256, nil) }

// fapiAuth is one authorization request and its PKCE verifier.
type fapiAuth struct {
	params   url.Values
	verifier string
}

func (a fapiAuth) state() string { return a.params.Get("state") }

// request is the suite's authorization request with extra applied (nil
// removes a parameter).
func (f *fapi2) request(extra url.Values) fapiAuth {
	v := alnum(50)
	q := url.Values{"client_id": {fapi2ClientID}, "redirect_uri": {suiteRedirect}, "response_type": {"code"}, "scope": {fapi2Scope},
		"state": {alnum(10)}, "nonce": {alnum(10)}, "code_challenge": {s256(v)}, "code_challenge_method": {"S256"}}
	for k, vs := range extra {
		if vs == nil {
			q.Del(k)
		} else {
			q[k] = vs
		}
	}
	return fapiAuth{params: q, verifier: v}
}

// post posts form to path with proof (if any) in the DPoP header.
func (f *fapi2) post(path string, form url.Values, proof string) httpResult {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return f.op.do(req)
}

func merge(vs ...url.Values) url.Values {
	out := url.Values{}
	for _, v := range vs {
		for k, x := range v {
			out[k] = x
		}
	}
	return out
}

// withProof sends a request built by send with a proof by key (none when
// key is nil), doing the nonce dance of RFC 9449 §8 once: every attempt
// gets a fresh client assertion and proof.
func (f *fapi2) withProof(key *dpopKey, path string, edit map[string]any, send func(proof string) httpResult) httpResult {
	f.t.Helper()
	proof := func() string {
		if key == nil {
			return ""
		}
		return key.proof(http.MethodPost, path, "", edit)
	}
	res := send(proof())
	if key != nil && res.status == http.StatusBadRequest && res.body["error"] == "use_dpop_nonce" {
		if key.nonce = res.header.Get("DPoP-Nonce"); key.nonce == "" {
			f.t.Fatalf("use_dpop_nonce at %s without a DPoP-Nonce header", path)
		}
		res = send(proof())
	}
	if key != nil && res.header.Get("DPoP-Nonce") != "" {
		key.nonce = res.header.Get("DPoP-Nonce")
	}
	return res
}

// par pushes a with client authentication made by auth and a proof by key
// (nil: none).
func (f *fapi2) par(a fapiAuth, auth func() url.Values, key *dpopKey) httpResult {
	f.t.Helper()
	return f.withProof(key, "/oauth/par", nil, func(proof string) httpResult {
		return f.post("/oauth/par", merge(a.params, auth()), proof)
	})
}

// pushed pushes a as client 1 and returns the request_uri.
func (f *fapi2) pushed(a fapiAuth, key *dpopKey) string {
	f.t.Helper()
	res := f.par(a, f.auth, key)
	uri, _ := res.body["request_uri"].(string)
	if res.status != http.StatusCreated || !strings.HasPrefix(uri, parURN) {
		f.t.Fatalf("CallPAREndpoint: %d %s", res.status, res.raw)
	}
	if exp, _ := res.body["expires_in"].(float64); exp <= 0 {
		f.t.Errorf("PAR expires_in %v", res.body["expires_in"])
	}
	return uri
}

// authorizeURL is the authorization endpoint URL for request_uri uri of
// clientID, with extra parameters appended.
func (f *fapi2) authorizeURL(clientID, uri string, extra url.Values) string {
	q := merge(url.Values{"client_id": {clientID}, "request_uri": {uri}}, extra)
	return f.e.issuer + "/authorize?" + q.Encode()
}

// callback runs the suite's callback checks on an authorization response
// for a: iss required (FAPI 2.0 §5.3.2.2 item 7, RFC 9207), no error, state
// echoed exactly (or absent when none was sent), a code.
func (f *fapi2) callback(p page, a fapiAuth) string {
	f.t.Helper()
	q := f.op.redirectedTo(p, suiteRedirect)
	if iss := q["iss"]; len(iss) != 1 || iss[0] != f.e.issuer {
		f.t.Fatalf("ValidateIssInAuthorizationResponse: iss %v, want %s", iss, f.e.issuer)
	}
	if e := q.Get("error"); e != "" {
		f.t.Fatalf("CheckIfAuthorizationEndpointError: %s: %s", e, q.Get("error_description"))
	}
	if got, sent := q["state"], a.state(); sent == "" && got != nil || sent != "" && (len(got) != 1 || got[0] != sent) {
		f.t.Fatalf("CheckStateInAuthorizationResponse: state %v, sent %q", got, sent)
	}
	code := q.Get("code")
	if code == "" {
		f.t.Fatal("no code in the authorization response")
	}
	checkSecretValue(f.t, "authorization code", code)
	return code
}

// code pushes a, runs it in a fresh browser and returns the code.
func (f *fapi2) code(a fapiAuth, parKey *dpopKey) string {
	f.t.Helper()
	uri := f.pushed(a, parKey)
	return f.callback(f.browse(f.authorizeURL(fapi2ClientID, uri, nil)), a)
}

// browse opens u in a fresh browser and completes the sign-in.
func (f *fapi2) browse(u string) page {
	b := f.e.browser()
	return f.op.complete(b, b.get(u))
}

// fapiTokens is a checked token response.
type fapiTokens struct {
	access, refresh, idToken string
	claims                   map[string]any // of the ID token
}

// codeForm is the token request for code of a, without client
// authentication; extra is applied (nil removes).
func (f *fapi2) codeForm(code string, a fapiAuth, extra url.Values) url.Values {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.params.Get("redirect_uri")}, "code_verifier": {a.verifier}}
	for k, vs := range extra {
		if vs == nil {
			form.Del(k)
		} else {
			form[k] = vs
		}
	}
	return form
}

// token calls the token endpoint with form, client authentication by auth
// and a proof by key (nil: none), edited by edit.
func (f *fapi2) token(form url.Values, auth func() url.Values, key *dpopKey, edit map[string]any) httpResult {
	f.t.Helper()
	return f.withProof(key, "/oauth/token", edit, func(proof string) httpResult {
		return f.post("/oauth/token", merge(form, auth()), proof)
	})
}

// exchange redeems code with a proof by key and checks the response.
func (f *fapi2) exchange(code string, a fapiAuth, key *dpopKey) fapiTokens {
	f.t.Helper()
	return f.checkTokens(f.token(f.codeForm(code, a, nil), f.auth, key, nil), a.params.Get("nonce"), key)
}

// checkTokens is the suite's token response checks for DPoP: 200,
// no-store, token_type DPoP, an access token bound to key (Keystep's are
// at+jwt, RFC 9068), expires_in, and the ID token's standard checks.
func (f *fapi2) checkTokens(res httpResult, nonce string, key *dpopKey) fapiTokens {
	f.t.Helper()
	if res.status != http.StatusOK {
		f.t.Fatalf("token endpoint: %d %s", res.status, res.raw)
	}
	if !strings.Contains(res.header.Get("Cache-Control"), "no-store") {
		f.t.Errorf("token response Cache-Control %q", res.header.Get("Cache-Control"))
	}
	if res.body["token_type"] != "DPoP" {
		f.t.Errorf("CheckTokenTypeIsDpop: token_type %v", res.body["token_type"])
	}
	if exp, _ := res.body["expires_in"].(float64); exp <= 0 {
		f.t.Errorf("expires_in %v", res.body["expires_in"])
	}
	var tok fapiTokens
	tok.access, _ = res.body["access_token"].(string)
	tok.refresh, _ = res.body["refresh_token"].(string)
	tok.idToken, _ = res.body["id_token"].(string)
	if tok.access == "" || tok.idToken == "" {
		f.t.Fatalf("no access_token or id_token: %s", res.raw)
	}
	checkSecretValue(f.t, "access token", tok.access)
	hdr, claims := jwtParts(f.t, tok.access)
	if hdr["typ"] != "at+jwt" || cnfJKT(claims) != key.jkt {
		f.t.Errorf("access token typ %v, cnf.jkt %q, want at+jwt bound to %q", hdr["typ"], cnfJKT(claims), key.jkt)
	}
	if hdr, _ := jwtParts(f.t, tok.idToken); hdr["alg"] != "ES256" {
		f.t.Errorf("FAPI2 §5.4: ID token alg %v", hdr["alg"])
	}
	tok.claims = f.op.checkIDToken(tok.idToken, nonce)
	return tok
}

// userinfo calls the userinfo endpoint (the suite's resource) with at
// bound to key, doing the resource nonce dance when asked (RFC 9449 §9).
func (f *fapi2) userinfo(at string, key *dpopKey, edit map[string]any) httpResult {
	f.t.Helper()
	call := func() httpResult {
		req, _ := http.NewRequest(http.MethodGet, f.e.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "DPoP "+at)
		req.Header.Set("DPoP", key.proof(http.MethodGet, "/userinfo", at, edit))
		return f.op.do(req)
	}
	res := call()
	if res.status == http.StatusUnauthorized && strings.Contains(res.header.Get("WWW-Authenticate"), "use_dpop_nonce") {
		key.nonce = res.header.Get("DPoP-Nonce")
		res = call()
	}
	return res
}

// checkUserinfo requires a 200 about the ID token's subject.
func (f *fapi2) checkUserinfo(res httpResult, tok fapiTokens) {
	f.t.Helper()
	f.op.checkUserinfo(res, tok.claims)
}

// happyFlow is FAPI2SPFinalHappyFlow with extra in the pushed request.
func (f *fapi2) happyFlow(extra url.Values) fapiTokens {
	f.t.Helper()
	a := f.request(extra)
	tok := f.exchange(f.code(a, nil), a, f.key)
	if tok.refresh == "" {
		f.t.Error("no refresh token for a request with offline_access")
	}
	f.checkUserinfo(f.userinfo(tok.access, f.key, nil), tok)
	return tok
}

// ---- modules ----

func fapi2Discovery(t *testing.T) {
	f := newFAPI2(t)
	m := f.op.metadata()
	str := func(k string) string { s, _ := m[k].(string); return s }
	list := func(k string) []any { l, _ := m[k].([]any); return l }
	if str("issuer") != f.e.issuer {
		t.Errorf("issuer %q", str("issuer"))
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "pushed_authorization_request_endpoint", "userinfo_endpoint"} {
		if !strings.HasPrefix(str(k), f.e.issuer+"/") {
			t.Errorf("%s %q is not an endpoint of the issuer", k, str(k))
		}
	}
	if m["authorization_response_iss_parameter_supported"] != true {
		t.Error("FAPI2-SP-FINAL-5.3.2.2-7: authorization_response_iss_parameter_supported is not true")
	}
	for k, want := range map[string]string{
		"token_endpoint_auth_methods_supported":            "private_key_jwt",
		"token_endpoint_auth_signing_alg_values_supported": "ES256",
		"id_token_signing_alg_values_supported":            "ES256",
		"code_challenge_methods_supported":                 "S256",
		"dpop_signing_alg_values_supported":                "ES256",
		"response_types_supported":                         "code",
		"grant_types_supported":                            "authorization_code",
		"scopes_supported":                                 "openid",
	} {
		if !slices.Contains(list(k), any(want)) {
			t.Errorf("%s %v lacks %s", k, list(k), want)
		}
	}
	if l := list("code_challenge_methods_supported"); slices.Contains(l, any("plain")) {
		t.Errorf("code_challenge_methods_supported %v offers plain", l)
	}
	for _, alg := range list("dpop_signing_alg_values_supported") {
		if alg == "none" || strings.HasPrefix(alg.(string), "HS") {
			t.Errorf("dpop_signing_alg_values_supported offers %v", alg)
		}
	}
	for _, rt := range list("response_types_supported") {
		if rt != "code" {
			suiteWarning(t, "response_types_supported also lists %v (refused to fapi2 clients: ensure-response-type-*-fails)", rt)
		}
	}
	checkServerKeys(t, f.op)
}

func fapi2NoMTLSAdvertised(t *testing.T) {
	f := newFAPI2(t)
	m := f.op.metadata()
	for _, k := range []string{"mtls_endpoint_aliases", "tls_client_certificate_bound_access_tokens"} {
		if v, ok := m[k]; ok {
			t.Errorf("discovery advertises %s: %v", k, v)
		}
	}
	for _, k := range []string{"token_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported"} {
		l, _ := m[k].([]any)
		for _, method := range []string{"tls_client_auth", "self_signed_tls_client_auth"} {
			if slices.Contains(l, any(method)) {
				t.Errorf("%s advertises %s", k, method)
			}
		}
	}
}

func fapi2OtherProfile(what string) func(*testing.T) {
	return func(t *testing.T) {
		notApplicable(t, "a module of another FAPI 2.0 profile: "+what+"; this replica runs fapi_profile=plain_fapi")
	}
}

func fapi2NoGrantManagement(t *testing.T) {
	f := newFAPI2(t)
	m := f.op.metadata()
	for _, k := range []string{"grant_management_endpoint", "grant_management_actions_supported"} {
		if v, ok := m[k]; ok {
			t.Fatalf("discovery advertises %s: %v", k, v)
		}
	}
	notApplicable(t, "FAPI Grant Management is not implemented (grant_management=disabled); discovery advertises no grant_management_endpoint")
}

func fapi2UserRejects(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	b := f.e.browser()
	p := b.get(f.authorizeURL(fapi2ClientID, f.pushed(a, nil), nil))
	if !p.has("/login/cancel") {
		t.Fatalf("the sign-in page offers no way to decline: %d %s\n%.1500s", p.status, p.url, p.body)
	}
	p = b.post("/login/cancel", url.Values{"id": {p.hidden("id")}})
	if got := f.op.authError(p, suiteAuth{params: a.params, state: a.state()}); got != "access_denied" {
		t.Fatalf("EnsureErrorFromAuthorizationEndpointResponse: error %q, want access_denied", got)
	}
	if q := p.redirect.Query(); q.Get("iss") != f.e.issuer {
		t.Errorf("the error response lacks iss: %s", p.redirect)
	}
}

func fapi2WithoutState(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(url.Values{"state": nil})
	tok := f.exchange(f.code(a, nil), a, f.key)
	f.checkUserinfo(f.userinfo(tok.access, f.key, nil), tok)
}

func fapi2WithoutNonce(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(url.Values{"nonce": nil})
	tok := f.exchange(f.code(a, nil), a, f.key)
	if _, ok := tok.claims["nonce"]; ok {
		t.Errorf("ID token carries a nonce none was sent: %v", tok.claims["nonce"])
	}
}

func fapi2ClaimsParameter(t *testing.T) {
	f := newFAPI2(t)
	claims := `{"id_token":{"name":null,"email":null},"userinfo":{"name":null,"email":null}}`
	tok := f.happyFlow(url.Values{"claims": {claims}, "scope": {fapi2Scope + " email"}})
	for _, c := range []string{"name", "email"} {
		if _, ok := tok.claims[c]; !ok {
			suiteWarning(t, "ID token lacks the requested %s (Alice may have none)", c)
		}
	}
}

func fapi2SchemeCase(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	tok := f.exchange(f.code(a, nil), a, f.key)
	// SetAccessTokenTypeToInvertedCase: DPoP becomes dpOp (RFC 9110 §11.1:
	// the scheme is case-insensitive).
	req, _ := http.NewRequest(http.MethodGet, f.e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "dpOp "+tok.access)
	req.Header.Set("DPoP", f.key.proof(http.MethodGet, "/userinfo", tok.access, nil))
	f.checkUserinfo(f.op.do(req), tok)
	api := newFAPI2API(f)
	if status, _ := api.call(f.apiHeaders("dpOp", tok.access, f.key.proof(http.MethodGet, api.url, tok.access, nil))); status != http.StatusOK {
		t.Errorf("idp/resource with scheme dpOp: %d", status)
	}
}

// proofTimingFlow runs the happy flow with every proof (token endpoint and
// resource) edited by edit, given the clock.
func (f *fapi2) proofTimingFlow(edit func(time.Time) map[string]any) {
	f.t.Helper()
	a := f.request(nil)
	code := f.code(a, nil)
	tok := f.checkTokens(f.token(f.codeForm(code, a, nil), f.auth, f.key, edit(f.e.clock.Now())), a.params.Get("nonce"), f.key)
	f.checkUserinfo(f.userinfo(tok.access, f.key, edit(f.e.clock.Now())), tok)
}

func fapi2MismatchedJKTAtPAR(t *testing.T) {
	f := newFAPI2(t)
	other := f.e.newDPoPKey()
	a := f.request(url.Values{"dpop_jkt": {other.jkt}})
	res := f.par(a, f.auth, f.key)
	if res.status != http.StatusBadRequest || (res.body["error"] != "invalid_request" && res.body["error"] != "invalid_dpop_proof") {
		t.Fatalf("EnsurePARInvalidRequestOrInvalidDpopProof: %d %s", res.status, res.raw)
	}
}

// checkBindingRefused is CheckTokenEndpointReturnedInvalidRequestGrantOrDPopProofError.
func checkBindingRefused(t *testing.T, res httpResult) {
	t.Helper()
	if res.status != http.StatusBadRequest || !slices.Contains([]any{"invalid_request", "invalid_grant", "invalid_dpop_proof"}, res.body["error"]) {
		t.Fatalf("token endpoint: %d %s, want 400 invalid_request, invalid_grant or invalid_dpop_proof", res.status, res.raw)
	}
}

func fapi2MismatchedProofKeys(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	code := f.code(a, f.key) // the PAR proof's key binds the code
	other := f.e.newDPoPKey()
	other.nonce = f.key.nonce
	checkBindingRefused(t, f.token(f.codeForm(code, a, nil), f.auth, other, nil))
}

func fapi2MismatchedJKTAtToken(t *testing.T) {
	f := newFAPI2(t)
	other := f.e.newDPoPKey()
	a := f.request(url.Values{"dpop_jkt": {other.jkt}})
	code := f.code(a, nil)
	checkBindingRefused(t, f.token(f.codeForm(code, a, nil), f.auth, f.key, nil))
}

// parBindingFlow is the happy flow with a proof at the PAR endpoint, and
// dpop_jkt of the same key beside it when jkt is set.
func (f *fapi2) parBindingFlow(jkt bool) {
	f.t.Helper()
	extra := url.Values{}
	if jkt {
		extra.Set("dpop_jkt", f.key.jkt)
	}
	a := f.request(extra)
	tok := f.exchange(f.code(a, f.key), a, f.key)
	f.checkUserinfo(f.userinfo(tok.access, f.key, nil), tok)
}

// The unsigned variant of the "inside and outside the request object"
// modules: the pushed request is the inside, the authorization URL's
// parameters the outside; only the pushed ones count (RFC 9126 §4).
func fapi2DifferentNonce(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	uri := f.pushed(a, nil)
	p := f.browse(f.authorizeURL(fapi2ClientID, uri, url.Values{"nonce": {alnum(10)}}))
	f.exchange(f.callback(p, a), a, f.key) // checks the ID token's nonce is the pushed one
}

func fapi2DifferentState(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	uri := f.pushed(a, nil)
	p := f.browse(f.authorizeURL(fapi2ClientID, uri, url.Values{"state": {alnum(10)}}))
	f.exchange(f.callback(p, a), a, f.key) // callback checks the state is the pushed one
}

func fapi2StateOnlyOutside(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(url.Values{"state": nil})
	uri := f.pushed(a, nil)
	p := f.browse(f.authorizeURL(fapi2ClientID, uri, url.Values{"state": {alnum(10)}}))
	f.exchange(f.callback(p, a), a, f.key) // callback requires no state
}

// parRefused pushes the request with extra and expects 400 with want.
func (f *fapi2) parRefused(extra url.Values, want ...string) httpResult {
	f.t.Helper()
	res := f.par(f.request(extra), f.auth, nil)
	if res.status != http.StatusBadRequest || !slices.Contains(want, res.body["error"].(string)) {
		f.t.Fatalf("PAR: %d %s, want 400 with one of %v", res.status, res.raw, want)
	}
	if res.body["request_uri"] != nil {
		f.t.Fatal("a refused pushed request got a request_uri")
	}
	return res
}

func fapi2WithoutRedirectURI(t *testing.T) {
	// FAPI 2.0 §5.3.2.2 item 11 (redirect_uri required in every request);
	// Keystep refuses it at the PAR endpoint.
	newFAPI2(t).parRefused(url.Values{"redirect_uri": nil}, "invalid_request", "invalid_request_object")
}

func fapi2UnregisteredRedirectURI(t *testing.T) {
	newFAPI2(t).parRefused(url.Values{"redirect_uri": {suiteBase + "/callback/" + alnum(8)}}, "invalid_request", "invalid_request_object")
}

func fapi2TolerateUnregisteredRedirectURI(t *testing.T) {
	// RFC 9126 §2.4 lets an authorization server accept a redirect_uri a
	// client authenticated at PAR did not register; the module accepts a
	// PAR error too. Keystep requires registration (DESIGN: exact redirect
	// URI match), so: the PAR error, nothing redirected.
	fapi2UnregisteredRedirectURI(t)
	suiteWarning(t, "Keystep requires registered redirect URIs even for pushed requests; the module's PAR-error branch passes")
}

func fapi2FrontChannelFails(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	p := f.e.browser().get(f.e.issuer + "/authorize?" + a.params.Encode())
	if got := f.op.authError(p, suiteAuth{params: a.params, state: a.state()}); got != "invalid_request" {
		t.Fatalf("front-channel request of a fapi2 client: error %q, want invalid_request", got)
	}
}

func (f *fapi2) responseTypeFails(rt string) {
	f.t.Helper()
	res := f.parRefused(url.Values{"response_type": {rt}}, "invalid_request", "unsupported_response_type", "unauthorized_client")
	f.t.Logf("PAR refused response_type %q: %s", rt, res.raw)
}

func fapi2ClientIDInTokenEndpoint(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	code := f.code(a, nil)
	// client_id and a client assertion of client 2, signed with client 1's key.
	auth := func() url.Values {
		return merge(url.Values{"client_id": {fapi2Client2ID}}, f.assertion(fapi2Client2ID, f.keys, jose.ES256, nil))
	}
	res := f.token(f.codeForm(code, a, nil), auth, f.key, nil)
	if (res.status != http.StatusBadRequest && res.status != http.StatusUnauthorized) || !slices.Contains([]any{"invalid_client", "invalid_grant"}, res.body["error"]) {
		t.Fatalf("%d %s, want invalid_client or invalid_grant", res.status, res.raw)
	}
	t.Logf("token endpoint: %d %s", res.status, res.raw)
}

func fapi2HolderOfKeyRequired(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	code := f.code(a, nil)
	checkBindingRefused(t, f.token(f.codeForm(code, a, nil), f.auth, nil, nil))
	// The refusal came before the code was looked at: the client redeems
	// it with a proof.
	f.exchange(code, a, f.key)
}

func fapi2CodeBoundToClient(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	code := f.code(a, nil)
	auth2 := func() url.Values { return f.assertion(fapi2Client2ID, f.keys2, jose.ES256, nil) }
	res := f.token(f.codeForm(code, a, nil), auth2, f.key, nil)
	checkTokenError(t, res, "invalid_grant")
}

func fapi2CodeReuse(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	code := f.code(a, nil)
	tok := f.exchange(code, a, f.key)
	f.e.clock.Advance(time.Second)
	checkTokenError(t, f.token(f.codeForm(code, a, nil), f.auth, f.key, nil), "invalid_grant")
	// RFC 6749 §4.1.2: the tokens of a reused code should be revoked (the
	// suite warns only).
	if res := f.userinfo(tok.access, f.key, nil); res.status < 400 || res.status >= 500 {
		t.Errorf("the access token of a reused code still works at userinfo: %d", res.status)
	}
}

func fapi2ExpiredCode(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	code := f.code(a, nil)
	// FAPI 2.0 §5.3.2.1 item 10: a code lives at most 60 seconds.
	f.e.clock.Advance(61 * time.Second)
	checkTokenError(t, f.token(f.codeForm(code, a, nil), f.auth, f.key, nil), "invalid_grant")
}

// checkClientAuthRefused is EnsureHttpStatusCodeIs400or401 plus
// CheckErrorFrom…InvalidClientOrInvalidRequest.
func checkClientAuthRefused(t *testing.T, where string, res httpResult) {
	t.Helper()
	if (res.status != http.StatusBadRequest && res.status != http.StatusUnauthorized) || !slices.Contains([]any{"invalid_client", "invalid_request"}, res.body["error"]) {
		t.Errorf("%s: %d %s, want 400 or 401 with invalid_client or invalid_request", where, res.status, res.raw)
	}
}

// assertionRefused sends a client assertion signed by alg with edit at the
// PAR endpoint and at the token endpoint: both refuse it.
func (f *fapi2) assertionRefused(alg jose.SignatureAlgorithm, edit map[string]any) {
	f.t.Helper()
	bad := func() url.Values { return f.assertion(fapi2ClientID, f.keys, alg, edit) }
	checkClientAuthRefused(f.t, "PAR", f.par(f.request(nil), bad, nil))
	a := f.request(nil)
	code := f.code(a, nil)
	checkClientAuthRefused(f.t, "token endpoint", f.token(f.codeForm(code, a, nil), bad, f.key, nil))
}

func fapi2InvalidClientAssertions(t *testing.T) {
	f := newFAPI2(t)
	now := f.e.clock.Now()
	signed := func(alg jose.SignatureAlgorithm, edit map[string]any) func() url.Values {
		return func() url.Values { return f.assertion(fapi2ClientID, f.keys, alg, edit) }
	}
	none := func() url.Values {
		c := map[string]any{"iss": fapi2ClientID, "sub": fapi2ClientID, "aud": f.e.issuer, "jti": randomString(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {manualJWS(map[string]any{"alg": "none"}, c, nil)}}
	}
	edited := func(edit func(url.Values)) func() url.Values {
		return func() url.Values { v := f.auth(); edit(v); return v }
	}
	cases := []struct {
		name string
		auth func() url.Values
	}{
		{"No client assertion", func() url.Values { return url.Values{"client_id": {fapi2ClientID}} }},
		{"client_assertion_type missing", edited(func(v url.Values) { v.Del("client_assertion_type") })},
		{"client_assertion_type wrong", edited(func(v url.Values) {
			v.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		})},
		{"Client assertion without sub", signed(jose.ES256, map[string]any{"sub": nil})},
		{"Client assertion with wrong sub", signed(jose.ES256, map[string]any{"sub": fapi2Client2ID})},
		{"Client assertion without iss", signed(jose.ES256, map[string]any{"iss": nil})},
		{"Client assertion with wrong iss", signed(jose.ES256, map[string]any{"iss": fapi2Client2ID})},
		{"Client assertion without aud", signed(jose.ES256, map[string]any{"aud": nil})},
		{"Client assertion with unrelated aud", signed(jose.ES256, map[string]any{"aud": "https://suite.example/unrelated"})},
		{"Client assertion with PAR endpoint as aud", signed(jose.ES256, map[string]any{"aud": f.e.issuer + "/oauth/par"})},
		{"Client assertion with token endpoint as aud", signed(jose.ES256, map[string]any{"aud": f.e.issuer + "/oauth/token"})},
		{"Client assertion with array as aud", signed(jose.ES256, map[string]any{"aud": []string{f.e.issuer, "https://suite.example/other"}})},
		{"Client assertion with exp in the past", signed(jose.ES256, map[string]any{"iat": now.Add(-10 * time.Minute).Unix(), "exp": now.Add(-5 * time.Minute).Unix()})},
		{"Client assertion with iat and nbf over 60 seconds in the future", signed(jose.ES256, map[string]any{
			"iat": now.Add(70 * time.Second).Unix(), "nbf": now.Add(70 * time.Second).Unix(), "exp": now.Add(130 * time.Second).Unix()})},
		{"Client assertion signed with RS256", signed(jose.RS256, nil)},
		{"Client assertion with alg none", none},
		{"Client assertion with invalid signature", edited(func(v url.Values) {
			a := v.Get("client_assertion")
			v.Set("client_assertion", a[:len(a)-6]+flip(a[len(a)-6:]))
		})},
	}
	for _, c := range cases {
		checkClientAuthRefused(t, c.name, f.par(f.request(nil), c.auth, nil))
	}
	if res := f.par(f.request(nil), signed(jose.ES256, map[string]any{"iat": now.Add(8 * time.Second).Unix(), "nbf": now.Add(8 * time.Second).Unix()}), nil); res.status != http.StatusCreated {
		suiteWarning(t, "an assertion with iat and nbf 8 seconds ahead was refused: %d %s", res.status, res.raw)
		t.Errorf("Keystep allows clock skew for assertions; 8 seconds ahead was refused: %d %s", res.status, res.raw)
	}
	if res := f.par(f.request(nil), f.auth, nil); res.status != http.StatusCreated {
		t.Fatalf("Valid client assertion: %d %s", res.status, res.raw)
	}
}

// flip changes every character of s to another base64url character.
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

// manualJWS is a compact JWS with exactly header and claims, signed with
// ES256 by key; a nil key leaves the signature empty (alg none).
func manualJWS(header, claims map[string]any, key *ecdsa.PrivateKey) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	if key == nil {
		return input + "."
	}
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func fapi2RefreshToken(t *testing.T) {
	f := newFAPI2(t)
	first := f.happyFlow(nil)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.refresh}}
	// Without a proof: refused, and nothing rotated.
	checkBindingRefused(t, f.token(form, f.auth, nil, nil))
	f.e.clock.Advance(time.Second)
	nextIATSecond()
	second := f.checkTokens(f.token(form, f.auth, f.key, nil), "", f.key)
	for _, c := range []string{"sub", "acr", "amr", "auth_time"} {
		if mustJSON(first.claims[c]) != mustJSON(second.claims[c]) {
			t.Errorf("refreshed ID token %s %v, was %v (OIDC Core §12.2)", c, second.claims[c], first.claims[c])
		}
	}
	if second.refresh == "" {
		t.Fatal("no refresh token in the refresh response")
	}
	f.checkUserinfo(f.userinfo(second.access, f.key, nil), second)
	// Keystep rotates refresh tokens in families (idp/family.go): a retry
	// with the previous token within the family's reuse interval gets the
	// very successor it missed, not a second one (the suite does not
	// test reuse).
	if second.refresh == first.refresh {
		t.Fatal("the refresh token was not rotated")
	}
	if retry := f.token(form, f.auth, f.key, nil); retry.status != http.StatusOK || retry.body["refresh_token"] != second.refresh {
		t.Errorf("a retry within the reuse interval: %d %s, want the same successor", retry.status, retry.raw)
	}
}

func fapi2PARReuseBeforeCompletion(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	u := f.authorizeURL(fapi2ClientID, f.pushed(a, nil), nil)
	b := f.e.browser()
	first := b.get(u)
	if !first.has("/login/password") {
		t.Fatalf("ExpectLoginPage: %d %s", first.status, first.url)
	}
	// FAPI 2.0 §5.3.2.2 note 3 recommends accepting a request_uri again
	// until the user has authenticated (a reload); RFC 9126 §4 allows
	// either. Keystep spends a pushed request at the first visit, which
	// has already made the sign-in: the second visit is an error page
	// (the suite asks for its screenshot; at worst a WARNING), and the
	// sign-in begun by the first visit completes.
	second := b.get(u)
	errorPage(t, second)
	suiteWarning(t, "a request_uri visited twice before authentication: the second visit shows an error page (Keystep's pushed requests are single use)")
	f.exchange(f.callback(f.op.complete(b, first), a), a, f.key)
}

func fapi2PARReuse(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	u := f.authorizeURL(fapi2ClientID, f.pushed(a, nil), nil)
	f.exchange(f.callback(f.browse(u), a), a, f.key)
	errorPage(t, f.e.browser().get(u))
}

func fapi2PARExpired(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	u := f.authorizeURL(fapi2ClientID, f.pushed(a, nil), nil)
	f.e.clock.Advance(61 * time.Second) // expires_in was 60
	errorPage(t, f.e.browser().get(u))
}

func fapi2PARDifferentClient(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	errorPage(t, f.e.browser().get(f.authorizeURL(fapi2Client2ID, f.pushed(a, nil), nil)))
}

func fapi2PARRequestURIParam(t *testing.T) {
	f := newFAPI2(t)
	f.parRefused(url.Values{"request_uri": {parURN + alnum(20)}}, "invalid_request")
}

func fapi2PARMethod(t *testing.T) {
	f := newFAPI2(t)
	for _, method := range []string{http.MethodPut, http.MethodGet} {
		req, _ := http.NewRequest(method, f.e.issuer+"/oauth/par", strings.NewReader(merge(f.request(nil).params, f.auth()).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if res := f.op.do(req); res.status != http.StatusMethodNotAllowed {
			t.Errorf("EnsureParHTTPError: %s /oauth/par: %d, want 405 (RFC 9126 §2.1)", method, res.status)
		}
	}
}

func (f *fapi2) verifierRefused(edit url.Values) {
	f.t.Helper()
	a := f.request(nil)
	code := f.code(a, nil)
	res := f.token(f.codeForm(code, a, edit), f.auth, f.key, nil)
	if res.status != http.StatusBadRequest || !slices.Contains([]any{"invalid_grant", "invalid_request"}, res.body["error"]) {
		f.t.Fatalf("%d %s, want invalid_grant or invalid_request", res.status, res.raw)
	}
}

func fapi2WithoutDuplicates(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	u, _ := url.Parse(f.authorizeURL(fapi2ClientID, f.pushed(a, nil), nil))
	if q := u.Query(); len(q) != 2 {
		t.Fatalf("the authorization URL repeats pushed parameters: %s", u)
	}
	f.exchange(f.callback(f.browse(u.String()), a), a, f.key)
}

// ---- DPoP negative tests ----

// fapi2API is an API behind idp/resource that requires DPoP, reached as
// https://api.example (no network: the handler is called directly).
type fapi2API struct {
	url string
	h   http.Handler
}

func newFAPI2API(f *fapi2) *fapi2API {
	f.t.Helper()
	const base = "https://api.example"
	v, err := resource.Open(context.Background(), f.e.issuer, resource.WithClock(f.e.clock.Now), resource.WithDPoPRequired(), resource.WithPublicURL(base))
	if err != nil {
		f.t.Fatal(err)
	}
	return &fapi2API{url: base + "/accounts", h: v.Require(resource.Requirement{}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))}
}

func (a *fapi2API) call(h http.Header) (int, string) {
	r := httptest.NewRequest(http.MethodGet, "http://10.0.0.1/accounts", nil)
	for k, vs := range h { // as a server reads them: canonical names
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	return w.Code, w.Header().Get("WWW-Authenticate")
}

func (f *fapi2) apiHeaders(scheme, at string, proofs ...string) http.Header {
	h := http.Header{}
	h.Set("Authorization", scheme+" "+at)
	for _, p := range proofs {
		h.Add("DPoP", p)
	}
	return h
}

func fapi2DPoPNegative(t *testing.T) {
	f := newFAPI2(t)
	a := f.request(nil)
	tok := f.exchange(f.code(a, nil), a, f.key)
	at := tok.access
	api := newFAPI2API(f)
	jwk := func(k *ecdsa.PrivateKey, private bool) map[string]any {
		var key any = k.Public()
		if private {
			key = k
		}
		b, _ := json.Marshal(jose.JSONWebKey{Key: key})
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	type target struct {
		name string
		htu  string
		call func(h http.Header) (int, string)
	}
	userinfo := func(h http.Header) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, f.e.issuer+"/userinfo", nil)
		for k, v := range h {
			req.Header[k] = v
		}
		res := f.op.do(req)
		return res.status, res.header.Get("WWW-Authenticate")
	}
	for _, tg := range []target{{"userinfo", f.e.issuer + "/userinfo", userinfo}, {"idp/resource", api.url, api.call}} {
		// proof is a proof for tg with header and claim edits (nil deletes).
		proof := func(hdrEdit, claimEdit map[string]any, key *ecdsa.PrivateKey) string {
			now := f.e.clock.Now()
			hdr := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk(key, false)}
			c := map[string]any{"jti": randomString(), "htm": http.MethodGet, "htu": tg.htu, "iat": now.Unix(), "ath": dpopATH(at)}
			for _, e := range []struct{ m, edit map[string]any }{{hdr, hdrEdit}, {c, claimEdit}} {
				for n, v := range e.edit {
					if v == nil {
						delete(e.m, n)
					} else {
						e.m[n] = v
					}
				}
			}
			return manualJWS(hdr, c, key)
		}
		good := func() string { return proof(nil, nil, f.key.key) }
		expect := func(what string, ok bool, h http.Header) {
			t.Helper()
			status, ch := tg.call(h)
			switch {
			case ok && status != http.StatusOK:
				t.Errorf("%s: %s: %d %q, want 200", tg.name, what, status, ch)
			case !ok && status != http.StatusBadRequest && status != http.StatusUnauthorized:
				t.Errorf("%s: %s: %d, want 400 or 401", tg.name, what, status)
			case !ok && !strings.HasPrefix(ch, "DPoP "):
				t.Errorf("%s: %s: challenge %q, want the DPoP scheme", tg.name, what, ch)
			}
		}
		with := func(p string) http.Header { return f.apiHeaders("DPoP", at, p) }
		upper := http.Header{"Authorization": {"DPoP " + at}, "DPOP": {good()}}
		expect("DPoP header name in capitals", true, upper)
		expect("more than one DPoP header", false, f.apiHeaders("DPoP", at, good(), good()))
		expect("not a well-formed JWT", false, with("not.a-jwt"))
		expect("typ missing", false, with(proof(map[string]any{"typ": nil}, nil, f.key.key)))
		expect("alg missing", false, with(proof(map[string]any{"alg": nil}, nil, f.key.key)))
		expect("jwk missing", false, with(proof(map[string]any{"jwk": nil}, nil, f.key.key)))
		for _, c := range []string{"jti", "htm", "htu", "iat", "ath"} {
			expect(c+" missing", false, with(proof(nil, map[string]any{c: nil}, f.key.key)))
		}
		expect("typ invalid", false, with(proof(map[string]any{"typ": "JWT"}, nil, f.key.key)))
		expect("alg none", false, with(manualJWS(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": jwk(f.key.key, false)},
			map[string]any{"jti": randomString(), "htm": "GET", "htu": tg.htu, "iat": f.e.clock.Now().Unix(), "ath": dpopATH(at)}, nil)))
		g := good()
		expect("invalid signature", false, with(g[:len(g)-6]+flip(g[len(g)-6:])))
		expect("jwk with the private key", false, with(proof(map[string]any{"jwk": jwk(f.key.key, true)}, nil, f.key.key)))
		expect("htm PUT", false, with(proof(nil, map[string]any{"htm": http.MethodPut}, f.key.key)))
		expect("htu with query and fragment (ignored, RFC 9449 §4.3 item 9)", true, with(proof(nil, map[string]any{"htu": tg.htu + "?a=b#c"}, f.key.key)))
		expect("htu a different URL", false, with(proof(nil, map[string]any{"htu": tg.htu + "/other"}, f.key.key)))
		now := f.e.clock.Now()
		expect("iat one hour ahead", false, with(proof(nil, map[string]any{"iat": now.Add(time.Hour).Unix()}, f.key.key)))
		expect("iat one hour ago", false, with(proof(nil, map[string]any{"iat": now.Add(-time.Hour).Unix()}, f.key.key)))
		jti := randomString()
		expect("first use of a jti", true, with(proof(nil, map[string]any{"jti": jti}, f.key.key)))
		expect("second use of the same jti (the suite's SHOULD)", false, with(proof(nil, map[string]any{"jti": jti}, f.key.key)))
		expect("ath of another token", false, with(proof(nil, map[string]any{"ath": dpopATH(at + "x")}, f.key.key)))
		thief := f.e.newDPoPKey()
		expect("signed with another key", false, with(proof(map[string]any{"jwk": jwk(thief.key, false)}, nil, thief.key)))
		expect("extra header and claims (ignored)", true, with(proof(map[string]any{"x-extra": "1"}, map[string]any{"x-extra": "1"}, f.key.key)))
		u, _ := url.Parse(tg.htu)
		upperHTU := strings.ToUpper(u.Scheme) + "://" + strings.ToUpper(u.Host) + u.Path
		expect("htu with scheme and host in capitals (RFC 3986 §6.2.2)", true, with(proof(nil, map[string]any{"htu": upperHTU}, f.key.key)))
		if u.Port() == "" && u.Scheme == "https" {
			expect("htu with the default port (RFC 3986 §6.2.3)", true, with(proof(nil, map[string]any{"htu": "https://" + u.Host + ":443" + u.Path}, f.key.key)))
		}
		expect("no DPoP proof", false, http.Header{"Authorization": {"DPoP " + at}})
		expect("no DPoP proof, scheme Bearer", false, http.Header{"Authorization": {"Bearer " + at}})
		expect("a correct proof still works", true, with(good()))
	}
}

// dpopATH is the ath of an access token (RFC 9449 §4.2).
func dpopATH(at string) string {
	sum := sha256.Sum256([]byte(at))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
