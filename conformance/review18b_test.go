package conformance

// Attacker review of issue 18 (DPoP), second pass. Every test here FAILS on
// the code it was written against, for the reason in its comment; each is
// a finding for the lead to fix.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/storage"
)

// pushWithProof pushes q for the rp client with proof in the DPoP header,
// doing the nonce dance once if the server asks for one (a fix may require
// nonces at PAR, RFC 9449 §10.1 allows it).
func (k *dpopKey) push(q url.Values, a protoAuth) (int, map[string]any) {
	k.e.t.Helper()
	status, body, h := k.e.dpopPost("/oauth/par", q, a, k.proof(http.MethodPost, "/oauth/par", "", nil))
	if status == http.StatusBadRequest && body["error"] == "use_dpop_nonce" {
		k.nonce = h.Get("DPoP-Nonce")
		status, body, _ = k.e.dpopPost("/oauth/par", q, a, k.proof(http.MethodPost, "/oauth/par", "", nil))
	}
	return status, body
}

// FINDING (high): the PAR endpoint ignores the DPoP header. RFC 9449 §10.1:
// a DPoP proof sent with the pushed request "MUST" be checked as in §4.3 and
// the server "MUST further behave as if the contained public key's
// thumbprint was provided using dpop_jkt", and must reject a dpop_jkt that
// differs from the header's key. oauth4webapi (issue 18's reference client)
// binds the code exactly this way, by sending its DPoP header to PAR
// instead of dpop_jkt: here such a code is NOT bound, so a stolen code
// (with a leaked verifier, or a confidential client's code with its
// credentials) redeems with the thief's key, and a bogus proof at PAR is
// accepted silently.
func TestReview18bPARDPoPHeaderBindsTheCode(t *testing.T) {
	e := newEnv(t)
	rp := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}

	t.Run("a code pushed with a DPoP header redeems only with that key", func(t *testing.T) {
		key, thief := e.newDPoPKey(), e.newDPoPKey()
		verifier := randomString() + randomString()
		status, body := key.push(protoQuery(rpClient, rpRedirect, s256(verifier)), rp)
		if status != http.StatusCreated {
			t.Fatalf("PAR with a good proof: %d %v", status, body)
		}
		uri, _ := body["request_uri"].(string)
		code := e.dpopCode(e.browser(), url.Values{"client_id": {rpClient}, "request_uri": {uri}})
		status, body = thief.token(codeForm(code, verifier), rp)
		if status == http.StatusOK {
			t.Fatalf("code pushed with key A's DPoP proof redeemed with key B: token_type %v; want invalid_grant (RFC 9449 §10.1)", body["token_type"])
		}
		if body["error"] != "invalid_grant" {
			t.Errorf("redemption with another key: %d %v, want invalid_grant", status, body)
		}
	})
	t.Run("a bad DPoP proof at PAR is refused", func(t *testing.T) {
		key := e.newDPoPKey()
		bad := key.proof(http.MethodPost, "/oauth/token", "", nil) // wrong htu
		status, body, _ := e.dpopPost("/oauth/par", protoQuery(rpClient, rpRedirect, s256(randomString()+randomString())), rp, bad)
		if status != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
			t.Errorf("PAR with a proof for the token endpoint: %d %v, want 400 invalid_dpop_proof", status, body)
		}
	})
	t.Run("dpop_jkt and a DPoP header of another key are refused together", func(t *testing.T) {
		key, other := e.newDPoPKey(), e.newDPoPKey()
		q := protoQuery(rpClient, rpRedirect, s256(randomString()+randomString()))
		q.Set("dpop_jkt", other.jkt)
		status, body := key.push(q, rp)
		if status == http.StatusCreated {
			t.Errorf("PAR with dpop_jkt of key B and a proof of key A accepted: %v (RFC 9449 §10.1: MUST reject)", body)
		}
	})
}

