package conformance

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/storage"
)

// Attacks on issue 18 (PAR, JAR, require-PAR, iss, the fapi2 front
// channel). Each test fails on the code as it landed, for the reason its
// comment names.

// Finding 1 (medium): a pushed request can be redeemed as another client.
// The library decodes the authorization request with zitadel/schema, which
// matches parameter names case-insensitively (cache.go: strings.EqualFold),
// while Keystep's checks (checkParams' repeat rule, push's client_id check,
// redeemPushed's binding) compare exact names. A public client — no
// authentication at all — pushes client_id=spa plus Client_ID=pushes: PAR
// validates it as spa's and stores it under spa; at /authorize the decoder
// picks either name at random (map order), and about one time in two the
// request runs as "pushes", a client that requires PAR and authenticates
// with a secret it never presented. The stored request is then "fromPushed"
// for a client that pushed nothing, so its require-PAR is bypassed and the
// binding of a request_uri to its client (RFC 9126 §4) is broken.
//
// Fix: refuse, in checkParams (both /authorize and PAR), any two names
// that are equal under strings.EqualFold, and store only an allow-list of
// authorization request parameter names, exactly spelled, in push (and
// likewise for a request object's claims).
func TestReview18CaseVariantClientIDIsNotSmuggledIntoAPushedRequest(t *testing.T) {
	e, _ := parEnv(t)
	pr := e.rp(publicClient, "")
	for range 16 {
		_, params := authParams(t, pr, nil)
		params.Set("Client_ID", parClient)
		status, out, _ := e.push(params, "", "")
		if status == http.StatusBadRequest && out["error"] == "invalid_request" {
			return // refused at PAR: fixed
		}
		if status != http.StatusCreated {
			t.Fatalf("PAR: %d %v", status, out)
		}
		uri, _ := out["request_uri"].(string)
		p := e.browser().get(e.pushedURL(publicClient, uri, nil))
		if !p.has("/login/password") {
			continue // refused at /authorize: fine
		}
		if ar := e.requestAt(p); ar.ClientID != publicClient {
			t.Fatalf("a request pushed by %s (unauthenticated) runs as %s, a require-PAR client", publicClient, ar.ClientID)
		}
	}
}

// Finding 1b (medium, same root cause): the repeated-parameter rule is
// bypassed by a second spelling, at PAR as at /authorize. A pushed
// request with acr_values=phr and ACR_VALUES=<sfa> is accepted, and which
// one is decided on is a coin toss per decode: PAR validated one, and
// /authorize decodes the stored parameters again.
func TestReview18CaseVariantRepeatIsRefusedAtPAR(t *testing.T) {
	e, _ := parEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	_, params := authParams(t, r, url.Values{"acr_values": {"phr"}})
	params.Set("ACR_VALUES", "urn:keystep:acr:sfa")
	status, out, _ := e.push(params, rpClient, e.rpSecret)
	if status != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Fatalf("PAR accepted acr_values twice (second time as ACR_VALUES): %d %v", status, out)
	}
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	p := e.browser().get(e.issuer + "/authorize?" + q.Encode())
	if p.status != http.StatusBadRequest || p.redirect != nil {
		t.Fatalf("/authorize accepted acr_values twice (second time as ACR_VALUES): %d redirect=%v", p.status, p.redirect)
	}
}

// Finding 2 (high, availability): the server-wide switch locks everyone
// out of the account portal and the admin console. Both sign in through
// /authorize as the built-in account client (login/account.go
// portalAuthorize), a front-channel request, which validateAuthRequest
// refuses once Config.RequirePAR (serve --require-par) is on: the portal
// answers "That change needs more" and the console can never be reached
// to turn it off again.
//
// Fix: the portal pushes its own request server-side (it is in-process:
// CreatePushedRequest with the params it builds today, then redirect with
// request_uri), or parRequired exempts AccountClientID, whose redirect URI
// is the issuer's own and whose request carries nothing a browser can
// usefully downgrade (its acr is essential and checked at the callback).
func TestReview18ServerWideRequirePARKeepsThePortalAndConsole(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) { c.RequirePAR = true })
	for _, path := range []string{"/account", "/admin"} {
		t.Run(path, func(t *testing.T) {
			p := e.browser().get(e.issuer + path)
			if !p.has("/login/password") {
				t.Fatalf("with --require-par, %s cannot sign in: %d at %s\n%.600s", path, p.status, p.url, p.body)
			}
		})
	}
}

