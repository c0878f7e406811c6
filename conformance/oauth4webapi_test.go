package conformance

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/resource"
	"github.com/keystep/keystep/storage"
)

// TestOAuth4WebAPIFAPI2 drives a FAPI 2.0 client we did not write:
// oauth4webapi, a certified OAuth 2 / OpenID Connect client library, runs
// in conformance/node/fapi.mjs and pushes its request (PAR) with DPoP,
// authenticates with private_key_jwt, checks iss, redeems the code with
// DPoP, calls an API behind idp/resource that requires DPoP and acr phr,
// calls userinfo and refreshes with the same key. The browser part —
// password, then Alice's passkey on the software authenticator — is played
// here, and so is the thief who replays what the client was issued.
// Skipped without node locally; CI must run it.
func TestOAuth4WebAPIFAPI2(t *testing.T) {
	nodePath := nodeRPSetup(t)

	t.Run("PAR DPoP and step-up to phr, used and refreshed with the same key", func(t *testing.T) {
		f := newFAPINode(t)
		res := f.run(t, nodePath, "")
		f.checkResult(t, res)
		f.checkReplays(t, res)
	})
	t.Run("acr_values added to the authorize URL in the browser changes nothing", func(t *testing.T) {
		f := newFAPINode(t)
		res := f.run(t, nodePath, "&acr_values="+url.QueryEscape(acrSFA))
		f.checkResult(t, res)
	})
}

// fapiNode is one issuer with a fapi2 client whose key node holds, Alice
// with a trusted passkey, and an API that requires DPoP and phr.
type fapiNode struct {
	e       *env
	passkey *softKey
	jwk     jose.JSONWebKey // the client's private key
	api     string          // the API's URL
}

const fapiNodeClient = "bank-node"

func newFAPINode(t *testing.T) *fapiNode {
	t.Helper()
	e := newEnv(t, onLocalhost)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv := jose.JSONWebKey{Key: key, KeyID: "node-es256", Algorithm: "ES256", Use: "sig"}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{priv.Public()}})
	e.addClient(storage.Client{ID: fapiNodeClient, Name: "Bank (oauth4webapi)", AuthMethod: "private_key_jwt", JWKS: string(set),
		Profile: storage.ProfileFAPI2, RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code", "refresh_token"},
		IDTokenAlg: "ES256", FirstParty: true})
	f := &fapiNode{e: e, passkey: e.softEnroll(alice, alicePass), jwk: priv}

	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	v, err := resource.Open(context.Background(), e.issuer, resource.WithClock(e.clock.Now), resource.WithDPoPRequired(), resource.WithPublicURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	h = v.Require(resource.Requirement{ACR: []string{acrPHR}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"sub": c.Subject, "acr": c.ACR})
	}))
	f.api = srv.URL + "/accounts"
	return f
}

// fapiNodeResult is what fapi.mjs reported, one JSON line at a time.
type fapiNodeResult struct {
	RP                   string          `json:"rp"`
	RequestURI           string          `json:"request_uri"`
	AuthorizeURL         string          `json:"authorize_url"`
	DPoPJWK              jose.JSONWebKey `json:"dpop_jwk"`
	IDToken              idClaims        `json:"id_token"`
	TokenType            string          `json:"token_type"`
	AccessToken          string          `json:"access_token"`
	RefreshToken         string          `json:"refresh_token"`
	API                  *nodeAPICall    `json:"api"`
	UserInfo             map[string]any  `json:"userinfo"`
	RefreshedIDToken     idClaims        `json:"refreshed_id_token"`
	RefreshedTokenType   string          `json:"refreshed_token_type"`
	RefreshedAccessToken string          `json:"refreshed_access_token"`
	APIAfterRefresh      *nodeAPICall    `json:"api_after_refresh"`
	// Callback is the URL the browser was sent back to.
	Callback *url.URL `json:"-"`
}

type nodeAPICall struct {
	Status          int    `json:"status"`
	Body            string `json:"body"`
	WWWAuthenticate string `json:"www_authenticate"`
}

