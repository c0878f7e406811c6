package details

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrorCode is the OAuth error for authorization details that are malformed,
// of an unknown type, of a type the client may not use, or that break the
// type's definition (RFC 9396 §5).
const ErrorCode = "invalid_authorization_details"

// Limits on what [Parse] accepts. They bound the work done on a request
// parameter before anything is known about the client: a real transaction is
// a few hundred bytes, one or two objects, three or four levels deep.
const (
	// MaxBytes is the longest authorization_details value.
	MaxBytes = 64 << 10
	// MaxObjects is the most objects in the array.
	MaxObjects = 32
	// MaxDepth is the deepest nesting, counting the outer array as 1 and
	// each object as 2, so an object's own values may nest 6 levels more.
	MaxDepth = 8
	// maxNumber is the longest number literal. A double holds 17
	// significant digits; a longer literal only pads them.
	maxNumber = 64
	// maxExponent bounds a number's written exponent so that comparing it
	// exactly (math/big) costs next to nothing.
	maxExponent = 400
)

// Error is why authorization details were refused. Callers answer it with
// the OAuth error [ErrorCode] and Description as error_description.
// Description is safe to show: it quotes at most 100 characters of client
// input.
type Error struct {
	Description string
}

func (e *Error) Error() string { return ErrorCode + ": " + e.Description }

// invalid builds an *Error; arguments that come from the client go through
// [clip] first.
func invalid(format string, args ...any) error {
	return &Error{Description: fmt.Sprintf(format, args...)}
}

// clip quotes client input for an error description, at most 100 characters
// of it.
func clip(s string) string {
	const max = 100
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return strconv.Quote(string(r[:max])) + "…"
	}
	return strconv.Quote(s)
}

// Details is a parsed authorization_details value: one or more objects, each
// with a type (RFC 9396 §2). Obtain it from [Parse]; the objects hold only
// parsed JSON values (see [Object]).
type Details []Object

// Object is one authorization details object. Its values are what
// encoding/json produces with UseNumber: string, json.Number, bool, nil,
// []any and map[string]any. Numbers stay json.Number, never float64, so an
// amount keeps every digit the client sent.
type Object map[string]any

// Type is the object's type field ("" if absent, which [Parse] never lets
// through).
func (o Object) Type() string {
	s, _ := o["type"].(string)
	return s
}