// FINDING (medium): introspection tells a resource server that "requires
// DPoP" that a bearer token is active when the requirement comes from the
// fapi2 profile. Introspect tests c.DPoPBoundAccessTokens, while the rest of
// the server decides "DPoP required" with client.dpopRequired()
// (DPoPBoundAccessTokens || Profile fapi2). Issue 18's acceptance: a token
// without the key is "reported inactive to a resource server that requires
// DPoP". Fix: `!c.dpopRequired() || resp.TokenType == dpop.Scheme` in
// opServer.Introspect (one decision, one place).
func TestReview18bFAPI2ResourceServerIsToldBearerTokensAreInactive(t *testing.T) {
	e := newEnv(t)
	rp := protoAuth{id: rpClient, method: "basic", secret: e.rpSecret}
	status, body, _ := e.dpopPost("/oauth/token", url.Values{"grant_type": {"client_credentials"}}, rp, "")
	if status != http.StatusOK || body["token_type"] != "Bearer" {
		t.Fatalf("client credentials: %d %v", status, body)
	}
	at, _ := body["access_token"].(string)

	// The client becomes a fapi2 resource server (private_key_jwt, as the
	// profile needs).
	keys := newClientKeys(t)
	c, err := e.store.ClientByID(context.Background(), rpClient)
	if err != nil {
		t.Fatal(err)
	}
	c.Profile, c.AuthMethod, c.JWKS, c.SecretHash = storage.ProfileFAPI2, "private_key_jwt", keys.jwks(), ""
	if err := e.store.UpdateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // the server's client cache (clientCacheTTL, real time)

	form := keys.assertion(t, e, rpClient, jose.ES256)
	form.Set("token", at)
	status, ib, _ := e.dpopPost("/oauth/introspect", form, protoAuth{}, "")
	if status != http.StatusOK {
		t.Fatalf("introspection by the fapi2 client: %d %v", status, ib)
	}
	if ib["active"] != false {
		t.Errorf("a bearer token introspected by a fapi2 (DPoP-required) resource server: %v, want {\"active\":false}", ib)
	}
}

// FINDING (low/medium): an RFC 9068 access token (typ at+jwt) is accepted
// as an id_token_hint at end_session, and the session is ended with no
// confirmation and a redirect to the client's post-logout URI. RFC 9068 §4
// gives at+jwt precisely so that an access token is never taken for an ID
// token; Keystep checks the typ one way (accessTokenTyped refuses ID tokens
// at userinfo) but not the other. An access token travels to every API it
// is sent to: any of them can now log the user out silently (the
// confirmation page exists for hint-less requests) — and the hint names the
// client whose post_logout_redirect_uri is used. Fix: before
// op.ValidateEndSessionRequest, refuse a hint whose JOSE typ is at+jwt (or
// anything but JWT/absent); the same check belongs wherever Keystep reads
// id_token_hint (/authorize prompt=none too).
func TestReview18bAccessTokenIsNotAnIDTokenHint(t *testing.T) {
	e := newEnv(t)
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	tok := r.login(b, nil)
	at := tok.token.AccessToken
	if h, _ := jwtParts(t, at); h["typ"] != "at+jwt" {
		t.Fatalf("the rp's access token is not an at+jwt: %v", h)
	}
	alive := func() bool {
		p := b.get(r.authURL(url.Values{"prompt": {"none"}}).url)
		return p.redirect != nil && p.redirect.Query().Get("code") != ""
	}
	// Control: a hint that does not verify ends nothing.
	b.get(e.issuer + "/end_session?" + url.Values{"id_token_hint": {unsignedCopy(t, at)}}.Encode())
	if !alive() {
		t.Fatal("control: an unverifiable hint ended the session")
	}
	end := e.issuer + "/end_session?" + url.Values{"id_token_hint": {at}, "post_logout_redirect_uri": {rpLogout}, "state": {"bye"}}.Encode()
	p := b.get(end)
	// Today: 200 "Signed out" — the hint verified as an ID token (no azp, so
	// no client and no redirect), and the session is gone with no confirmation.
	if p.redirect != nil && strings.HasPrefix(p.redirect.String(), rpLogout) {
		t.Errorf("an at+jwt access token was accepted as id_token_hint: redirected to %s", p.redirect)
	}
	if !alive() {
		t.Errorf("the session was ended by an access token used as id_token_hint")
	}
}