// Finding 3 (low, RFC 9126 §2 MUST): "the authorization server MUST
// accept its issuer identifier, token endpoint URL, or pushed
// authorization request endpoint URL as values that identify it as an
// intended audience" of a client assertion at the PAR endpoint. The
// library's VerifyJWTAssertion accepts only an aud containing the issuer,
// so a client that addresses its assertion to the PAR endpoint gets
// invalid_client.
//
// Fix: in verifyAssertion, for a non-fapi2 client, accept aud equal to the
// PAR endpoint URL at /oauth/par (and the token endpoint URL at the token
// endpoint, RFC 7523 §3), e.g. by verifying with a JWTProfileVerifier
// whose audience check is ours. fapi2 clients: see finding 4.
func TestReview18PARAcceptsAnAssertionAddressedToItself(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(keyClient, "")
	_, params := authParams(t, r, nil)
	now := time.Now()
	a := keys.sign(t, jose.ES256, map[string]any{"iss": keyClient, "sub": keyClient, "aud": e.issuer + "/oauth/par",
		"jti": randomString(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, nil)
	params.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	params.Set("client_assertion", a)
	if status, out, _ := e.push(params, "", ""); status != http.StatusCreated {
		t.Fatalf("assertion with aud = PAR endpoint: %d %v, want 201", status, out)
	}
}

// Finding 4 (low, FAPI 2.0 Security Profile final §5.3.2.1, the
// audience-injection fix): an authorization server "shall only accept its
// issuer identifier value ... as a string in the aud claim received in
// client authentication assertions". A fapi2 client's assertion whose aud
// is an array holding the issuer and something else is accepted.
//
// Fix: in authenticateClient's fapi2 branch, parse the assertion's aud
// and refuse anything but the exact issuer string (invalid_client).
func TestReview18FAPI2AssertionAudienceMustBeTheIssuerString(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(fapiClient, "")
	_, params := authParams(t, r, nil)
	now := time.Now()
	a := keys.sign(t, jose.ES256, map[string]any{"iss": fapiClient, "sub": fapiClient,
		"aud": []string{e.issuer, "https://attacker.example/token"},
		"jti": randomString(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, nil)
	params.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	params.Set("client_assertion", a)
	if status, out, _ := e.push(params, "", ""); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("fapi2 assertion with an aud array: %d %v, want 401 invalid_client", status, out)
	}
}

// Finding 5 (low, RFC 9101 §10.8 / RFC 8725 §3.11 cross-JWT confusion): a
// request object travels through the browser (history, logs, Referer of
// the login page's subresources are no-referrer, but the URL itself is
// plain), and is signed with the same key as the client's assertions. One
// whose claims also satisfy RFC 7523 (sub = iss = client_id, aud, exp,
// iat, jti) is accepted as a client_assertion after being used at
// /authorize: the two jti caches are separate kinds, and neither check
// looks at typ. Whoever saw the URL authenticates as the client at PAR
// (and at the token endpoint, for a client_credentials client).
//
// Fix: verifyAssertion refuses a JWT whose typ is oauth-authz-req+jwt
// (explicit typing is what RFC 9101 §10.8 registers it for), and spends
// jti in one kind for both ("client_jwt"), so one signed JWT is used once
// whatever it is presented as.
func TestReview18RequestObjectIsNotAClientAssertion(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(keyClient, "")
	_, params := authParams(t, r, nil)
	claims := requestObject(e, keyClient, params)
	claims["sub"] = keyClient
	claims["iat"] = time.Now().Unix()
	claims["exp"] = time.Now().Add(2 * time.Minute).Unix()
	obj := keys.sign(t, jose.ES256, claims, map[string]any{"typ": "oauth-authz-req+jwt"})
	// The client uses it through the browser, as intended.
	b := e.browser()
	p := b.get(e.issuer + "/authorize?" + url.Values{"client_id": {keyClient}, "request": {obj}}.Encode())
	if !p.has("/login/password") {
		t.Fatalf("the request object itself was refused: %d %v", p.status, p.redirect)
	}
	// Someone who saw the URL pushes as the client with it.
	_, other := authParams(t, r, url.Values{"acr_values": {"urn:keystep:acr:sfa"}})
	other.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	other.Set("client_assertion", obj)
	if status, out, _ := e.push(other, "", ""); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("a request object authenticated the client at PAR: %d %v", status, out)
	}
}

// Finding 6 (low, FAPI 2.0 Security Profile §5.4 "Cryptography and
// secrets": RSA keys of at least 2048 bits): a fapi2 client whose
// registered key is 1024-bit RSA authenticates with a PS256 assertion at
// PAR (and would sign request objects with it). Neither ValidateClient
// (console, CLI, apply) nor authenticateClient / verifyRequestObject looks
// at the key size; Go's crypto/rsa only refuses keys under 1024 bits.
//
// Fix: ValidateClient refuses, for profile fapi2, RSA keys under 2048 bits
// and EC keys on curves other than P-256 (what ES256 needs), so the console
// says so; and one runtime check (a fapi2 key filter in
// GetKeyByIDAndClientID's caller) keeps a store edited by hand honest.
func TestReview18FAPI2RefusesAWeakRSAKey(t *testing.T) {
	e, _ := parEnv(t)
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "small", Use: "sig"}}})
	e.addClient(storage.Client{ID: "weak", Name: "Weak bank", AuthMethod: "private_key_jwt", JWKS: string(set), Profile: storage.ProfileFAPI2,
		RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code"}, IDTokenAlg: "ES256", FirstParty: true})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: jose.JSONWebKey{Key: k, KeyID: "small"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{"iss": "weak", "sub": "weak", "aud": e.issuer, "jti": randomString(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	assertion, _ := jws.CompactSerialize()
	_, params := authParams(t, e.rp("weak", ""), nil)
	params.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	params.Set("client_assertion", assertion)
	if status, out, _ := e.push(params, "", ""); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("a fapi2 client authenticated with a 1024-bit RSA key: %d %v", status, out)
	}
}