// run runs fapi.mjs, plays the browser (password, then the passkey, with
// edit appended to the authorize URL) and returns what node saw.
func (f *fapiNode) run(t *testing.T, nodePath, edit string) fapiNodeResult {
	t.Helper()
	e := f.e
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodePath, "fapi.mjs")
	cmd.Dir = nodeRPDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	wait := func() error { waited = true; return cmd.Wait() }
	defer func() {
		if !waited {
			cancel()
			_ = wait()
		}
	}()
	fail := func(format string, args ...any) {
		t.Helper()
		cancel()
		_ = wait()
		t.Fatalf(format+"\nnode stderr:\n%s", append(args, stderr.String())...)
	}
	var res fapiNodeResult
	dec := json.NewDecoder(stdout)
	read := func() bool {
		t.Helper()
		err := dec.Decode(&res)
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			fail("reading from node: %v", err)
		}
		return true
	}
	cfg, _ := json.Marshal(map[string]any{"issuer": e.issuer, "client_id": fapiNodeClient, "private_jwk": f.jwk,
		"redirect_uri": rpRedirect, "acr_values": acrPHR, "api_url": f.api})
	if _, err := stdin.Write(append(cfg, '\n')); err != nil {
		fail("writing to node: %v", err)
	}
	if !read() || res.AuthorizeURL == "" {
		fail("node printed no authorize_url")
	}
	t.Logf("RP: %s", res.RP)
	// The browser sees only client_id and request_uri (RFC 9126 §4).
	u, err := url.Parse(res.AuthorizeURL)
	if err != nil || !strings.HasPrefix(res.AuthorizeURL, e.issuer+"/authorize?") {
		fail("authorize_url %q", res.AuthorizeURL)
	}
	if q := u.Query(); len(q) != 2 || q.Get("client_id") != fapiNodeClient || !strings.HasPrefix(q.Get("request_uri"), parURN) {
		fail("authorize_url carries more than client_id and request_uri: %s", res.AuthorizeURL)
	}
	// The pushed request is bound to node's DPoP key (RFC 9449 §10.1).
	jkt, err := dpop.Thumbprint(res.DPoPJWK)
	if err != nil {
		fail("node's DPoP key %+v: %v", res.DPoPJWK, err)
	}

	b := e.browser()
	p := b.signIn(b.get(res.AuthorizeURL+edit), alice, alicePass)
	if ar := e.requestAt(p); ar.DPoPJKT != jkt {
		fail("the pushed request's dpop_jkt is %q, node's key is %q", ar.DPoPJKT, jkt)
	}
	status, out, _ := b.softAssert(softRequestID(t, p), f.passkey, softTweak{})
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || !strings.HasPrefix(next, "/login?id=") {
		fail("passkey assertion: %d %v", status, out)
	}
	p = b.get(e.issuer + next)
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	if p.redirect == nil || !strings.HasPrefix(p.redirect.String(), rpRedirect+"?") || p.redirect.Query().Get("code") == "" {
		fail("expected a redirect to the RP with a code, got %d at %s (redirect %v):\n%.2000s", p.status, p.url, p.redirect, p.body)
	}
	checkIss(t, e, p)
	res.Callback = p.redirect
	if _, err := io.WriteString(stdin, p.redirect.String()+"\n"); err != nil {
		fail("writing to node: %v", err)
	}
	stdin.Close()
	for read() {
	}
	if err := wait(); err != nil {
		t.Fatalf("node fapi.mjs: %v\n%s", err, stderr.String())
	}
	if res.APIAfterRefresh == nil {
		t.Fatalf("node did not get through the refresh:\n%s", stderr.String())
	}
	res.DPoPJWK.KeyID = jkt // kept for checkResult
	return res
}

// checkResult checks what node got: DPoP-bound tokens with acr phr, before
// and after the refresh, accepted by the API and by userinfo.
func (f *fapiNode) checkResult(t *testing.T, res fapiNodeResult) {
	t.Helper()
	jkt := res.DPoPJWK.KeyID
	// oauth4webapi lowercases token_type (it is case-insensitive, RFC 6749
	// §5.1); TestDPoPPublicClient checks Keystep sends "DPoP".
	if !strings.EqualFold(res.TokenType, "DPoP") || !strings.EqualFold(res.RefreshedTokenType, "DPoP") {
		t.Errorf("token_type %q, after refresh %q, want DPoP", res.TokenType, res.RefreshedTokenType)
	}
	if res.IDToken.ACR != acrPHR || !hasAll(res.IDToken.AMR, "pwd", "hwk", "pop") || res.IDToken.Sub != "u-alice" {
		t.Errorf("ID token %+v, want acr %s by password and passkey", res.IDToken, acrPHR)
	}
	got, want := res.RefreshedIDToken, res.IDToken
	if got.Sub != want.Sub || got.ACR != want.ACR || !slices.Equal(got.AMR, want.AMR) || got.AuthTime != want.AuthTime {
		t.Errorf("refreshed ID token %+v, want the sub, acr, amr and auth_time of %+v", got, want)
	}
	for name, at := range map[string]string{"access token": res.AccessToken, "refreshed access token": res.RefreshedAccessToken} {
		hdr, claims := jwtParts(t, at)
		if hdr["typ"] != "at+jwt" || cnfJKT(claims) != jkt || claims["acr"] != acrPHR {
			t.Errorf("%s: typ %v, cnf.jkt %q (node's key %q), acr %v", name, hdr["typ"], cnfJKT(claims), jkt, claims["acr"])
		}
	}
	for name, call := range map[string]*nodeAPICall{"API": res.API, "API after refresh": res.APIAfterRefresh} {
		if call == nil || call.Status != http.StatusOK || !strings.Contains(call.Body, `"acr":"`+acrPHR+`"`) {
			t.Errorf("%s: %+v", name, call)
		}
	}
	if sub, _ := res.UserInfo["sub"].(string); sub != res.IDToken.Sub {
		t.Errorf("userinfo %v", res.UserInfo)
	}
}

