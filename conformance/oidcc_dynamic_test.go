package conformance

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// The Dynamic OP plan (oidcc-dynamic-certification-test-plan): Keystep has no
// dynamic registration, so a static client mirrors the modules it can and the
// registration modules check that registration is refused.
var dynamicOPModules = []oidccModule{
	{"oidcc-idtoken-rs256", oidccIDTokenRS256},
	{"oidcc-userinfo-rs256", oidccUserinfoRS256},
	{"oidcc-ensure-redirect-uri-in-authorization-request", oidccRedirectURIMissing},
	{"oidcc-redirect-uri-query-OK", func(t *testing.T) { oidccRedirectURIQuery(t, "?foo=bar", "?foo=bar", true) }},
	{"oidcc-redirect-uri-query-mismatch", func(t *testing.T) { oidccRedirectURIQuery(t, "?foo=bar", "?foo=zot", false) }},
	{"oidcc-redirect-uri-query-added", func(t *testing.T) { oidccRedirectURIQuery(t, "", "?foo=bar", false) }},
	{"oidcc-redirect-uri-regfrag", func(t *testing.T) { noRegistration(t, "registering a redirect URI with a fragment") }},
	{"oidcc-registration-logo-uri", func(t *testing.T) { noRegistration(t, "logo_uri") }},
	{"oidcc-registration-policy-uri", func(t *testing.T) { noRegistration(t, "policy_uri") }},
	{"oidcc-registration-tos-uri", func(t *testing.T) { noRegistration(t, "tos_uri") }},
	{"oidcc-registration-jwks-uri", func(t *testing.T) { noRegistration(t, "jwks_uri registration") }},
	{"oidcc-registration-sector-uri", func(t *testing.T) { noRegistration(t, "sector_identifier_uri (and pairwise subjects)") }},
	{"oidcc-registration-sector-bad", func(t *testing.T) { noRegistration(t, "sector_identifier_uri (and pairwise subjects)") }},
	{"oidcc-server-rotate-keys", oidccServerRotateKeys},
	{"oidcc-refresh-token-rp-key-rotation", func(t *testing.T) {
		notApplicable(t, "private_key_jwt clients register a static JWKS (keystep clients), not a jwks_uri the RP can rotate")
	}},
	{"oidcc-request-uri-unsigned", func(t *testing.T) { oidccRequestURIOnlyDynamic(t) }},
	{"oidcc-request-uri-signed-rs256", func(t *testing.T) { oidccRequestURIOnlyDynamic(t) }},
	{"oidcc-ensure-client-assertion-with-iss-aud-succeeds", oidccClientAssertion},
}

// oidcc-userinfo-rs256: Keystep answers userinfo as JSON only and does not
// advertise signed userinfo.
func oidccUserinfoRS256(t *testing.T) {
	s := newSuiteOP(t)
	if v, ok := s.metadata()["userinfo_signing_alg_values_supported"]; ok {
		t.Fatalf("userinfo_signing_alg_values_supported = %v, but userinfo is never signed", v)
	}
	notApplicable(t, "needs userinfo_signed_response_alg at registration; Keystep serves userinfo as JSON only")
}

