package details

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The acr names as idp/stepup spells them; test files may write them out.
const (
	mfa = "urn:keystep:acr:mfa"
	phr = "phr"
)

func known(acr string) bool { return acr == mfa || acr == phr || acr == "phrh" }

func TestExampleIsValid(t *testing.T) {
	if err := ExampleConfig(mfa, phr).Validate(known); err != nil {
		t.Fatalf("the example policy: %v", err)
	}
	r := ExamplePayments(mfa, phr)
	if got := r.Types(); !cmp.Equal(got, []string{AccountChange, PaymentInitiation}) {
		t.Errorf("Types() = %v", got)
	}
}

// TestConfigFromJSON reads the policy as the config file spells it (the
// YAML in the package doc, converted to JSON).
func TestConfigFromJSON(t *testing.T) {
	raw := `{"types": [{
		"name": "payment_initiation", "title": "Pay an invoice",
		"fields": [
			{"path": "instructedAmount.amount", "label": "Amount", "kind": "amount", "currency": "instructedAmount.currency"},
			{"path": "instructedAmount.currency", "label": "Currency", "kind": "currency"},
			{"path": "creditorName", "label": "To", "kind": "text"},
			{"path": "creditorAccount.iban", "label": "Account", "kind": "iban"},
			{"path": "remittanceInformationUnstructured", "label": "Reference", "kind": "text"}],
		"required": ["instructedAmount.amount", "instructedAmount.currency", "creditorName"],
		"actions": ["initiate", "status", "cancel"],
		"rules": [
			{"min_acr": "urn:keystep:acr:mfa", "max_age": "15m"},
			{"if": {"path": "instructedAmount.amount", "above": "1000", "currency": "EUR"}, "min_acr": "phr", "max_age": "5m"}]
	}]}`
	var c Config
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := ExampleConfig(mfa, phr)
	want.Types = want.Types[:1]
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("decoded config (-want +got):\n%s", diff)
	}
	// And back: export writes what apply reads.
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var again Config
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if !bytes.Contains(b, []byte(`"max_age":"5m"`)) || !bytes.Contains(b, []byte(`"max_age":"15m"`)) {
		t.Errorf("max_age is not written as a duration: %s", b)
	}
}

func TestRuleJSONRefuses(t *testing.T) {
	for _, raw := range []string{
		`{"min_acr": "phr", "max_age": "five minutes"}`,
		`{"min_acr": "phr", "max_age": 300}`,
		`{"min_acr": "phr", "maxage": "5m"}`, // a typo is not ignored
	} {
		var r Rule
		if err := json.Unmarshal([]byte(raw), &r); err == nil {
			t.Errorf("Unmarshal(%s) = %+v; want an error", raw, r)
		}
	}
}

// TestValidateListsEveryProblem: one bad config, every problem reported.
func TestValidateListsEveryProblem(t *testing.T) {
	c := Config{Types: []Type{
		{
			Name:  "payment_initiation",
			Title: "Pay",
			Fields: []Field{
				{Path: "amount", Label: "Amount", Kind: "money"},
				{Path: "amount", Label: "Amount again", Kind: KindText},
				{Path: "a..b", Label: "Empty segment", Kind: KindText},
				{Path: "to", Label: " ", Kind: KindText},
				{Path: "to.name", Label: "Name", Kind: KindText},
				{Path: "sum", Label: "Sum", Kind: KindAmount, Currency: "nowhere"},
				{Path: "note", Label: "Note", Kind: KindText, Currency: "sum"},
			},
			Required: []string{"amount", "missing"},
			Actions:  []string{"pay", "pay", ""},
			Rules: []Rule{
				{},
				{MinACR: "urn:example:gold", MaxAge: -time.Minute},
				{If: &Condition{Path: "note", Above: "1e3", Currency: "eur"}, MinACR: phr},
				{If: &Condition{Path: "sum", Above: "-5"}, MinACR: phr},
			},
		},
		{Name: "payment_initiation", Title: "Again"},
		{Name: "", Title: "No name"},
		{Name: "has space", Title: ""},
	}}
	err := c.Validate(known)
	if err == nil {
		t.Fatal("Validate accepted a broken policy")
	}
	want := []string{
		`field "amount" has unknown kind "money"`,
		`field "amount" is listed twice`,
		`field path "a..b" is empty or has an empty segment`,
		`field "to" has no label`,
		`field "to.name" is inside field "to"`,
		`field "sum": currency "nowhere" is not a currency field`,
		`field "note" has a currency but is not an amount`,
		`field "note": currency "sum" is not a currency field`,
		`required "missing" is not one of its fields`,
		`action "pay" is empty or listed twice`,
		`action "" is empty or listed twice`,
		`rule 1: sets neither min_acr nor max_age`,
		`rule 2: min_acr "urn:example:gold" is not a configured level`,
		`rule 2: max_age -1m0s is negative`,
		`rule 3: if.path "note" is not an amount field`,
		`rule 3: if.path "note" must be required`,
		`rule 3: if.above "1e3" is not a decimal`,
		`rule 3: if.currency "eur" is not three upper-case letters`,
		`rule 4: if.path "sum" must be required`,
		`rule 4: if.above "-5" is not a decimal`,
		`rule 4: if.currency is needed: "sum" has a currency`,
		`type 2 ("payment_initiation"): name is used twice`,
		`type 3: name is empty`,
		`type 4 ("has space"): name has spaces or control characters`,
		`type 4 ("has space"): title is empty`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate does not report %q", w)
		}
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) && len(joined.Unwrap()) != len(want) {
		t.Errorf("Validate reports %d problems, the test expects %d:\n%v", len(joined.Unwrap()), len(want), err)
	}
	if _, err := New(c, known); err == nil {
		t.Errorf("New accepted what Validate refuses")
	}
}

