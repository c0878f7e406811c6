package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keystep/keystep/storage"
)

// requestObjectAlgs are the algorithms a request object may be signed
// with (RFC 9101 §4); published as request_object_signing_alg_values_supported.
// Unsigned ("none") and encrypted request objects are refused.
var requestObjectAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// fapi2Algs are the only algorithms a fapi2 client may sign with, request
// objects and client assertions alike (FAPI 2.0 Security Profile §5.4).
var fapi2Algs = []jose.SignatureAlgorithm{jose.PS256, jose.ES256, jose.EdDSA}

// fapi2MaxLifetime bounds exp − nbf of a fapi2 client's request object
// (FAPI 2.0 Message Signing §5.3.1).
const fapi2MaxLifetime = time.Hour

// requestObjectTypes are the typ headers a request object may carry (RFC
// 9101 §10.8 registers oauth-authz-req+jwt; older clients send JWT).
var requestObjectTypes = []string{"oauth-authz-req+jwt", "jwt"}

// registeredClaims are the JWT claims of a request object that are not
// authorization request parameters.
var registeredClaims = []string{"iss", "aud", "exp", "nbf", "iat", "jti", "sub"}

func errRequestObject(format string, args ...any) *oidc.Error {
	return (&oidc.Error{ErrorType: "invalid_request_object"}).WithDescription(format, args...)
}

func algNames(algs []jose.SignatureAlgorithm) string {
	s := make([]string, len(algs))
	for i, a := range algs {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// verifyRequestObject checks a request object (RFC 9101) of client c and
// returns the authorization request parameters it carries; only those are
// used (§6.3). It must be a JWS signed by a key the client registered with
// an allowed algorithm, issued by the client to this issuer, unexpired,
// valid already, and new: its jti is spent here, so a captured object
// cannot be replayed. Every refusal is invalid_request_object (§7).
// requestObjectLeeway is how far in the future an nbf may be: the
// client's clock may run a little ahead of ours (the FAPI 2.0 conformance
// suite sends nbf 8 seconds ahead and expects it accepted).
const requestObjectLeeway = 10 * time.Second

func (s *opServer) verifyRequestObject(ctx context.Context, c *client, raw string) (url.Values, error) {
	algs := requestObjectAlgs
	if c.fapi2() {
		algs = fapi2Algs
	}
	jws, err := jose.ParseSigned(raw, algs)
	if err != nil {
		return nil, errRequestObject("the request object must be a JWS signed with %s", algNames(algs))
	}
	if len(jws.Signatures) != 1 {
		return nil, errRequestObject("the request object must carry one signature")
	}
	h := jws.Signatures[0].Header
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		t, _ := typ.(string)
		if !slices.Contains(requestObjectTypes, strings.ToLower(t)) {
			return nil, errRequestObject("the request object's typ must be oauth-authz-req+jwt")
		}
	}
	key, err := s.Provider().Storage().GetKeyByIDAndClientID(ctx, h.KeyID, c.ID)
	if err != nil {
		return nil, errRequestObject("no key registered for the client verifies the request object")
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm || key.Use != "" && key.Use != "sig" {
		return nil, errRequestObject("the client's key is not registered for %s signatures", h.Algorithm)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, errRequestObject("the request object's signature is invalid")
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, errRequestObject("the request object's claims are not a JSON object")
	}
	now := s.now()
	if iss, _ := claims["iss"].(string); iss != c.ID {
		return nil, errRequestObject("iss must be the client_id")
	}
	if !audienceHas(claims["aud"], s.issuer) {
		return nil, errRequestObject("aud must contain the issuer %s", s.issuer)
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return nil, errRequestObject("exp is required")
	}
	if !now.Before(exp) {
		return nil, errRequestObject("the request object has expired")
	}
	nbf, hasNBF := numericDate(claims["nbf"])
	if _, present := claims["nbf"]; present && !hasNBF {
		return nil, errRequestObject("nbf must be a NumericDate")
	}
	if hasNBF && nbf.After(now.Add(requestObjectLeeway)) {
		return nil, errRequestObject("the request object is not valid yet (nbf)")
	}
	if c.fapi2() && (!hasNBF || exp.Sub(nbf) > fapi2MaxLifetime) {
		return nil, errRequestObject("a request object must have nbf and live at most %s", fapi2MaxLifetime)
	}
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return nil, errRequestObject("jti is required")
	}
	if id, present := claims["client_id"]; present && id != c.ID {
		return nil, errRequestObject("client_id in the request object does not match")
	}
	params := url.Values{}
	for k, v := range claims {
		if slices.Contains(registeredClaims, k) || v == nil {
			continue
		}
		if k == "request" || k == "request_uri" {
			return nil, errRequestObject("a request object must not contain %s", k)
		}
		p, err := paramValue(v)
		if err != nil {
			return nil, errRequestObject("%s: %s", k, err)
		}
		params.Set(k, p)
	}
	params.Set("client_id", c.ID)
	if msg := checkNames(params); msg != "" {
		return nil, errRequestObject("%s", msg)
	}
	// Spent last, once the object is known good: a refused object does not
	// burn its jti. It is remembered until the object expires.
	err = s.spendClientJTI(ctx, c.ID, jti, exp)
	if errors.Is(err, storage.ErrAlreadyExists) {
		return nil, errRequestObject("the request object was already used")
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return params, nil
}

// audienceHas reports whether a JWT aud claim (a string or an array of
// strings, RFC 7519 §4.1.3) contains want.
func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.Contains(a, any(want))
	}
	return false
}

// numericDate reads a JWT NumericDate (RFC 7519 §2).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// paramValue turns a request object claim into the form value it stands
// for: strings as they are, numbers (max_age) and booleans in their JSON
// spelling, objects and arrays (claims) as JSON text (RFC 9101 §4).
func paramValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case map[string]any, []any:
		b, err := json.Marshal(x)
		return string(b), err
	}
	return "", fmt.Errorf("unsupported value %T", v)
}

// signedWith reports whether a compact JWS is signed with one of algs
// (its header only; the signature is verified elsewhere).
func signedWith(compact string, algs []jose.SignatureAlgorithm) bool {
	_, err := jose.ParseSigned(compact, algs)
	return err == nil
}