// checkReplays plays the thief with what node was issued: the access
// token without a proof or with a proof of another key, at the API and at
// userinfo, and the refresh token without the key.
func (f *fapiNode) checkReplays(t *testing.T, res fapiNodeResult) {
	t.Helper()
	e := f.e
	thief := e.newDPoPKey()
	at := res.RefreshedAccessToken
	api := func(scheme, proof string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, f.api, nil)
		req.Header.Set("Authorization", scheme+" "+at)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	for name, call := range map[string][2]string{
		"as a bearer token":           {"Bearer", ""},
		"without a proof":             {"DPoP", ""},
		"with a proof of another key": {"DPoP", thief.proof(http.MethodGet, f.api, at, nil)},
	} {
		if status, ch := api(call[0], call[1]); status != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP ") {
			t.Errorf("API %s: %d %q, want 401 with a DPoP challenge", name, status, ch)
		}
		proof := call[1]
		if proof != "" {
			proof = thief.proof(http.MethodGet, "/userinfo", at, nil)
		}
		if status, ch := e.userinfo(call[0], at, proof); status != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP ") {
			t.Errorf("userinfo %s: %d %q, want 401 with a DPoP challenge", name, status, ch)
		}
	}
	refresh := func(withClientKey bool) url.Values {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {res.RefreshToken}}
		if withClientKey {
			for k, v := range f.assertion(t) {
				form[k] = v
			}
		} else {
			form.Set("client_id", fapiNodeClient)
		}
		return form
	}
	jwtAuth := protoAuth{id: fapiNodeClient, method: "form"}
	// Every token response carries the current nonce (RFC 9449 §8.2).
	_, _, h := e.dpopPost("/oauth/token", url.Values{}, protoAuth{}, "")
	thief.nonce = h.Get("DPoP-Nonce")
	// The thief has the refresh token and a DPoP key, not the client's
	// private key: the client does not authenticate.
	if status, body := thief.token(refresh(false), jwtAuth); status != http.StatusUnauthorized && status != http.StatusBadRequest || body["error"] != "invalid_client" {
		t.Errorf("refresh by a thief with another DPoP key: %d %v, want invalid_client", status, body)
	}
	// Even the client itself must send a proof: a fapi2 client's tokens
	// are always DPoP-bound (FAPI 2.0 §5.3.2.2).
	if status, body, _ := e.dpopPost("/oauth/token", refresh(true), jwtAuth, ""); status != http.StatusBadRequest || (body["error"] != "invalid_grant" && body["error"] != "invalid_dpop_proof") {
		t.Errorf("refresh without a proof: %d %v", status, body)
	}
	// Keystep binds a confidential client's refresh token to the client's
	// authentication, not to a DPoP key (RFC 9449 §5; idp/opserver.go
	// RefreshToken): the client itself may move to a new DPoP key, and the
	// new access token is bound to it.
	status, body := thief.token(refresh(true), jwtAuth)
	if newAT, _ := body["access_token"].(string); status != http.StatusOK || newAT == "" {
		t.Fatalf("the client refreshing with a new DPoP key: %d %v", status, body)
	} else if _, claims := jwtParts(t, newAT); cnfJKT(claims) != thief.jkt || claims["acr"] != acrPHR {
		t.Errorf("after a refresh with a new key: cnf.jkt %q (want %q), acr %v", cnfJKT(claims), thief.jkt, claims["acr"])
	}
}

// assertion is a fresh private_key_jwt client assertion of the node
// client's key, as a form.
func (f *fapiNode) assertion(t *testing.T) url.Values {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: f.jwk}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{"iss": fapiNodeClient, "sub": fapiNodeClient, "aud": f.e.issuer, "jti": randomString(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := jws.CompactSerialize()
	return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
}