// Finding 7 (low, FAPI 2.0 Security Profile §5.3.2.2: the authorization
// server "shall not support CORS for the authorization endpoint, as
// clients must perform an HTTP redirect rather than access this endpoint
// directly"): the library's CORS options (op.WithServerCORSOptions, meant
// for token, userinfo, discovery) cover every route it serves, /authorize
// included, and it answers a preflight from any origin with
// Access-Control-Allow-Origin: *. No cookies ride along (no
// Allow-Credentials), so nothing leaks today; it is a profile violation and
// an invitation to script the authorization endpoint.
//
// Fix: corsOpts.AllowOriginRequestFunc returning false when r.URL.Path is
// /authorize or /authorize/callback (one option, no new wrapper).
func TestReview18NoCORSOnTheAuthorizationEndpoint(t *testing.T) {
	e, _ := parEnv(t)
	for _, m := range []string{http.MethodOptions, http.MethodGet} {
		req, _ := http.NewRequest(m, e.issuer+"/authorize?client_id="+rpClient, nil)
		req.Header.Set("Origin", "https://spa.example")
		req.Header.Set("Access-Control-Request-Method", http.MethodGet)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s /authorize from another origin: Access-Control-Allow-Origin %q", m, got)
		}
	}
}

// Held (kept as a regression pin, passes): two browsers redeeming one
// request_uri at once get one login between them.
func TestReview18PushedRequestRaceHasOneWinner(t *testing.T) {
	e, _ := parEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	_, params := authParams(t, r, nil)
	uri := e.mustPush(params, rpClient, e.rpSecret)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, e.pushedURL(rpClient, uri, nil), nil)
			b := e.browser()
			resp, err := b.client.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
				if !strings.Contains(resp.Header.Get("Location"), "error") {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d browsers got a sign-in from one request_uri", won)
	}
}
