package details

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestDisplay(t *testing.T) {
	r := ExamplePayments(mfa, phr)
	for _, tc := range []struct {
		name, raw string
		want      []Item
	}{
		{"the example payment; the action it allows is shown", payment, []Item{{
			Title: "Pay an invoice",
			Lines: []Line{
				{"Amount", "EUR 1,250.00"},
				{"To", "Example Supplies Ltd"},
				{"Account", "GB82 WEST 1234 5698 7654 32"},
				{"Reference", "Invoice 2026-117"},
				{"Action", "initiate"},
			},
		}}},
		{"a number amount padded to the minor unit", `[{"type":"payment_initiation","instructedAmount":{"amount":1234567.5,"currency":"EUR"},"creditorName":"A"}]`, []Item{{
			Title: "Pay an invoice",
			Lines: []Line{{"Amount", "EUR 1,234,567.50"}, {"To", "A"}},
		}}},
		{"yen have no minor unit", `[{"type":"payment_initiation","instructedAmount":{"amount":"125000","currency":"JPY"},"creditorName":"A"}]`, []Item{{
			Title: "Pay an invoice",
			Lines: []Line{{"Amount", "JPY 125,000"}, {"To", "A"}},
		}}},
		{"digits are never cut", `[{"type":"payment_initiation","instructedAmount":{"amount":"0.125","currency":"EUR"},"creditorName":"A"}]`, []Item{{
			Title: "Pay an invoice",
			Lines: []Line{{"Amount", "EUR 0.125"}, {"To", "A"}},
		}}},
		{"markup is plain text, controls are spaces, bidi controls are marked", `[{"type":"payment_initiation","instructedAmount":{"amount":"5","currency":"EUR"},"creditorName":"<b>Acme</b>\n\u202eLtd"}]`, []Item{{
			Title: "Pay an invoice",
			Lines: []Line{{"Amount", "EUR 5.00"}, {"To", "<b>Acme</b> \uFFFDLtd"}},
		}}},
		{"an account change, its own fields counted", `[{"type":"account_change","account":{"iban":"DE89370400440532013000","holder":"Acme Payroll GmbH","bic":"COBADEFFXXX"},"effective":"2026-12-07","ticket":"CHG-1","actions":["update"]}]`, []Item{{
			Title: "Change the payout account",
			Lines: []Line{
				{"New account", "DE89 3704 0044 0532 0130 00"},
				{"Account holder", "Acme Payroll GmbH"},
				{"From", "2026-12-07"},
				{"Action", "update"},
				{"", "and 2 more details"},
			},
		}}},
		{"an unregistered type shows its name and counts everything", `[{"type":"<script>","a":1,"b":{"c":2,"d":[3]},"e":{}}]`, []Item{{
			Title: "Unregistered type <script>",
			Lines: []Line{{"", "and 4 more details"}},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Display(mustParse(t, tc.raw))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Display (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDisplayKinds(t *testing.T) {
	c := Config{Types: []Type{{
		Name: "k", Title: "Kinds",
		Fields: []Field{
			{Path: "acct", Label: "Account", Kind: KindAccount},
			{Path: "list", Label: "List", Kind: KindList},
			{Path: "flag", Label: "Flag", Kind: KindText},
			{Path: "n", Label: "Number", Kind: KindText},
			{Path: "amt", Label: "Amount", Kind: KindAmount},
			{Path: "cur", Label: "Currency", Kind: KindCurrency},
			{Path: "bad", Label: "Bad", Kind: KindIBAN},
			{Path: "long", Label: "Long", Kind: KindText},
		},
	}}}
	r, err := New(c, known)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 500)
	got := r.Display(mustParse(t, `[{"type":"k","acct":"12 345 678 9","list":["a",1.5,"c"],"flag":true,"n":12.50,"amt":"1000000","cur":"CHF","bad":{"x":1},"long":"`+long+`"}]`))
	want := []Line{
		{"Account", "1234 5678 9"},
		{"List", "a, 1.5, c"},
		{"Flag", "true"},
		{"Number", "12.50"},
		{"Amount", "1,000,000"},
		{"Currency", "CHF"},
		{"Bad", `{"x":1}`},
		{"Long", strings.Repeat("é", MaxValue-1) + "…"},
	}
	if diff := cmp.Diff(want, got[0].Lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if n := utf8.RuneCountInString(got[0].Lines[7].Value); n != MaxValue {
		t.Errorf("a long value is %d characters", n)
	}
}

type testFormatter struct{}

func (testFormatter) Amount(a, c string) string { return a + " " + c }
func (testFormatter) Date(s string) string      { return "on " + s }
func (testFormatter) More(n int) string         { return "+" + string(rune('0'+n)) }

func TestDisplayWithFormatter(t *testing.T) {
	r := ExamplePayments(mfa, phr)
	got := r.DisplayWith(mustParse(t, `[{"type":"account_change","account":{"iban":"DE89370400440532013000","holder":"A","bic":"COBADEFFXXX"},"effective":"2026-12-07"}]`), testFormatter{})
	pay := r.DisplayWith(mustParse(t, payment), testFormatter{})
	if pay[0].Lines[0].Value != "1250.00 EUR" || got[0].Lines[2].Value != "on 2026-12-07" || got[0].Lines[3].Value != "+1" {
		t.Errorf("DisplayWith did not use the formatter: %+v %+v", pay, got)
	}
}

func TestEnglishAmount(t *testing.T) {
	for _, tc := range []struct{ amount, currency, want string }{
		{"0", "EUR", "EUR 0.00"},
		{"1", "EUR", "EUR 1.00"},
		{"999", "EUR", "EUR 999.00"},
		{"1000", "EUR", "EUR 1,000.00"},
		{"1250.5", "EUR", "EUR 1,250.50"},
		{"123456789.123", "USD", "USD 123,456,789.123"},
		{"1.5", "KWD", "KWD 1.500"},
		{"1250", "", "1,250"},
		{"1250.5", "", "1,250.5"},
	} {
		if got := English.Amount(tc.amount, tc.currency); got != tc.want {
			t.Errorf("Amount(%s, %s) = %q; want %q", tc.amount, tc.currency, got, tc.want)
		}
	}
}

// TestDisplayHidesNothing: values Check would refuse (Display must not rely
// on it) are still all visible.
func TestDisplayHidesNothing(t *testing.T) {
	r := ExamplePayments(mfa, phr)
	for _, tc := range []struct {
		name string
		d    Details
		want []Line
	}{
		{"a bad currency is shown on its own", Details{{"type": PaymentInitiation, "instructedAmount": map[string]any{"amount": "5", "currency": "€"}}},
			[]Line{{"Amount", "5"}, {"Currency", `"€"`}}},
		{"a bad amount is shown raw, and its currency", Details{{"type": PaymentInitiation, "instructedAmount": map[string]any{"amount": "5,00", "currency": "EUR"}}},
			[]Line{{"Amount", `"5,00"`}, {"Currency", "EUR"}}},
		{"a currency without an amount", Details{{"type": PaymentInitiation, "instructedAmount": map[string]any{"currency": "EUR"}}},
			[]Line{{"Currency", "EUR"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Display(tc.d)
			if diff := cmp.Diff(tc.want, got[0].Lines); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}
