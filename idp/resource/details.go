package resource

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Rich Authorization Requests (RFC 9396) for resource servers: the token
// carries the authorization_details the person approved, and the API
// checks that they allow what it is about to do.
//
// The API describes the operation as one object with a type and the fields
// it relies on:
//
//	{"type": "payment_initiation",
//	 "instructedAmount": {"amount": "12500.00", "currency": "EUR"},
//	 "creditorName": "Example Supplies Ltd"}
//
// and the token's details cover it ([Claims.Covers]) when some approved
// object has that type and contains every field named, with the same
// value. A refusal is 403 with
//
//	WWW-Authenticate: Bearer error="insufficient_authorization_details",
//	    error_description="…", authorization_details="W3sidHlwZSI6…"
//
// where authorization_details is the base64url (no padding) of the JSON
// array [want]: the client starts a new authorization with exactly these
// details ([ParseChallenge], [ChallengeInfo.AuthorizeParams]), and the
// person approves the operation the API named.

// ErrInsufficientDetails is [CheckDetails]'s answer when the token's
// authorization details do not cover the operation.
var ErrInsufficientDetails = errors.New("resource: the access token's authorization_details do not cover this operation")

// errNoClaims is CheckDetails' answer outside Require.
var errNoClaims = errors.New("resource: no verified access token in the context; wrap the handler with Verifier.Require")

// errInsufficientDetails is the error code of a details refusal.
const errInsufficientDetails = "insufficient_authorization_details"

// maxDetailsBody bounds the request body [Verifier.RequireDetails] keeps
// in memory for want and the handler to read.
const maxDetailsBody = 1 << 20

// CheckDetails reports whether the verified token in ctx (put there by
// [Verifier.Require] or [Verifier.RequireDetails]) covers want: nil if it
// does, [ErrInsufficientDetails] if not, another error if ctx holds no
// verified token. A handler that learns the operation from its own body
// calls it after reading the body, and answers a refusal with
// [DetailsChallenge].
func CheckDetails(ctx context.Context, want map[string]any) error {
	c, ok := ClaimsFrom(ctx)
	if !ok {
		return errNoClaims
	}
	if !c.Covers(want) {
		return ErrInsufficientDetails
	}
	return nil
}

// DetailsChallenge answers 403 error="insufficient_authorization_details"
// with desc (for developers; characters RFC 6750 §3 does not allow are
// dropped) and want as the authorization_details parameter, under the
// scheme the request's token came with (DPoP or Bearer, as [Challenge]).
func DetailsChallenge(w http.ResponseWriter, r *http.Request, want map[string]any, desc string) {
	ch := detailsChallenge(want, desc)
	if c, ok := ClaimsFrom(r.Context()); ok && c.JKT != "" {
		ch.dpop = true
	} else if cr, ok := requestCredentials(r); ok && cr.dpop {
		ch.dpop = true
	}
	writeChallenge(w, http.StatusForbidden, ch)
}

func detailsChallenge(want map[string]any, desc string) challenge {
	ch := challenge{err: errInsufficientDetails, desc: desc}
	if b, err := json.Marshal([]any{want}); err == nil {
		ch.details = base64.RawURLEncoding.EncodeToString(b)
	}
	return ch
}

const detailsDesc = "The access token's authorization_details do not cover this operation"

// RequireDetails serves next only when the access token's authorization
// details cover what want says the request is about to do. want may read
// the request body: RequireDetails reads it first (at most 1 MiB, else 413)
// and gives want and next each a fresh copy. An error from want is the
// request's fault and answers 400 with its text.
//
// Inside [Verifier.Require] it uses the claims Require verified, so Require
// states the acr, max_age and scope the operation needs and RequireDetails
// the transaction; alone it verifies the token as Require with an empty
// Requirement does. A refusal is [DetailsChallenge]'s.
func (v *Verifier) RequireDetails(want func(*http.Request) (map[string]any, error), next http.Handler) http.Handler {
	check := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil && r.Body != http.NoBody {
			var err error
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxDetailsBody))
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
					return
				}
				http.Error(w, "reading the request body failed", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		wr := r.Clone(r.Context())
		if body != nil {
			wr.Body = io.NopCloser(bytes.NewReader(body))
		}
		op, err := want(wr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := CheckDetails(r.Context(), op); err != nil {
			c, _ := ClaimsFrom(r.Context())
			v.log.DebugContext(r.Context(), "authorization details do not cover the operation", "client_id", c.ClientID, "outcome", errInsufficientDetails)
			DetailsChallenge(w, r, op, detailsDesc)
			return
		}
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := ClaimsFrom(r.Context()); ok {
			check.ServeHTTP(w, r)
			return
		}
		v.Require(Requirement{}, check).ServeHTTP(w, r)
	})
}