// oidcc-ensure-redirect-uri-in-authorization-request: a client with two
// redirect URIs sends none: an error page, no redirect (OIDC Core §3.1.2.1
// makes redirect_uri required).
func oidccRedirectURIMissing(t *testing.T) {
	s := newSuiteOP(t)
	s.e.addClient(storage.Client{ID: "oidcc-two-uris", Name: "Two URIs", SecretHash: factor.HashToken("x"),
		RedirectURIs: []string{suiteRedirect, suiteBase + "/callback2"}, AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code"}, FirstParty: true})
	s = s.as("oidcc-two-uris", "x", false)
	a := s.request(url.Values{"redirect_uri": nil})
	errorPage(t, s.browser().get(s.url(a)))
}

// oidcc-redirect-uri-query-*: a registered query is kept and compared
// exactly; a changed or added query is an unregistered URI.
func oidccRedirectURIQuery(t *testing.T, registered, sent string, ok bool) {
	s := newSuiteOP(t)
	s.e.addClient(storage.Client{ID: "oidcc-query", Name: "Query", SecretHash: factor.HashToken("x"),
		RedirectURIs: []string{suiteRedirect + registered}, AuthMethod: "client_secret_basic",
		GrantTypes: []string{"authorization_code"}, IDTokenAlg: "RS256", FirstParty: true})
	s = s.as("oidcc-query", "x", false)
	s.redirect = suiteRedirect + sent
	a := s.request(nil)
	p := s.authorize(s.browser(), a)
	if !ok {
		errorPage(t, p)
		return
	}
	s.exchange(s.callback(p, a), a, nil)
}

// oidcc-server-rotate-keys: after a rotation the JWKS has a new signing key
// and keeps the old one, and new ID tokens are signed with the new key.
// Config.Now is the env's clock, so moving it past the keyring's 30 s cache
// makes the server reread the keys, as another instance would.
func oidccServerRotateKeys(t *testing.T) {
	s := newSuiteOP(t)
	kidsOf := func() []string {
		var kids []string
		for _, k := range s.jwks() {
			kids = append(kids, k["kid"].(string))
		}
		return kids
	}
	before := kidsOf()
	s.e.clock.Advance(time.Second) // a rotation happens after the keys were made
	sealer, err := factor.NewSealer(s.e.key)
	if err != nil {
		t.Fatal(err)
	}
	added, err := idp.RotateKeys(context.Background(), s.e.store, sealer, s.e.clock.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	s.e.clock.Advance(31 * time.Second)
	after := kidsOf()
	for _, k := range before {
		if !slices.Contains(after, k) {
			t.Errorf("the old key %s left the JWKS at once; tokens it signed no longer verify", k)
		}
	}
	var newRS256 string
	for _, k := range added {
		if !slices.Contains(after, k.ID) {
			t.Errorf("the new %s key %s is not published", k.Algorithm, k.ID)
		}
		if k.Algorithm == "RS256" {
			newRS256 = k.ID
		}
	}
	_, tok := s.login(s.browser(), nil)
	if hdr, _ := jwtParts(t, tok.idToken); hdr["kid"] != newRS256 {
		t.Fatalf("ID token signed with %v, want the new key %s", hdr["kid"], newRS256)
	}
}

// oidcc-request-uri-unsigned / -signed-rs256 (Dynamic OP plan): they need
// request_uri support, which Keystep refuses cleanly.
func oidccRequestURIOnlyDynamic(t *testing.T) {
	s := newSuiteOP(t)
	a, q := s.requestURIAuth()
	if got := s.authError(s.browser().get(s.e.issuer+"/authorize?"+q.Encode()), a); got != "request_uri_not_supported" {
		t.Fatalf("error %q, want request_uri_not_supported", got)
	}
	notApplicable(t, "Dynamic OP plan; Keystep does not support request_uri (request_uri_parameter_supported=false) and refuses it with request_uri_not_supported")
}

// oidcc-ensure-client-assertion-with-iss-aud-succeeds: private_key_jwt
// (RFC 7523 §3) with aud = the issuer.
func oidccClientAssertion(t *testing.T) {
	s := newSuiteOP(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "suite-1", Algorithm: "RS256", Use: "sig"}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	const id = "oidcc-pkjwt"
	s.e.addClient(storage.Client{ID: id, Name: "private_key_jwt", RedirectURIs: []string{suiteRedirect},
		AuthMethod: "private_key_jwt", JWKS: string(set), GrantTypes: []string{"authorization_code"}, IDTokenAlg: "RS256", FirstParty: true})
	s = s.as(id, "", false)
	a := s.request(nil)
	code := s.callback(s.authorize(s.browser(), a), a)

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "suite-1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now() // the library checks an assertion's iat and exp against time.Now(), not Config.Now
	payload, _ := json.Marshal(map[string]any{"iss": id, "sub": id, "aud": s.e.issuer, "jti": alnum(20), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	assertion, _ := jws.CompactSerialize()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {suiteRedirect},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	res := s.do(formRequest(s.e.issuer+"/oauth/token", form))
	s.checkTokenResponse(res, a.nonce, true)
}

func formRequest(u string, form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}