func TestValidateCurrencyOfConditions(t *testing.T) {
	base := func() Type {
		return Type{
			Name: "p", Title: "Pay",
			Fields: []Field{
				{Path: "amount", Label: "Amount", Kind: KindAmount, Currency: "currency"},
				{Path: "currency", Label: "Currency", Kind: KindCurrency},
				{Path: "plain", Label: "Plain", Kind: KindAmount},
			},
			Required: []string{"amount", "currency", "plain"},
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Type)
		want string // "" for valid
	}{
		{"threshold with the amount's currency", func(t *Type) {
			t.Rules = []Rule{{If: &Condition{Path: "amount", Above: "1000.00", Currency: "EUR"}, MinACR: phr}}
		}, ""},
		{"an amount with a currency needs the threshold's", func(t *Type) {
			t.Rules = []Rule{{If: &Condition{Path: "amount", Above: "1000"}, MinACR: phr}}
		}, `if.currency is needed: "amount" has a currency`},
		{"an amount without a currency takes none", func(t *Type) {
			t.Rules = []Rule{{If: &Condition{Path: "plain", Above: "1000", Currency: "EUR"}, MinACR: phr}}
		}, `if.currency is set but "plain" has no currency field`},
		{"the currency must be required", func(t *Type) {
			t.Required = []string{"amount", "plain"}
			t.Rules = []Rule{{If: &Condition{Path: "amount", Above: "1000", Currency: "EUR"}, MinACR: phr}}
		}, `the currency "currency" must be required`},
		{"max_age alone is a rule", func(t *Type) {
			t.Rules = []Rule{{MaxAge: time.Minute}}
		}, ""},
		{"a nil known knows no acr", func(t *Type) {
			t.Rules = []Rule{{MinACR: phr}}
		}, "nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ty := base()
			tc.edit(&ty)
			k := known
			if tc.want == "nil" {
				k, tc.want = nil, "is not a configured level"
			}
			err := Config{Types: []Type{ty}}.Validate(k)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v; want %q", err, tc.want)
			}
		})
	}
}

func TestRegistryKeepsItsOwnCopy(t *testing.T) {
	c := ExampleConfig(mfa, phr)
	r, err := New(c, known)
	if err != nil {
		t.Fatal(err)
	}
	c.Types[0].Rules[1].If.Above = "1000000"
	c.Types[0].Required[0] = "creditorName"
	ty, _ := r.Type(PaymentInitiation)
	ty.Rules[1].If.Above = "5"
	d := mustParse(t, payment)
	if got := r.Demands(d); len(got) != 2 {
		t.Errorf("changing the config after New changed the registry: %v", got)
	}
}

