package signin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/keystep/keystep/storage"
)

// claimRequest is one member of the claims parameter (OIDC Core §5.5.1).
type claimRequest struct {
	Essential bool     `json:"essential"`
	Value     *string  `json:"value"`
	Values    []string `json:"values"`
}

// NewRequirement parses and merges, once, at /authorize, what an
// authorization request asks of acr: the `claims` parameter (OIDC Core §5.5)
// and acr_values, with the client's and the requested scopes' floors. A
// malformed claims parameter is an error (invalid_request at /authorize).
//
// OIDC Core §5.5.1.1 leaves the combination of claims and acr_values
// unspecified; Keystep's rule: values named in the claims parameter come
// first (they are the more specific request), then acr_values; an essential
// acr claim makes the whole list essential.
//
// scopeFloors are the minimums of the requested scopes, the server's and
// the client's own (policy.Snapshot.ScopeFloors).
func NewRequirement(claims string, acrValues []string, c storage.Client, scopeFloors []string) (storage.Requirement, error) {
	req, err := parseClaims(claims)
	if err != nil {
		return storage.Requirement{}, err
	}
	for _, v := range acrValues {
		req.ACR = appendNew(req.ACR, v)
	}
	req.ClientMin, req.Strict = c.MinACR, c.Strict
	for _, m := range scopeFloors {
		req.ScopeMins = appendNew(req.ScopeMins, m)
	}
	return req, nil
}

// parseClaims reads the acr request out of the `claims` parameter. It
// rejects anything that is not a JSON object of objects.
func parseClaims(raw string) (storage.Requirement, error) {
	var req storage.Requirement
	if raw == "" {
		return req, nil
	}
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	if err := dec.Decode(&top); err != nil || top == nil {
		return req, errors.New("claims must be a JSON object")
	}
	if dec.More() {
		return req, errors.New("claims has trailing data")
	}
	for _, member := range []string{"id_token", "userinfo"} {
		m, ok := top[member]
		if !ok || string(m) == "null" {
			continue
		}
		var claims map[string]json.RawMessage
		if err := json.Unmarshal(m, &claims); err != nil || claims == nil {
			return storage.Requirement{}, fmt.Errorf("claims.%s must be a JSON object", member)
		}
		a, ok := claims["acr"]
		if !ok || string(a) == "null" {
			continue
		}
		var cr claimRequest
		if err := json.Unmarshal(a, &cr); err != nil {
			return storage.Requirement{}, fmt.Errorf("claims.%s.acr is malformed", member)
		}
		if cr.Essential {
			req.Essential = true
		}
		if cr.Value != nil {
			req.ACR = appendNew(req.ACR, *cr.Value)
		}
		for _, v := range cr.Values {
			req.ACR = appendNew(req.ACR, v)
		}
	}
	return req, nil
}

func appendNew(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