// Covers reports whether the token's authorization details allow what
// want describes. It is idp/details.Covers, mirrored here so that an API
// does not link the provider, and both pass the same cases
// (idp/details/testdata/covers.json): some approved object has want's type
// and contains want, where have contains want when
//
//   - want is an object: have is an object with every key of want, each
//     of have's values containing want's value for it (fields want does
//     not name are ignored);
//   - want is an array: have is an array, and each element of want is
//     contained by some element of have (approving actions [initiate,
//     status] covers [initiate]);
//   - want is a number: have is a number, or a string that is a plain
//     decimal ("1250.00"), of the same value compared exactly as decimals
//     (1250 == 1250.00 == 1.25e3);
//   - want is a string: have is the same string, byte for byte ("007" is
//     not "7", and not 7);
//   - want is true, false or null: have is the same.
//
// want is read as JSON: its Go values are encoded and decoded again, so a
// float64 1250 and a json.Number "1250.00" mean the same. A want without a
// non-empty string type, or that is not JSON, covers nothing; so do
// details that are absent or not a JSON array of objects.
func (c Claims) Covers(want map[string]any) bool {
	w, ok := asJSON(want)
	if !ok {
		return false
	}
	t, ok := w["type"].(string)
	if !ok || t == "" || len(c.AuthorizationDetails) == 0 {
		return false
	}
	var approved []any
	if decodeNumbers(c.AuthorizationDetails, &approved) != nil {
		return false
	}
	for _, a := range approved {
		o, ok := a.(map[string]any)
		if ok && o["type"] == t && contains(o, w) {
			return true
		}
	}
	return false
}

// asJSON is want as encoding/json with UseNumber reads it.
func asJSON(want map[string]any) (map[string]any, bool) {
	b, err := json.Marshal(want)
	if err != nil {
		return nil, false
	}
	var w map[string]any
	if decodeNumbers(b, &w) != nil || w == nil {
		return nil, false
	}
	return w, true
}

func decodeNumbers(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(out)
}

func contains(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			hv, ok := h[k]
			if !ok || !contains(hv, wv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		return ok && len(w) <= len(h) && matchEach(h, w, make([]bool, len(h)))
	case string:
		h, ok := have.(string)
		return ok && h == w
	case bool:
		h, ok := have.(bool)
		return ok && h == w
	case nil:
		return have == nil
	case json.Number:
		wn, ok := number(w)
		if !ok {
			return false
		}
		var hn *big.Rat
		switch h := have.(type) {
		case string:
			hn, ok = decimal(h)
		case json.Number:
			hn, ok = number(h)
		default:
			return false
		}
		return ok && hn.Cmp(wn) == 0
	}
	return false
}

// The bounds of idp/details: a number literal of at most 64 characters
// with an exponent of at most ±400, so comparing exactly costs next to
// nothing.
const (
	maxNumber   = 64
	maxExponent = 400
)

var decimalRE = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]+)?$`)

// decimal reads a non-negative plain decimal string: "1250.00", not
// "+1250", "1.25e3" or "01250".
func decimal(s string) (*big.Rat, bool) {
	if len(s) > maxNumber || !decimalRE.MatchString(s) {
		return nil, false
	}
	return new(big.Rat).SetString(s)
}

// number is a JSON number as an exact decimal, if idp/details would take
// it: within the bounds, and a value an IEEE 754 double holds exactly as
// written (the token's canonical form is made of doubles).
func number(n json.Number) (*big.Rat, bool) {
	s := string(n)
	if len(s) > maxNumber {
		return nil, false
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > maxExponent || e < -maxExponent {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, false
	}
	written, ok1 := new(big.Rat).SetString(s)
	held, ok2 := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	if !ok1 || !ok2 || written.Cmp(held) != 0 {
		return nil, false
	}
	return written, true
}

// detailsClaim is the authorization_details claim or member as Claims
// keeps it: nil when absent or null, else a JSON array, or the token is
// invalid (the issuer never writes anything else there).
func detailsClaim(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '[' || !json.Valid(raw) {
		return nil, invalid("authorization_details is not a JSON array")
	}
	return bytes.Clone(raw), nil
}

// matchEach reports whether every element of want is contained by its own
// element of have (used marks those taken): an array is a multiset, so one
// approved payment never covers the same payment twice. Arrays here are
// short (details.MaxObjects bounds a request), so trying each assignment
// is cheap.
func matchEach(have, want []any, used []bool) bool {
	if len(want) == 0 {
		return true
	}
	for i, he := range have {
		if !used[i] && contains(he, want[0]) {
			used[i] = true
			if matchEach(have, want[1:], used) {
				return true
			}
			used[i] = false
		}
	}
	return false
}
