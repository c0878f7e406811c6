package login

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
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
func NewRequirement(claims string, acrValues []string, c storage.Client, scopes []string, scopeMins map[string]string) (storage.Requirement, error) {
	req, err := parseClaims(claims)
	if err != nil {
		return storage.Requirement{}, err
	}
	for _, v := range acrValues {
		req.ACR = appendNew(req.ACR, v)
	}
	req.ClientMin, req.Strict = c.MinACR, c.Strict
	for _, sc := range scopes {
		if m, ok := scopeMins[sc]; ok {
			req.ScopeMins = append(req.ScopeMins, m)
		}
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

// factorsOf converts the session's factor events for stepup.
func factorsOf(events []storage.FactorEvent) []stepup.Factor {
	out := make([]stepup.Factor, 0, len(events))
	for _, e := range events {
		out = append(out, stepup.Factor{Method: stepup.Method(e.Method), At: e.At, UserVerified: e.UserVerified, DeviceBound: e.DeviceBound, Provisional: e.Provisional})
	}
	return out
}

// enrolledOf lists what the user can complete. WebAuthn credentials are
// summarised in two entries: those phr says may count toward phr and phrh
// (nil: the trusted ones), and the provisional rest (DESIGN §3.3).
func enrolledOf(u storage.User, factors []storage.Factor, recoveryLeft int, phr func(storage.Factor) bool) []stepup.Enrolled {
	if phr == nil {
		phr = factor.Trusted
	}
	var out []stepup.Enrolled
	if u.PasswordHash != "" {
		out = append(out, stepup.Enrolled{Method: stepup.Password})
	}
	if slices.ContainsFunc(factors, func(f storage.Factor) bool { return f.Kind == storage.FactorTOTP }) {
		out = append(out, stepup.Enrolled{Method: stepup.TOTP})
	}
	var wa [2]*stepup.Enrolled // trusted, provisional
	for _, f := range factors {
		if f.Kind != storage.FactorWebAuthn {
			continue
		}
		c, err := factor.ReadCredentialFlags(f.Secret)
		if err != nil || c.CloneWarning {
			continue // a corrupt or blocked credential cannot be completed
		}
		i := 0
		if !phr(f) {
			i = 1
		}
		if wa[i] == nil {
			wa[i] = &stepup.Enrolled{Method: stepup.WebAuthn, Provisional: i == 1}
		}
		wa[i].DeviceBound = wa[i].DeviceBound || !c.BackupEligible
		wa[i].UserVerifying = wa[i].UserVerifying || c.UserVerified
	}
	for _, e := range wa {
		if e != nil {
			out = append(out, *e)
		}
	}
	if recoveryLeft > 0 {
		out = append(out, stepup.Enrolled{Method: stepup.Recovery})
	}
	return out
}

// hasSecondFactor reports whether the user has enrolled any second factor.
func hasSecondFactor(factors []storage.Factor) bool { return len(factors) > 0 }

// maxAgeOf converts the stored max_age.
func maxAgeOf(ar storage.AuthRequest) *time.Duration {
	if ar.MaxAge == nil {
		return nil
	}
	d := time.Duration(*ar.MaxAge) * time.Second
	return &d
}

// enrolledOf is the package function, less WebAuthn when passkeys are off
// here (an IP-address issuer): a factor that cannot be completed must not
// be offered or counted as reachable. Only trusted WebAuthn credentials
// count toward phr.
func (h *Handler) enrolledOf(u storage.User, factors []storage.Factor, recoveryLeft int) []stepup.Enrolled {
	return h.enrolledAt(u, factors, recoveryLeft, false)
}

// enrolledAt is enrolledOf for a request from a known device and network
// (known) or not: there a ripe credential counts toward phr too, since
// using it trusts it.
func (h *Handler) enrolledAt(u storage.User, factors []storage.Factor, recoveryLeft int, known bool) []stepup.Enrolled {
	out := enrolledOf(u, factors, recoveryLeft, h.phrCounts(known))
	if h.cfg.WebAuthn != nil {
		return out
	}
	return slices.DeleteFunc(out, func(e stepup.Enrolled) bool { return e.Method == stepup.WebAuthn })
}
