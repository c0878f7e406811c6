package details

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func withAmount(amount, currency string) string {
	return strings.NewReplacer(`"1250.00"`, amount, `"EUR"`, `"`+currency+`"`).Replace(payment)
}

func TestDemands(t *testing.T) {
	r := ExamplePayments(mfa, phr)
	every := Demand{Type: PaymentInitiation, MinACR: mfa, MaxAge: 15 * time.Minute, Reason: "Pay an invoice"}
	above := Demand{Type: PaymentInitiation, MinACR: phr, MaxAge: 5 * time.Minute, Reason: "Pay an invoice above EUR 1,000.00"}
	change := Demand{Type: AccountChange, MinACR: phr, MaxAge: 5 * time.Minute, Reason: "Change the payout account"}
	for _, tc := range []struct {
		name, raw string
		want      []Demand
	}{
		{"EUR 1,250 needs phr within 5 minutes", payment, []Demand{every, above}},
		{"EUR 999.99 needs only mfa", withAmount(`"999.99"`, "EUR"), []Demand{every}},
		{"EUR 1,000.00 is not above EUR 1,000", withAmount(`"1000.00"`, "EUR"), []Demand{every}},
		{"EUR 1000 as a number is not above either", withAmount(`1000`, "EUR"), []Demand{every}},
		{"EUR 1,000.01 is above", withAmount(`"1000.01"`, "EUR"), []Demand{every, above}},
		{"EUR 1000.000000001 is above: decimals are exact", withAmount(`"1000.000000001"`, "EUR"), []Demand{every, above}},
		{"a number amount above", withAmount(`1000.5`, "EUR"), []Demand{every, above}},
		{"a huge amount is above", withAmount(`"99999999999999999999999999.99"`, "EUR"), []Demand{every, above}},
		{"another currency fails closed, even when small", withAmount(`"5"`, "GBP"), []Demand{every, {
			Type: PaymentInitiation, MinACR: phr, MaxAge: 5 * time.Minute,
			Reason: "Pay an invoice in a currency other than EUR (the EUR 1,000.00 threshold cannot be compared)",
		}}},
		{"an unparseable amount fails closed", withAmount(`"lots"`, "EUR"), []Demand{every, above}},
		{"an absent amount fails closed", strings.Replace(payment, `"amount":"1250.00",`, ``, 1), []Demand{every, above}},
		{"two payments, one above: each demand once",
			"[" + payment[1:len(payment)-1] + "," + withAmount(`"10"`, "EUR")[1:] + "",
			[]Demand{every, above}},
		{"an account change", `[{"type":"account_change","account":{"iban":"DE89370400440532013000","holder":"A"}}]`, []Demand{change}},
		{"an unregistered type demands nothing (Check refuses it)", `[{"type":"nope"}]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Demands(mustParse(t, tc.raw))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Demands (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDemandReasonFromConfig(t *testing.T) {
	c := ExampleConfig(mfa, phr)
	c.Types[0].Rules[1].Reason = "Payments above EUR 1,000 need a passkey"
	r, err := New(c, known)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Demands(mustParse(t, payment))
	if len(got) != 2 || got[1].Reason != "Payments above EUR 1,000 need a passkey" {
		t.Errorf("Demands = %+v", got)
	}
}

func TestStrictest(t *testing.T) {
	rank := func(acr string) int {
		switch acr {
		case "urn:keystep:acr:sfa":
			return 0
		case mfa:
			return 1
		case phr:
			return 2
		case "phrh":
			return 3
		}
		return -1
	}
	for _, tc := range []struct {
		name    string
		demands []Demand
		acr     string
		maxAge  time.Duration
		ok      bool
	}{
		{"no demands", nil, "", 0, true},
		{"one", []Demand{{MinACR: mfa, MaxAge: 15 * time.Minute}}, mfa, 15 * time.Minute, true},
		{"the highest acr and the shortest max_age, from different demands",
			[]Demand{{MinACR: phr, MaxAge: 15 * time.Minute}, {MinACR: mfa, MaxAge: 5 * time.Minute}}, phr, 5 * time.Minute, true},
		{"order does not matter",
			[]Demand{{MinACR: mfa, MaxAge: 5 * time.Minute}, {MinACR: phr, MaxAge: 15 * time.Minute}}, phr, 5 * time.Minute, true},
		{"a zero max_age sets no limit", []Demand{{MinACR: mfa}, {MaxAge: 10 * time.Minute}}, mfa, 10 * time.Minute, true},
		{"max_age only", []Demand{{MaxAge: time.Minute}}, "", time.Minute, true},
		{"an unknown acr cannot be enforced", []Demand{{MinACR: phr}, {MinACR: "urn:example:gold"}}, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acr, maxAge, ok := Strictest(tc.demands, rank)
			if acr != tc.acr || maxAge != tc.maxAge || ok != tc.ok {
				t.Errorf("Strictest = %q, %v, %v; want %q, %v, %v", acr, maxAge, ok, tc.acr, tc.maxAge, tc.ok)
			}
		})
	}
}
