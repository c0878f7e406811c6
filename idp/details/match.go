package details

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strconv"
)

// Narrows reports whether requested asks for no more than approved: every
// requested object is equal, in canonical form, to an approved one (RFC
// 9396 §6.2: a token or refresh request may name a subset of what was
// approved, never a new or changed object). Fewer objects are fine;
// requesting nothing narrows anything.
func Narrows(approved, requested Details) bool {
	have := make([][]byte, len(approved))
	for i, o := range approved {
		have[i] = canonicalValue(map[string]any(o))
	}
	for _, o := range requested {
		c := canonicalValue(map[string]any(o))
		found := false
		for _, h := range have {
			if bytes.Equal(h, c) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Covers reports whether approved allows what a resource server is about to
// do, described by want: an object with a type and the fields it relies on,
// such as
//
//	{"type": "payment_initiation",
//	 "instructedAmount": {"amount": "1250.00", "currency": "EUR"},
//	 "creditorName": "Example Supplies Ltd"}
//
// idp/resource mirrors this algorithm over the token's claim (decoded with
// UseNumber); testdata/covers.json holds the cases both must pass. Covers is
// true when some approved object has want's type and contains want, where
// have contains want when:
//
//   - want is an object: have is an object with every key of want, and
//     each of have's values contains want's value for it (fields want does
//     not name are ignored);
//   - want is an array: have is an array and every element of want is
//     contained by an element of have of its own, one for one (approving
//     actions [initiate, status] covers [initiate]; approving one payment
//     does not cover the same payment twice);
//   - want is a number: have is a number, or a string that is a plain
//     decimal ("1250.00"), of the same value compared exactly as decimals
//     (1250 == 1250.00 == 1.25e3);
//   - want is a string: have is the same string, byte for byte ("007" is
//     not "7", and not 7);
//   - want is true, false or null: have is the same.
//
// A want without a string type covers nothing.
func Covers(approved Details, want map[string]any) bool {
	t, ok := want["type"].(string)
	if !ok || t == "" {
		return false
	}
	for _, o := range approved {
		if o.Type() == t && contains(map[string]any(o), want) {
			return true
		}
	}
	return false
}

func contains(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := asMap(have)
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
	case Object:
		return contains(have, map[string]any(w))
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
	}
	wn, ok := number(want)
	if !ok {
		return false
	}
	var hn *big.Rat
	if s, isString := have.(string); isString {
		hn, ok = parseDecimal(s)
	} else {
		hn, ok = number(have)
	}
	return ok && hn.Cmp(wn) == 0
}

func asMap(v any) (map[string]any, bool) {
	switch v := v.(type) {
	case map[string]any:
		return v, true
	case Object:
		return v, true
	}
	return nil, false
}

// number is a JSON number as an exact decimal.
func number(v any) (*big.Rat, bool) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = string(v)
		if checkNumber(v) != nil { // bounds the work on huge exponents
			return nil, false
		}
	case float64:
		s = strconv.FormatFloat(v, 'g', -1, 64)
	case int:
		s = strconv.Itoa(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	default:
		return nil, false
	}
	return new(big.Rat).SetString(s)
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
