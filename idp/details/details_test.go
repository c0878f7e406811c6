package details

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

const payment = `[{"type":"payment_initiation","actions":["initiate"],"instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":"Example Supplies Ltd","creditorAccount":{"iban":"GB82WEST12345698765432"},"remittanceInformationUnstructured":"Invoice 2026-117"}]`

func mustParse(t *testing.T, raw string) Details {
	t.Helper()
	d, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse(%s): %v", raw, err)
	}
	return d
}

func TestParseKeepsTheValues(t *testing.T) {
	d := mustParse(t, `[{"type":"payment_initiation","instructedAmount":{"amount":1250.10,"currency":"EUR"},"flags":[true,null]},{"type":"account_change"}]`)
	want := Details{
		{"type": "payment_initiation", "instructedAmount": map[string]any{"amount": json.Number("1250.10"), "currency": "EUR"}, "flags": []any{true, nil}},
		{"type": "account_change"},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if got := d.Types(); !cmp.Equal(got, []string{"payment_initiation", "account_change"}) {
		t.Errorf("Types() = %v", got)
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct{ name, raw string }{
		{"the RFC 9396 payment example", payment},
		{"whitespace around and inside", " \n[ { \"type\" : \"x\" } ]\t"},
		{"a URI as type", `[{"type":"https://scheme.example.com/payment"}]`},
		{"the common fields in their shapes", `[{"type":"x","locations":["https://a.example"],"actions":["read"],"datatypes":["d"],"identifier":"id-1","privileges":["admin"]}]`},
		{"a surrogate pair escape", `[{"type":"x","n":"\ud83d\ude00"}]`},
		{"an escaped backslash before u", `[{"type":"x","n":"\\ud800"}]`},
		{"nesting at the limit", `[{"type":"x","a":[[[[[[1]]]]]]}]`},
		{"32 objects", "[" + strings.Repeat(`{"type":"x"},`, 31) + `{"type":"x"}]`},
		{"numbers a double holds exactly", `[{"type":"x","n":[0.1,1e21,-0,1250.000,9007199254740992,5e-324]}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.raw); err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct{ name, raw, want string }{
		{"empty", ``, "empty or cut short"},
		{"not JSON", `payment`, "not valid JSON"},
		{"cut short", `[{"type":"x"}`, "cut short"},
		{"an object, not an array", `{"type":"x"}`, "must be a JSON array"},
		{"a string", `"x"`, "must be a JSON array"},
		{"an empty array", `[]`, "empty array"},
		{"a string element", `["payment_initiation"]`, "[0] is not a JSON object"},
		{"a null element", `[{"type":"x"},null]`, "[1] is not a JSON object"},
		{"no type", `[{"amount":"1"}]`, "[0] has no type"},
		{"an empty type", `[{"type":""}]`, "[0] has no type"},
		{"a numeric type", `[{"type":1}]`, "[0] has no type"},
		{"trailing data", `[{"type":"x"}] [{"type":"y"}]`, "data after the JSON array"},
		{"trailing garbage", `[{"type":"x"}]x`, "data after the JSON array"},
		{"a repeated key", `[{"type":"x","amount":"1","amount":"1000000"}]`, `repeats the key "amount"`},
		{"a repeated key deep inside", `[{"type":"x","a":{"b":{"c":1,"c":2}}}]`, `repeats the key "c"`},
		{"a repeated type", `[{"type":"x","type":"y"}]`, `repeats the key "type"`},
		{"too deep", `[{"type":"x","a":[[[[[[[1]]]]]]]}]`, "deeper than 8"},
		{"33 objects", "[" + strings.Repeat(`{"type":"x"},`, 32) + `{"type":"x"}]`, "more than 32 objects"},
		{"over 64 KiB", `[{"type":"x","n":"` + strings.Repeat("a", MaxBytes) + `"}]`, "longer than 65536 bytes"},
		{"invalid UTF-8", "[{\"type\":\"x\xff\"}]", "not valid UTF-8"},
		{"a lone high surrogate", `[{"type":"x","n":"\ud800"}]`, "lone UTF-16 surrogate"},
		{"a lone low surrogate", `[{"type":"x","n":"\udc00x"}]`, "lone UTF-16 surrogate"},
		{"a high surrogate and no low", `[{"type":"x","n":"\ud83d\u0041"}]`, "lone UTF-16 surrogate"},
		{"a number a double cannot hold", `[{"type":"x","n":12345678901234567891}]`, "cannot be kept exactly"},
		{"2^53+1", `[{"type":"x","n":9007199254740993}]`, "cannot be kept exactly"},
		{"a fraction a double cannot hold", `[{"type":"x","n":0.10000000000000000001}]`, "cannot be kept exactly"},
		{"a number too large", `[{"type":"x","n":1e309}]`, "out of range"},
		{"a huge exponent", `[{"type":"x","n":1e-99999999}]`, "out of range"},
		{"a long number", `[{"type":"x","n":1` + strings.Repeat("0", 70) + `}]`, "longer than 64 characters"},
		{"NaN", `[{"type":"x","n":NaN}]`, "not valid JSON"},
		{"actions not an array", `[{"type":"x","actions":"initiate"}]`, "[0].actions must be an array of strings"},
		{"locations with a number", `[{"type":"x","locations":["a",1]}]`, "[0].locations must be an array of strings"},
		{"identifier not a string", `[{"type":"x","identifier":7}]`, "[0].identifier must be a string"},
		{"a long repeated key is clipped", `[{"type":"x","` + long + `":1,"` + long + `":2}]`, `repeats the key "` + strings.Repeat("x", 100) + `"…`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(tc.raw)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %v, %v; want an *Error", d, err)
			}
			if !strings.Contains(e.Description, tc.want) {
				t.Errorf("Description = %q; want it to contain %q", e.Description, tc.want)
			}
			if !strings.HasPrefix(err.Error(), ErrorCode+": ") {
				t.Errorf("Error() = %q", err.Error())
			}
			if n := utf8.RuneCountInString(e.Description); n > 200 {
				t.Errorf("Description is %d characters long", n)
			}
		})
	}
}

func TestDetailsJSONRoundTrip(t *testing.T) {
	d := mustParse(t, payment)
	b, err := json.Marshal(struct {
		D Details `json:"authorization_details"`
	}{d})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"authorization_details":` + string(d.Canonical()) + `}`
	if string(b) != want {
		t.Errorf("Marshal = %s\nwant %s", b, want)
	}
	var back struct {
		D Details `json:"authorization_details"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.D.Hash() != d.Hash() {
		t.Errorf("round trip changed the hash")
	}
	if err := json.Unmarshal([]byte(`{"authorization_details":[{"type":"x","a":1,"a":2}]}`), &back); err == nil {
		t.Errorf("Unmarshal accepted a repeated key")
	}
}

func TestDetailsUnmarshalNull(t *testing.T) {
	var v struct {
		D Details `json:"authorization_details"`
	}
	if err := json.Unmarshal([]byte(`{"authorization_details":null}`), &v); err != nil || v.D != nil {
		t.Errorf("Unmarshal(null) = %v, %v", v.D, err)
	}
}

func TestHandBuiltObjects(t *testing.T) {
	// Details built in Go (tests, the demo) may nest Object values.
	d := Details{{"type": PaymentInitiation, "instructedAmount": Object{"amount": "1250.00", "currency": "EUR"}, "creditorName": "A"}}
	if err := ExamplePayments(mfa, phr).Check(d, []string{PaymentInitiation}); err != nil {
		t.Errorf("Check: %v", err)
	}
	parsed := mustParse(t, `[{"type":"payment_initiation","instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":"A"}]`)
	if d.Hash() != parsed.Hash() || !Narrows(parsed, d) {
		t.Errorf("a hand-built copy is not the parsed one")
	}
}
