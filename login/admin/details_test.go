package admin

import (
	"strings"
	"testing"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/policy"
)

func TestAuthorizationDetailsTypes(t *testing.T) {
	base := ClientSpec{ID: "rp", RedirectURIs: []string{"https://rp.example/cb"}}
	long := strings.Repeat("a", MaxDetailsTypeLen)
	var many []string
	for i := range MaxDetailsTypes + 1 {
		many = append(many, "t"+strings.Repeat("x", i))
	}
	for _, tc := range []struct {
		name  string
		types []string
		want  string // "" for valid
	}{
		{"the example types", []string{"payment_initiation", "account_change"}, ""},
		{"URNs and dots", []string{"urn:example:payment.v2-beta"}, ""},
		{"64 characters", []string{long}, ""},
		{"32 types", many[:MaxDetailsTypes], ""},
		{"blank entries are dropped, spaces trimmed", []string{" payment_initiation ", "", "  "}, ""},
		{"65 characters", []string{long + "a"}, "use at most 64 characters"},
		{"upper case", []string{"Payment"}, `"Payment": use at most 64 characters of a-z`},
		{"a space inside", []string{"pay ment"}, `"pay ment"`},
		{"a slash", []string{"pay/ment"}, `"pay/ment"`},
		{"non-ASCII", []string{"paiement_é"}, `"paiement_é"`},
		{"twice", []string{"a", "b", "a"}, `"a" is listed twice`},
		{"33 types", many, "at most 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			s.AuthorizationDetailsTypes = tc.types
			ps := ValidateClient(s, stepup.DefaultPolicy(), "")
			if tc.want == "" {
				if len(ps) > 0 {
					t.Errorf("problems %v", ps)
				}
				return
			}
			if len(ps) != 1 || ps[0].Field != "authorization_details_types" || !strings.Contains(ps[0].Message, tc.want) {
				t.Errorf("problems %v; want one on authorization_details_types with %q", ps, tc.want)
			}
		})
	}
	if got := base.Client(); got.AuthorizationDetailsTypes != nil {
		t.Errorf("no types stored as %v", got.AuthorizationDetailsTypes)
	}
	s := base
	s.AuthorizationDetailsTypes = []string{" payment_initiation"}
	if got := SpecOf(s.Client()).AuthorizationDetailsTypes; len(got) != 1 || got[0] != "payment_initiation" {
		t.Errorf("round trip %v", got)
	}
}

// The one check against the policy: nil is a policy not known here; an
// empty one registers nothing.
func TestRegisteredDetailsTypes(t *testing.T) {
	s := ClientSpec{ID: "rp", AuthorizationDetailsTypes: []string{details.PaymentInitiation, "refund"}}
	if ps := RegisteredDetailsTypes(s, nil); ps != nil {
		t.Errorf("nil registry: %v", ps)
	}
	ps := RegisteredDetailsTypes(s, details.ExamplePayments(stepup.ACRMultiFactor, stepup.ACRPhishing))
	if len(ps) != 1 || !strings.Contains(ps[0].Message, `"refund" is not in the server's policy (authorization_details_types; registered: account_change, payment_initiation)`) {
		t.Errorf("example registry: %v", ps)
	}
	empty, err := details.New(details.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ps := RegisteredDetailsTypes(s, empty); len(ps) != 2 || !strings.Contains(ps[0].Message, "none are registered") {
		t.Errorf("empty registry: %v", ps)
	}
	pol, err := policy.Complete(policy.Snapshot{Levels: stepup.DefaultPolicy(), Details: empty})
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Policies: policy.Static(pol)}
	s.RedirectURIs = []string{"https://rp.example/cb"}
	if ps := svc.ValidateClient(s); len(ps) != 2 {
		t.Errorf("Service.ValidateClient: %v", ps)
	}
}