func TestCheck(t *testing.T) {
	r := ExamplePayments(mfa, phr)
	both := []string{PaymentInitiation, AccountChange}
	change := `[{"type":"account_change","actions":["update"],"account":{"iban":"DE89370400440532013000","holder":"Acme Payroll GmbH"},"effective":"2026-12-07","ticket":"CHG-1"}]`
	for _, tc := range []struct {
		name    string
		raw     string
		allowed []string
		want    string // "" for accepted
	}{
		{"the example payment", payment, both, ""},
		{"the amount as a number", strings.Replace(payment, `"1250.00"`, `1250.00`, 1), both, ""},
		{"a yen amount", strings.NewReplacer(`"1250.00"`, `"125000"`, `"EUR"`, `"JPY"`).Replace(payment), both, ""},
		{"an account change with a field of its own", change, both, ""},
		{"an account change with a timestamp", strings.Replace(change, `"2026-12-07"`, `"2026-12-07T09:00:00Z"`, 1), both, ""},
		{"two objects, both fine", "[" + payment[1:len(payment)-1] + "," + change[1:], both, ""},
		{"an unknown type", `[{"type":"wire_transfer"}]`, both, `authorization_details[0]: unknown type "wire_transfer"`},
		{"a long unknown type is clipped", `[{"type":"` + strings.Repeat("w", 150) + `"}]`, both, `unknown type "` + strings.Repeat("w", 100) + `"…`},
		{"a type the client is not registered for", payment, []string{AccountChange}, `the client is not registered for type "payment_initiation"`},
		{"a client registered for nothing", payment, nil, `not registered for type "payment_initiation"`},
		{"the second object is wrong", "[" + payment[1:len(payment)-1] + `,{"type":"nope"}]`, both, `authorization_details[1]: unknown type "nope"`},
		{"no amount", strings.Replace(payment, `"amount":"1250.00",`, ``, 1), both, `(payment_initiation): instructedAmount.amount is required`},
		{"a null amount", strings.Replace(payment, `"1250.00"`, `null`, 1), both, `instructedAmount.amount is required`},
		{"no creditor", strings.Replace(payment, `"creditorName":"Example Supplies Ltd",`, ``, 1), both, `creditorName is required`},
		{"the amount not an object's field", strings.Replace(payment, `{"amount":"1250.00","currency":"EUR"}`, `"EUR 1250"`, 1), both, `instructedAmount.amount is required`},
		{"an amount with a comma", strings.Replace(payment, `"1250.00"`, `"1,250.00"`, 1), both, `instructedAmount.amount must be a decimal amount`},
		{"a negative amount", strings.Replace(payment, `"1250.00"`, `"-1250.00"`, 1), both, `must be a decimal amount`},
		{"a negative number amount", strings.Replace(payment, `"1250.00"`, `-1250`, 1), both, `must be a decimal amount`},
		{"an amount with an exponent", strings.Replace(payment, `"1250.00"`, `1.25e3`, 1), both, `must be a decimal amount`},
		{"an amount string with an exponent", strings.Replace(payment, `"1250.00"`, `"1.25e3"`, 1), both, `must be a decimal amount`},
		{"NaN as an amount", strings.Replace(payment, `"1250.00"`, `"NaN"`, 1), both, `must be a decimal amount`},
		{"an amount with leading zeros", strings.Replace(payment, `"1250.00"`, `"01250"`, 1), both, `must be a decimal amount`},
		{"an amount with a bare point", strings.Replace(payment, `"1250.00"`, `"1250."`, 1), both, `must be a decimal amount`},
		{"a boolean amount", strings.Replace(payment, `"1250.00"`, `true`, 1), both, `must be a decimal amount`},
		{"a lower-case currency", strings.Replace(payment, `"EUR"`, `"eur"`, 1), both, `instructedAmount.currency must be an ISO 4217 currency code`},
		{"a currency symbol", strings.Replace(payment, `"EUR"`, `"€"`, 1), both, `must be an ISO 4217 currency code`},
		{"a four-letter currency", strings.Replace(payment, `"EUR"`, `"EURO"`, 1), both, `must be an ISO 4217 currency code`},
		{"an IBAN with a wrong check sum", strings.Replace(payment, `GB82WEST`, `GB83WEST`, 1), both, `creditorAccount.iban must be an IBAN`},
		{"an IBAN with spaces", strings.Replace(payment, `GB82WEST12345698765432`, `GB82 WEST 1234 5698 7654 32`, 1), both, `must be an IBAN`},
		{"an IBAN in lower case", strings.Replace(payment, `GB82WEST`, `gb82west`, 1), both, `must be an IBAN`},
		{"an object as creditor name", strings.Replace(payment, `"Example Supplies Ltd"`, `{"name":"x"}`, 1), both, `creditorName must be a string, number or boolean`},
		{"an action the type does not list", strings.Replace(payment, `["initiate"]`, `["initiate","refund"]`, 1), both, `action "refund" is not allowed (allowed: initiate, status, cancel)`},
		{"a field the type does not define", strings.Replace(payment, `"creditorName"`, `"debtorAccount":{"iban":"DE89370400440532013000"},"creditorName"`, 1), both, `unknown field "debtorAccount.iban"`},
		{"a field inside an amount the type does not define", strings.Replace(payment, `"currency":"EUR"`, `"currency":"EUR","fx":"1.1"`, 1), both, `unknown field "instructedAmount.fx"`},
		{"the common fields are always allowed", strings.Replace(payment, `"creditorName"`, `"locations":["https://pay.example"],"identifier":"inv-117","creditorName"`, 1), both, ""},
		{"a date that is no date", strings.Replace(change, `"2026-12-07"`, `"7 Dec 2026"`, 1), both, `effective must be a date`},
		{"an impossible date", strings.Replace(change, `"2026-12-07"`, `"2026-02-30"`, 1), both, `effective must be a date`},
		{"an account change without holder", strings.Replace(change, `,"holder":"Acme Payroll GmbH"`, ``, 1), both, `(account_change): account.holder is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, tc.raw)
			err := r.Check(d, tc.allowed)
			if tc.want == "" {
				if err != nil {
					t.Errorf("Check: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check = %v; want an *Error", err)
			}
			if !strings.Contains(e.Description, tc.want) {
				t.Errorf("Description = %q; want it to contain %q", e.Description, tc.want)
			}
		})
	}
}

func TestCheckWithoutRegistry(t *testing.T) {
	var r *Registry
	if err := r.Check(mustParse(t, payment), []string{PaymentInitiation}); err == nil {
		t.Errorf("a nil registry accepted a type")
	}
	if r.Types() != nil || r.Demands(mustParse(t, payment)) != nil {
		t.Errorf("a nil registry has types or demands")
	}
	if err := ExamplePayments(mfa, phr).Check(nil, []string{PaymentInitiation}); err == nil {
		t.Errorf("Check accepted no details")
	}
}

func TestValidIBAN(t *testing.T) {
	for s, want := range map[string]bool{
		"GB82WEST12345698765432":          true,
		"DE89370400440532013000":          true,
		"NO9386011117947":                 true, // the shortest
		"MT84MALT011000012345MTLCAST001S": true,
		"GB82WEST12345698765433":          false,
		"GB82WEST1234569876543":           false,
		"NO938601111794":                  false, // too short
		"1282WEST12345698765432":          false,
		"":                                false,
	} {
		if got := validIBAN(s); got != want {
			t.Errorf("validIBAN(%q) = %v", s, got)
		}
	}
}

// TestCheckRefusesWhatCannotBeShown: two transactions that differ only in
// what the approval page cannot show (invisible characters, a tail cut
// off) must not both pass, or the person approves one while seeing the
// other.
func TestCheckRefusesWhatCannotBeShown(t *testing.T) {
	reg := ExamplePayments("mfa", "phr")
	for name, creditor := range map[string]string{
		"zero-width space":  "Example\u200bSupplies Ltd",
		"soft hyphen":       "Example Sup\u00adplies Ltd",
		"word joiner":       "Example\u2060Supplies Ltd",
		"tag character":     "Example Supplies Ltd\U000E0041",
		"bidi override":     "Example \u202eSupplies Ltd",
		"private use":       "Example \ue000Supplies Ltd",
		"longer than shown": strings.Repeat("Example Supplies Ltd ", 10) + "c/o Mallory",
	} {
		b, _ := json.Marshal(creditor)
		d, err := Parse(`[{"type":"payment_initiation","instructedAmount":{"amount":"10.00","currency":"EUR"},"creditorName":` + string(b) + `}]`)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := reg.Check(d, []string{PaymentInitiation}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	d, _ := Parse(`[{"type":"payment_initiation","instructedAmount":{"amount":"10.00","currency":"EUR"},"creditorName":"Café Müller & Söhne"}]`)
	if err := reg.Check(d, []string{PaymentInitiation}); err != nil {
		t.Errorf("an ordinary name with accents refused: %v", err)
	}
}