// Types are the distinct types in d, in order of first appearance.
func (d Details) Types() []string {
	var out []string
	seen := map[string]bool{}
	for _, o := range d {
		if t := o.Type(); !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// String is the canonical JSON text (see [Details.Canonical]).
func (d Details) String() string { return string(d.Canonical()) }

// MarshalJSON writes the canonical form, so a token claim or a stored copy
// is the exact text that was hashed.
func (d Details) MarshalJSON() ([]byte, error) { return d.Canonical(), nil }

// UnmarshalJSON parses with [Parse], limits and all; null leaves d as it
// is, as encoding/json does for other types.
func (d *Details) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// commonArrays are the RFC 9396 §2.2 common data fields that are arrays of
// strings; identifier, the other one, is a string.
var commonArrays = []string{"locations", "actions", "datatypes", "privileges"}

// Parse reads an authorization_details request parameter (RFC 9396 §2): a
// non-empty JSON array of at most [MaxObjects] objects, each with a
// non-empty string type. It refuses, with an *[Error]:
//   - more than [MaxBytes] bytes, invalid UTF-8 or a lone UTF-16 surrogate
//     escape (I-JSON, RFC 7493 §2.1, which RFC 8785 requires);
//   - anything but one JSON value (trailing data included);
//   - a repeated key in any object: parsers disagree on which one wins, so
//     the person could be shown one value and the API act on the other;
//   - nesting deeper than [MaxDepth];
//   - a number that its canonical form (RFC 8785, IEEE 754 doubles) would
//     change, such as 12345678901234567891: the hash would then not tell
//     it from its neighbours. Send such values as strings;
//   - a common data field of the wrong shape: locations, actions, datatypes
//     and privileges must be arrays of strings, identifier a string (§2.2).
//
// Whether the types are known and the objects meet their definitions is
// [Registry.Check]'s job.
func Parse(raw string) (Details, error) {
	if len(raw) > MaxBytes {
		return nil, invalid("authorization_details is longer than %d bytes", MaxBytes)
	}
	if !utf8.ValidString(raw) {
		return nil, invalid("authorization_details is not valid UTF-8")
	}
	if err := checkSurrogates(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	v, err := readValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("authorization_details has data after the JSON array")
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, invalid("authorization_details must be a JSON array of objects")
	}
	if len(arr) == 0 {
		return nil, invalid("authorization_details is an empty array")
	}
	if len(arr) > MaxObjects {
		return nil, invalid("authorization_details has more than %d objects", MaxObjects)
	}
	d := make(Details, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, invalid("authorization_details[%d] is not a JSON object", i)
		}
		t, ok := m["type"].(string)
		if !ok || t == "" {
			return nil, invalid("authorization_details[%d] has no type (a non-empty string)", i)
		}
		for _, f := range commonArrays {
			if v, ok := m[f]; ok && !isStringArray(v) {
				return nil, invalid("authorization_details[%d].%s must be an array of strings", i, f)
			}
		}
		if v, ok := m["identifier"]; ok {
			if _, ok := v.(string); !ok {
				return nil, invalid("authorization_details[%d].identifier must be a string", i)
			}
		}
		d[i] = Object(m)
	}
	return d, nil
}

func isStringArray(v any) bool {
	a, ok := v.([]any)
	if !ok {
		return false
	}
	for _, e := range a {
		if _, ok := e.(string); !ok {
			return false
		}
	}
	return true
}

// readValue reads one JSON value from dec; depth is the nesting of the
// container it is in (0 at the top).
func readValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(dec, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth+1 > MaxDepth {
			return nil, invalid("authorization_details nests deeper than %d levels", MaxDepth)
		}
		switch t {
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := readValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, syntaxError(dec, err)
			}
			return arr, nil
		case '{':
			obj := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, syntaxError(dec, err)
				}
				k := kt.(string) // the decoder only yields string keys
				if _, dup := obj[k]; dup {
					return nil, invalid("authorization_details repeats the key %s in one object", clip(k))
				}
				v, err := readValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj[k] = v
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, syntaxError(dec, err)
			}
			return obj, nil
		}
		return nil, invalid("authorization_details is not valid JSON")
	case json.Number:
		if err := checkNumber(t); err != nil {
			return nil, err
		}
		return t, nil
	default: // string, bool, nil
		return t, nil
	}
}

func syntaxError(dec *json.Decoder, err error) error {
	if err == io.EOF {
		return invalid("authorization_details is empty or cut short")
	}
	return invalid("authorization_details is not valid JSON (at byte %d)", dec.InputOffset())
}

// checkNumber refuses a number whose canonical form (RFC 8785 §3.2.2.3)
// would not have the same value.
func checkNumber(n json.Number) error {
	s := string(n)
	if len(s) > maxNumber {
		return invalid("authorization_details has a number longer than %d characters; send it as a string", maxNumber)
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > maxExponent || e < -maxExponent {
			return invalid("authorization_details has a number out of range: %s", clip(s))
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return invalid("authorization_details has a number out of range: %s", clip(s))
	}
	written, ok1 := new(big.Rat).SetString(s)
	canonical, ok2 := new(big.Rat).SetString(formatNumber(f))
	if !ok1 || !ok2 || written.Cmp(canonical) != 0 {
		return invalid("authorization_details has a number that cannot be kept exactly: %s; send it as a string", clip(s))
	}
	return nil
}

// checkSurrogates refuses a \u escape of a UTF-16 surrogate that is not one
// half of a pair: encoding/json would turn it into U+FFFD, so two different
// inputs would parse the same.
func checkSurrogates(raw string) error {
	inString := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString:
			if i+1 < len(raw) && raw[i+1] == 'u' {
				r, ok := hex4(raw, i+2)
				switch {
				case ok && r >= 0xD800 && r < 0xDC00: // high: a low must follow
					lo, ok := rune(0), false
					if i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
						lo, ok = hex4(raw, i+8)
					}
					if !ok || lo < 0xDC00 || lo >= 0xE000 {
						return invalid("authorization_details has a lone UTF-16 surrogate escape")
					}
					i += 11
					continue
				case ok && r >= 0xDC00 && r < 0xE000:
					return invalid("authorization_details has a lone UTF-16 surrogate escape")
				}
			}
			i++ // skip the escaped character
		}
	}
	return nil
}

func hex4(s string, at int) (rune, bool) {
	if at+4 > len(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(s[at:at+4], 16, 16)
	return rune(v), err == nil
}
