package details

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestFormatNumber is RFC 8785 Appendix B: IEEE 754 doubles and their
// ECMAScript serialisation (checked against Node's JSON.stringify too).
func TestFormatNumber(t *testing.T) {
	for _, tc := range []struct{ bits, want string }{
		{"0000000000000000", "0"},
		{"8000000000000000", "0"}, // -0
		{"0000000000000001", "5e-324"},
		{"8000000000000001", "-5e-324"},
		{"7fefffffffffffff", "1.7976931348623157e+308"},
		{"ffefffffffffffff", "-1.7976931348623157e+308"},
		{"4340000000000000", "9007199254740992"},
		{"c340000000000000", "-9007199254740992"},
		{"4430000000000000", "295147905179352830000"},
		{"44b52d02c7e14af5", "9.999999999999997e+22"},
		{"44b52d02c7e14af6", "1e+23"},
		{"44b52d02c7e14af7", "1.0000000000000001e+23"},
		{"444b1ae4d6e2ef4e", "999999999999999700000"},
		{"444b1ae4d6e2ef4f", "999999999999999900000"},
		{"444b1ae4d6e2ef50", "1e+21"},
		{"3eb0c6f7a0b5ed8c", "9.999999999999997e-7"},
		{"3eb0c6f7a0b5ed8d", "0.000001"},
		{"41b3de4355555553", "333333333.3333332"},
		{"41b3de4355555554", "333333333.33333325"},
		{"41b3de4355555555", "333333333.3333333"},
		{"41b3de4355555556", "333333333.3333334"},
		{"41b3de4355555557", "333333333.33333343"},
		{"becbf647612f3696", "-0.0000033333333333333333"},
		{"43143ff3c1cb0959", "1424953923781206.2"},
	} {
		b, _ := hex.DecodeString(tc.bits)
		f := math.Float64frombits(binary.BigEndian.Uint64(b))
		if got := formatNumber(f); got != tc.want {
			t.Errorf("formatNumber(%s) = %s; want %s", tc.bits, got, tc.want)
		}
	}
}

func canonicalOf(t *testing.T, raw string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return string(canonicalValue(v))
}

// TestCanonicalRFC8785 is the example of RFC 8785 §3.2.2 and the sorting
// example of §3.2.3 (keys ordered by UTF-16 code units: the emoji, a
// surrogate pair, sorts before U+FB33 although its UTF-8 bytes do not).
func TestCanonicalRFC8785(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		{
			"§3.2.2",
			`{
			  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
			  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
			  "literals": [null, true, false]
			}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			"§3.2.3",
			`{
			  "\u20ac": "Euro Sign",
			  "\r": "Carriage Return",
			  "\ufb33": "Hebrew Letter Dalet With Dagesh",
			  "1": "One",
			  "\ud83d\ude00": "Emoji: Grinning Face",
			  "\u0080": "Control",
			  "\u00f6": "Latin Small Letter O With Diaeresis"
			}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			"no HTML escaping, U+2028 kept, controls as \\u00xx",
			`{"a":"<b>&</b>\u2028\u0001\t\b\f"}`,
			"{\"a\":\"<b>&</b>\u2028\\u0001\\t\\b\\f\"}",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := canonicalOf(t, tc.raw); got != tc.want {
				t.Errorf("canonical\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestHashIgnoresFormOnly(t *testing.T) {
	want := mustParse(t, payment).Hash()
	for _, tc := range []struct{ name, raw string }{
		{"keys in another order, whitespace", `[ {"remittanceInformationUnstructured": "Invoice 2026-117",
			"creditorAccount": {"iban": "GB82WEST12345698765432"}, "creditorName": "Example Supplies Ltd",
			"instructedAmount": {"currency": "EUR", "amount": "1250.00"}, "actions": ["initiate"], "type": "payment_initiation"} ]`},
		{"escapes instead of characters", `[{"type":"payment\u005finitiation","actions":["initiate"],"instructedAmount":{"amount":"1250.00","currency":"\u0045UR"},"creditorName":"Example Supplies Ltd","creditorAccount":{"iban":"GB82WEST12345698765432"},"remittanceInformationUnstructured":"Invoice 2026\/117"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := strings.Replace(tc.raw, `2026\/117`, `2026-117`, 1)
			if got := mustParse(t, raw).Hash(); got != want {
				t.Errorf("hash differs for the same details")
			}
		})
	}
	// The same number, spelt differently.
	a := mustParse(t, `[{"type":"x","n":1250}]`)
	for _, s := range []string{"1250.0", "1.25e3", "12500e-1", "1250.000000"} {
		if b := mustParse(t, `[{"type":"x","n":`+s+`}]`); b.Hash() != a.Hash() {
			t.Errorf("%s hashes differently from 1250", s)
		}
	}
}

func TestHashChangesWithAnyValue(t *testing.T) {
	base := mustParse(t, payment).Hash()
	for _, tc := range []struct{ name, from, to string }{
		{"amount", `"1250.00"`, `"12500.00"`},
		{"amount spelt differently as a string", `"1250.00"`, `"1250"`},
		{"currency", `"EUR"`, `"GBP"`},
		{"creditor", `Example Supplies Ltd`, `Example Supplies Ltd.`},
		{"iban", `GB82WEST12345698765432`, `GB33BUKB20201555555555`},
		{"action", `"initiate"`, `"cancel"`},
		{"a string for a number", `"1250.00"`, `1250.00`},
		{"type", `payment_initiation`, `payment_initiation2`},
		{"a new field", `"creditorName"`, `"extra":true,"creditorName"`},
		{"a removed field", `"remittanceInformationUnstructured":"Invoice 2026-117"`, `"remittanceInformationUnstructured":null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := strings.Replace(payment, tc.from, tc.to, 1)
			if raw == payment {
				t.Fatalf("%q is not in the payment", tc.from)
			}
			if mustParse(t, raw).Hash() == base {
				t.Errorf("changing %s kept the hash", tc.name)
			}
		})
	}
	// Two objects in another order are other details: order can carry
	// meaning (which payment first), and the hash does not guess.
	two := mustParse(t, `[{"type":"a"},{"type":"b"}]`)
	owt := mustParse(t, `[{"type":"b"},{"type":"a"}]`)
	if two.Hash() == owt.Hash() {
		t.Errorf("object order does not change the hash")
	}
}

// FuzzCanonical: whatever Parse accepts, its canonical form parses to the
// same canonical form, so a stored or token copy hashes as approved.
func FuzzCanonical(f *testing.F) {
	f.Add(payment)
	f.Add(`[{"type":"x","n":[1e21,0.000001,1e-7,-0,"\u0000\u001f"],"\ud83d\ude00":{"\ufb33":1}}]`)
	f.Fuzz(func(t *testing.T, raw string) {
		d, err := Parse(raw)
		if err != nil {
			return
		}
		c := d.Canonical()
		d2, err := Parse(string(c))
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", c, err)
		}
		if c2 := d2.Canonical(); !bytes.Equal(c, c2) {
			t.Fatalf("canonical form not stable:\n%s\n%s", c, c2)
		}
	})
}