// FINDING (low): a private_key_jwt client assertion may have any exp, so an
// assertion minted today stays usable for years (once), and its jti row is
// kept until then. RFC 7523 §3 lets the server bound it ("The authorization
// server MAY reject JWTs with an 'exp' claim value that is unreasonably far
// in the future"); FAPI/the OpenID conformance suite expect short-lived
// assertions, and Keystep's own request objects are bounded. A leaked
// (logged, cached) but unused assertion is a long-lived client credential.
// Fix: in verifyAssertion refuse exp more than a few minutes ahead (e.g.
// exp − max(iat, now) ≤ 5 min, and require iat when exp is far).
func TestReview18bClientAssertionLifetimeIsBounded(t *testing.T) {
	e, keys := parEnv(t)
	now := time.Now()
	a := keys.sign(t, jose.ES256, map[string]any{"iss": keyClient, "sub": keyClient, "aud": e.issuer, "jti": randomString(),
		"iat": now.Unix(), "exp": now.Add(10 * 365 * 24 * time.Hour).Unix()}, nil)
	form := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}, "token": {"x"}}
	status, body, _ := e.dpopPost("/oauth/introspect", form, protoAuth{}, "")
	if status == http.StatusOK {
		t.Errorf("a client assertion valid for ten years authenticated the client: %d %v; want 401 invalid_client", status, body)
	}
}

// FINDING (low, DoS): "a stolen bound refresh token is useless without the
// key" holds at the token endpoint, but the thief can still revoke it: a
// public client's revocation needs only client_id, and /revoke takes a
// DPoP-bound refresh (or access) token with no proof of its key, ending the
// victim's whole family. RFC 9449 §5 binds a public client's refresh token
// to the key precisely because the client cannot authenticate. Fix: in
// opServer.Revocation, a public client's token whose grant has a JKT is
// revoked only with a valid proof of that key (otherwise answer 200 as RFC
// 7009 §2.2 allows, and revoke nothing; or invalid_dpop_proof).
func TestReview18bStolenBoundRefreshTokenCannotRevokeTheFamily(t *testing.T) {
	e := newEnv(t)
	spa := protoAuth{id: publicClient, method: "none"}
	key := e.newDPoPKey()
	verifier := randomString() + randomString()
	q := protoQuery(publicClient, rpRedirect, s256(verifier))
	q.Set("dpop_jkt", key.jkt)
	code := e.dpopCode(e.browser(), q)
	status, body := key.token(codeForm(code, verifier), spa)
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("code exchange: %d %v", status, body)
	}
	rt, _ := body["refresh_token"].(string)

	// The thief has the refresh token, not the key.
	e.dpopPost("/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}, spa, "")

	status, body = key.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, spa)
	if status != http.StatusOK {
		t.Errorf("the key holder's refresh after a thief without the key revoked the token: %d %v", status, body)
	}
}

// FINDING (low): a non-fapi2 private_key_jwt assertion may carry any number
// of foreign audiences beside Keystep's own ("aud": ["https://other-as",
// issuer]). That is the shape the audience-injection attack on
// private_key_jwt (Hosseyni, Küsters, Würtele 2025; fixed in FAPI 2.0 and
// draft-ietf-oauth-rfc7523bis) relies on: an assertion a client made for
// another server, or one that server can make the client sign, is also
// valid here. rfc7523bis: the aud "MUST" be the issuer identifier alone.
// Keystep applies that to fapi2 clients only. Fix: for every client, an
// aud array must hold only Keystep's identifiers (issuer, token, PAR
// endpoint) — or, as rfc7523bis, exactly the issuer.
func TestReview18bClientAssertionHasNoForeignAudience(t *testing.T) {
	e, keys := parEnv(t)
	now := time.Now()
	a := keys.sign(t, jose.ES256, map[string]any{"iss": keyClient, "sub": keyClient, "aud": []string{"https://other-as.example", e.issuer}, "jti": randomString(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, nil)
	form := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}, "token": {"x"}}
	status, body, _ := e.dpopPost("/oauth/introspect", form, protoAuth{}, "")
	if status == http.StatusOK {
		t.Errorf("a client assertion also addressed to another server authenticated the client: %d %v; want 401 invalid_client", status, body)
	}
}

