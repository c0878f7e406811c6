package details

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Canonical is d in the JSON Canonicalization Scheme (RFC 8785): no
// whitespace, object keys sorted by their UTF-16 code units, strings and
// numbers written as ECMAScript's JSON.stringify writes them. The same
// details sent with any key order, whitespace, escaping or number spelling
// ("1250.0", "1.25e3") have the same canonical form; any other change of a
// value changes it ([Parse] refuses numbers a double cannot hold exactly).
//
// Canonical panics on a value [Parse] never produces (a func, a struct, a
// NaN): Details built by hand must hold JSON values only.
func (d Details) Canonical() []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, o := range d {
		if i > 0 {
			b.WriteByte(',')
		}
		writeCanonical(&b, map[string]any(o))
	}
	b.WriteByte(']')
	return b.Bytes()
}

// Hash is the SHA-256 of [Details.Canonical]: what a WebAuthn challenge
// commits to ([Challenge]) and the audit log records.
func (d Details) Hash() [sha256.Size]byte { return sha256.Sum256(d.Canonical()) }

// canonicalValue is the canonical JSON text of one value.
func canonicalValue(v any) []byte {
	var b bytes.Buffer
	writeCanonical(&b, v)
	return b.Bytes()
}

func writeCanonical(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		writeString(b, v)
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			panic(fmt.Sprintf("details: number %q out of range", string(v)))
		}
		b.WriteString(formatNumber(f))
	case float64:
		b.WriteString(formatNumber(v))
	case int:
		b.WriteString(formatNumber(float64(v)))
	case int64:
		b.WriteString(formatNumber(float64(v)))
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, e)
		}
		b.WriteByte(']')
	case Object:
		writeCanonical(b, map[string]any(v))
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareUTF16)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			writeCanonical(b, v[k])
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("details: %T is not a JSON value", v))
	}
}

// compareUTF16 orders strings by UTF-16 code units (RFC 8785 §3.2.3), which
// differs from Go's byte order for characters above U+FFFF against those in
// U+E000–U+FFFF.
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

// writeString writes s as ECMAScript's JSON.stringify does (RFC 8785
// §3.2.2.2): only '"', '\\' and the C0 controls are escaped, the usual five
// with their short forms, the rest as lower-case \u00xx.
func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// formatNumber is ECMAScript's Number::toString for a finite double
// (ECMA-262 §6.1.6.1.20, RFC 8785 §3.2.2.3): the shortest digits that read
// back as f, in plain notation for exponents -7 < n ≤ 21, otherwise as
// d.ddde±n.
func formatNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		panic("details: NaN and Infinity have no JSON form")
	}
	if f == 0 {
		return "0" // and -0
	}
	var sign string
	if f < 0 {
		sign, f = "-", -f
	}
	// Go's shortest round-trip digits are the same as ECMAScript's.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1 // f = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	es := "+"
	if n-1 < 0 {
		es = "-"
	}
	ex := strconv.Itoa(abs(n - 1))
	if k == 1 {
		return sign + digits + "e" + es + ex
	}
	return sign + digits[:1] + "." + digits[1:] + "e" + es + ex
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
