package details_test

import (
	"errors"
	"fmt"

	"github.com/keystep/keystep/idp/details"
)

// The flow of one request: parse, check, what it demands, what the person
// sees, the challenge a passkey signs.
func Example() {
	const mfa, phr = "urn:keystep:acr:mfa", "phr"
	reg := details.ExamplePayments(mfa, phr)

	d, err := details.Parse(`[{"type":"payment_initiation",
		"instructedAmount":{"amount":"1250.00","currency":"EUR"},
		"creditorName":"Example Supplies Ltd",
		"creditorAccount":{"iban":"GB82WEST12345698765432"}}]`)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := reg.Check(d, []string{details.PaymentInitiation}); err != nil {
		var e *details.Error
		errors.As(err, &e)
		fmt.Println(details.ErrorCode, e.Description)
		return
	}
	rank := map[string]int{mfa: 1, phr: 2}
	acr, maxAge, ok := details.Strictest(reg.Demands(d), func(a string) int {
		if r, ok := rank[a]; ok {
			return r
		}
		return -1
	})
	fmt.Println(acr, maxAge, ok)
	for _, item := range reg.Display(d) {
		fmt.Println(item.Title)
		for _, l := range item.Lines {
			fmt.Printf("  %s: %s\n", l.Label, l.Value)
		}
	}
	nonce := make([]byte, details.MinNonce) // crypto/rand in real use
	fmt.Println(details.VerifyChallenge(d, nonce, details.Challenge(d, nonce)))

	_, err = details.Parse(`[{"type":"payment_initiation","amount":"1","amount":"1000000"}]`)
	fmt.Println(err)
	// Output:
	// phr 5m0s true
	// Pay an invoice
	//   Amount: EUR 1,250.00
	//   To: Example Supplies Ltd
	//   Account: GB82 WEST 1234 5698 7654 32
	// true
	// invalid_authorization_details: authorization_details repeats the key "amount" in one object
}
