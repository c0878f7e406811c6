package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// assertionAlgs are the algorithms a private_key_jwt client assertion may
// be signed with; fapi2 clients are held to fapi2Algs.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// clientJWTKind is the one-time token kind that spends the jti of every
// JWT a client signs for Keystep: client assertions and request objects
// alike, so that one JWT can never serve as both.
const clientJWTKind = "client_jwt"

// clientJWTLeeway is how far ahead of this server's clock a client's iat or
// nbf may be (the FAPI 2.0 conformance suite sends them 8 seconds ahead
// and expects that accepted, and 60 seconds refused).
const clientJWTLeeway = 10 * time.Second

// maxAssertionLifetime bounds exp − iat of a client assertion (RFC 7523
// §3 asks servers to bound it; a few minutes is what clients use).
const maxAssertionLifetime = 5 * time.Minute

// requestObjectClaims are authorization request parameters: a JWT that
// carries one is a request object.
var requestObjectClaims = []string{"response_type", "redirect_uri", "scope", "client_id", "state", "nonce", "code_challenge"}

// onlyOurAudience reports whether aud (a string or an array of strings)
// names at least one of ours and nothing else.
func onlyOurAudience(aud any, ours ...string) bool {
	var list []any
	switch a := aud.(type) {
	case string:
		list = []any{a}
	case []any:
		list = a
	}
	if len(list) == 0 {
		return false
	}
	for _, v := range list {
		if s, ok := v.(string); !ok || !slices.Contains(ours, s) {
			return false
		}
	}
	return true
}

// foreignJWTTypes are typ headers of JWTs that are something else than a
// client assertion: such a JWT is refused as one, whatever its claims.
var foreignJWTTypes = []string{"oauth-authz-req+jwt", "dpop+jwt", "at+jwt", "logout+jwt", "secevent+jwt"}

// verifyAssertion authenticates a client by a private_key_jwt assertion
// (RFC 7523 §3, OIDC Core §9). The library's own check refused EdDSA,
// accepted only the issuer as audience (RFC 9126 §2 wants the PAR and token
// endpoint URLs too), let a fapi2 client name other audiences beside the
// issuer, took any JWT typ and never spent the jti; this one does all of it
// in one place:
//
//   - a JWS signed with an allowed algorithm (fapi2: PS256, ES256, EdDSA) by
//     a key the client registered, strong enough (admin.CheckKey);
//   - iss and sub both the client ID, of a client registered for
//     private_key_jwt;
//   - aud the issuer, the token endpoint or the PAR endpoint; for a fapi2
//     client exactly the issuer, as a string (FAPI 2.0 Security Profile
//     §5.3.2.1: audience injection);
//   - exp in the future, iat and nbf not ahead by more than the leeway;
//   - a jti not seen before, spent here until exp.
//
// Every refusal is invalid_client (RFC 6749 §5.2).
func (s *opServer) verifyAssertion(ctx context.Context, assertion string) (*client, error) {
	refuse := func(desc string, args ...any) (*client, error) {
		return nil, oidc.ErrInvalidClient().WithDescription(desc, args...)
	}
	jws, err := jose.ParseSigned(assertion, assertionAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return refuse("the client assertion must be a JWS signed with %s", algNames(assertionAlgs))
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); slices.Contains(foreignJWTTypes, strings.ToLower(typ)) {
		return refuse("a %s is not a client assertion", typ)
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(jws.UnsafePayloadWithoutVerification()))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return refuse("the client assertion's claims are not a JSON object")
	}
	for _, name := range requestObjectClaims {
		if _, ok := claims[name]; ok {
			// A request object (RFC 9101 §4) carries the request; an
			// assertion never does. typ cannot tell them apart: it is
			// optional on both, so a request object seen in a browser's URL
			// would otherwise authenticate whoever used it first.
			return refuse("a JWT carrying %s is a request object, not a client assertion", name)
		}
	}
	iss, _ := claims["iss"].(string)
	if sub, _ := claims["sub"].(string); iss == "" || sub != iss {
		return refuse("the client assertion's iss and sub must both be the client ID")
	}
	c, err := s.clientByID(ctx, iss)
	if err != nil {
		return refuse("unknown client")
	}
	if c.AuthMethod() != oidc.AuthMethodPrivateKeyJWT {
		return refuse("this client authenticates with %s", c.AuthMethod())
	}
	if c.fapi2() && !slices.Contains(fapi2Algs, jose.SignatureAlgorithm(h.Algorithm)) {
		return refuse("the client assertion must be signed with %s", algNames(fapi2Algs))
	}
	key, err := s.Provider().Storage().GetKeyByIDAndClientID(ctx, h.KeyID, c.ID)
	if err != nil {
		return refuse("no key registered for the client verifies the assertion")
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm || key.Use != "" && key.Use != "sig" {
		return refuse("the client's key is not registered for %s signatures", h.Algorithm)
	}
	if err := admin.CheckKey(*key, c.fapi2()); err != nil {
		return refuse("the client's key is too weak: %s", err)
	}
	if _, err := jws.Verify(key); err != nil {
		return refuse("the client assertion's signature is invalid")
	}
	if c.fapi2() {
		if aud, _ := claims["aud"].(string); aud != s.issuer {
			return refuse("the client assertion's aud must be the issuer %s, as a string", s.issuer)
		}
	} else if !onlyOurAudience(claims["aud"], s.issuer, s.issuer+tokenPath, s.issuer+parPath) {
		// Every audience must be ours: an assertion a client made for
		// another server as well could be replayed here by that server
		// (the audience-injection attack on private_key_jwt).
		return refuse("the client assertion's aud must name this server only: the issuer %s", s.issuer)
	}
	now := s.now()
	exp, ok := numericDate(claims["exp"])
	switch {
	case !ok:
		return refuse("the client assertion needs exp")
	case !now.Before(exp):
		return refuse("the client assertion has expired")
	}
	for _, name := range []string{"iat", "nbf"} {
		if v, present := claims[name]; present {
			t, ok := numericDate(v)
			if !ok || t.After(now.Add(clientJWTLeeway)) {
				return refuse("the client assertion's %s is in the future", name)
			}
		}
	}
	from := now
	if iat, ok := numericDate(claims["iat"]); ok && iat.Before(now) {
		from = iat
	}
	if exp.Sub(from) > maxAssertionLifetime {
		// Its jti is kept until exp: a ten-year assertion would be a
		// ten-year row, and a long-lived credential besides.
		return refuse("the client assertion may live at most %s", maxAssertionLifetime)
	}
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return refuse("the client assertion needs jti")
	}
	if err := s.spendClientJTI(ctx, c.ID, jti, exp); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return refuse("the client assertion was already used")
		}
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return c, nil
}

// spendClientJTI spends the jti of a JWT client clientID signed for
// Keystep until exp (and a minute more, for clocks behind ours):
// storage.ErrAlreadyExists when it was spent before.
func (s *opServer) spendClientJTI(ctx context.Context, clientID, jti string, exp time.Time) error {
	return s.store.CreateOneTimeToken(ctx, clientJWTKind, factor.HashToken(clientID+"\x00"+jti), exp.Add(time.Minute))
}