// FINDING (medium): a public client whose family began as bearer (code
// redeemed without a proof) and then refreshes WITH a proof gets a
// DPoP-bound access token and a refresh token that is still bearer: the
// family keeps JKT "" (CreateAccessAndRefreshTokens: "a rotated one keeps
// the key it was issued with"), so the new refresh token, stolen, refreshes
// with any key. RFC 9449 §5: "When an authorization server supporting DPoP
// issues a refresh token to a public client that presents a valid DPoP
// proof at the token endpoint, the refresh token MUST be bound to the
// respective public key." A client library that turns DPoP on after
// upgrade (oauth4webapi does it per request) is left unprotected without
// knowing. Fix: when a public client's refresh of an unbound family carries
// a proof, RotateFamily binds the family to the proof's JKT (storage: set
// JKT where it is ""), after which the existing check applies.
func TestReview18bPublicRefreshWithAProofBindsTheFamily(t *testing.T) {
	e := newEnv(t)
	spa := protoAuth{id: publicClient, method: "none"}
	key, thief := e.newDPoPKey(), e.newDPoPKey()
	verifier := randomString() + randomString()
	code := e.dpopCode(e.browser(), protoQuery(publicClient, rpRedirect, s256(verifier)))
	status, body, _ := e.dpopPost("/oauth/token", codeForm(code, verifier), spa, "")
	if status != http.StatusOK || body["token_type"] != "Bearer" {
		t.Fatalf("bearer code exchange: %d %v", status, body)
	}
	rt, _ := body["refresh_token"].(string)
	status, body = key.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, spa)
	if status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("refresh with a proof: %d %v", status, body)
	}
	rt2, _ := body["refresh_token"].(string)

	e.clock.Advance(time.Minute) // past any retry interval
	thief.nonce = key.nonce
	status, body = thief.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}, spa)
	if status == http.StatusOK {
		t.Errorf("the refresh token issued to a public client that presented a proof of key A refreshed with key B (token_type %v); RFC 9449 §5: it MUST be bound", body["token_type"])
	}
}

// FINDING (medium, a gap in review 18's fix): a request object without typ
// (or typed "JWT", which verifyRequestObject accepts for older clients) is
// still a client assertion. Review 18 refused only typ oauth-authz-req+jwt
// as an assertion and made the two share one jti space, so whoever sees the
// front-channel /authorize?request=… URL (browser history, an extension, a
// proxy or Referer log) and uses the object FIRST authenticates as the
// client — at PAR here, and at the token endpoint for client_credentials —
// whenever the object carries sub = client_id (many clients put iss and sub
// in every JWT they sign). Fix: verifyAssertion refuses a JWT carrying any
// authorization request parameter (response_type, redirect_uri, client_id,
// scope, …): a client assertion has none, a request object always has
// response_type (and client_id, RFC 9101 §4); typ cannot tell them apart.
func TestReview18bUntypedRequestObjectIsNotAClientAssertion(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(keyClient, "")
	_, params := authParams(t, r, nil)
	claims := requestObject(e, keyClient, params)
	claims["sub"] = keyClient
	claims["iat"] = time.Now().Unix()
	claims["exp"] = time.Now().Add(2 * time.Minute).Unix()
	obj := keys.sign(t, jose.ES256, claims, nil) // no typ, as the older clients Keystep accepts
	// The attacker saw the URL and uses the object first.
	_, other := authParams(t, r, url.Values{"acr_values": {"urn:keystep:acr:sfa"}})
	other.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	other.Set("client_assertion", obj)
	if status, out, _ := e.push(other, "", ""); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Errorf("an untyped request object authenticated the client at PAR: %d %v", status, out)
	}
	// Control: such an object (a fresh jti) is a valid request object.
	claims["jti"] = randomString()
	obj = keys.sign(t, jose.ES256, claims, nil)
	if p := e.browser().get(e.issuer + "/authorize?" + url.Values{"client_id": {keyClient}, "request": {obj}}.Encode()); !p.has("/login/password") {
		t.Errorf("control: the untyped request object was refused at /authorize: %d %v", p.status, p.redirect)
	}
}
