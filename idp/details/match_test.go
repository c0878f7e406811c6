package details

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestNarrows(t *testing.T) {
	small := withAmount(`"10.00"`, "EUR")
	two := "[" + payment[1:len(payment)-1] + "," + small[1:]
	reordered := `[{"remittanceInformationUnstructured":"Invoice 2026-117","creditorAccount":{"iban":"GB82WEST12345698765432"},"creditorName":"Example Supplies Ltd","instructedAmount":{"currency":"EUR","amount":1250.00e0},"actions":["initiate"],"type":"payment_initiation"}]`
	for _, tc := range []struct {
		name                string
		approved, requested string
		want                bool
	}{
		{"the same details", payment, payment, true},
		{"the same details in another key order", payment, strings.Replace(reordered, `1250.00e0`, `"1250.00"`, 1), true},
		{"one of two approved objects", two, small, true},
		{"both approved objects in another order", two, "[" + small[1:len(small)-1] + "," + payment[1:], true},
		{"a changed amount", payment, withAmount(`"12500.00"`, "EUR"), false},
		{"the amount as a number instead of a string", payment, withAmount(`1250.00`, "EUR"), false},
		{"a field removed from an approved object", payment, strings.Replace(payment, `,"remittanceInformationUnstructured":"Invoice 2026-117"`, ``, 1), false},
		{"a field added to an approved object", payment, strings.Replace(payment, `"creditorName"`, `"x":1,"creditorName"`, 1), false},
		{"a new object beside the approved one", payment, two, false},
		{"a different type", payment, strings.Replace(payment, `payment_initiation`, `account_change`, 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Narrows(mustParse(t, tc.approved), mustParse(t, tc.requested)); got != tc.want {
				t.Errorf("Narrows = %v; want %v", got, tc.want)
			}
		})
	}
	if !Narrows(mustParse(t, payment), nil) {
		t.Errorf("asking for nothing does not narrow")
	}
	if Narrows(nil, mustParse(t, payment)) {
		t.Errorf("nothing approved narrows to something")
	}
}

// coversCase is one row of testdata/covers.json, which idp/resource's
// mirror of Covers reads too.
type coversCase struct {
	Name     string           `json:"name"`
	Approved []map[string]any `json:"approved"`
	Want     map[string]any   `json:"want"`
	Covers   bool             `json:"covers"`
}

func TestCovers(t *testing.T) {
	f, err := os.Open("testdata/covers.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var file struct {
		About string       `json:"about"`
		Cases []coversCase `json:"cases"`
	}
	dec := json.NewDecoder(f)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 20 {
		t.Fatalf("only %d cases in testdata/covers.json", len(file.Cases))
	}
	for _, tc := range file.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			approved := make(Details, len(tc.Approved))
			for i, o := range tc.Approved {
				approved[i] = o
			}
			if got := Covers(approved, tc.Want); got != tc.Covers {
				t.Errorf("Covers = %v; want %v", got, tc.Covers)
			}
		})
	}
}

// TestCoversGoValues: a resource server writes want in Go, with ints and
// floats, and a token decoded without UseNumber has float64s.
func TestCoversGoValues(t *testing.T) {
	approved := mustParse(t, withAmount(`1250.5`, "EUR"))
	for _, tc := range []struct {
		name string
		want map[string]any
		ok   bool
	}{
		{"float64", map[string]any{"type": PaymentInitiation, "instructedAmount": map[string]any{"amount": 1250.5}}, true},
		{"int is not 1250.5", map[string]any{"type": PaymentInitiation, "instructedAmount": map[string]any{"amount": 1250}}, false},
		{"an Object inside", map[string]any{"type": PaymentInitiation, "instructedAmount": Object{"currency": "EUR"}}, true},
		{"a type that is not a string", map[string]any{"type": 1}, false},
		{"a Go type JSON does not have", map[string]any{"type": PaymentInitiation, "creditorName": []string{"Example Supplies Ltd"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Covers(approved, tc.want); got != tc.ok {
				t.Errorf("Covers = %v; want %v", got, tc.ok)
			}
		})
	}
	asFloat := Details{{"type": PaymentInitiation, "n": float64(7)}}
	if !Covers(asFloat, map[string]any{"type": PaymentInitiation, "n": 7}) {
		t.Errorf("a float64 7 in the token does not cover 7")
	}
}
