package details

import (
	"fmt"
	"time"
)

// Example type names.
const (
	// PaymentInitiation is RFC 9396's own example type (§2, after the
	// Berlin Group and UK Open Banking payment APIs).
	PaymentInitiation = "payment_initiation"
	// AccountChange is changing the bank account payouts go to.
	AccountChange = "account_change"
)

// ExampleConfig is the policy of the demo and the tests, with the acr names
// passed in (this package does not import idp/stepup): mfa is the
// multi-factor level, phr the phishing-resistant one.
//
//   - payment_initiation: pay an amount to a creditor. Amount, currency
//     and creditor name are required. Every payment needs mfa used within
//     15 minutes; above EUR 1,000 it needs phr used within 5 minutes (and
//     so does any amount in another currency: there are no exchange rates
//     here).
//   - account_change: change the account payouts go to. It needs phr used
//     within 5 minutes, allows only the update action, and lets the client
//     add fields of its own, shown as "and N more details".
func ExampleConfig(mfa, phr string) Config {
	return Config{Types: []Type{
		{
			Name:  PaymentInitiation,
			Title: "Pay an invoice",
			Fields: []Field{
				{Path: "instructedAmount.amount", Label: "Amount", Kind: KindAmount, Currency: "instructedAmount.currency"},
				{Path: "instructedAmount.currency", Label: "Currency", Kind: KindCurrency},
				{Path: "creditorName", Label: "To", Kind: KindText},
				{Path: "creditorAccount.iban", Label: "Account", Kind: KindIBAN},
				{Path: "remittanceInformationUnstructured", Label: "Reference", Kind: KindText},
			},
			Required: []string{"instructedAmount.amount", "instructedAmount.currency", "creditorName"},
			Rules: []Rule{
				{MinACR: mfa, MaxAge: 15 * time.Minute},
				{If: &Condition{Path: "instructedAmount.amount", Above: "1000", Currency: "EUR"}, MinACR: phr, MaxAge: 5 * time.Minute},
			},
			Actions: []string{"initiate", "status", "cancel"},
		},
		{
			Name:  AccountChange,
			Title: "Change the payout account",
			Fields: []Field{
				{Path: "account.iban", Label: "New account", Kind: KindIBAN},
				{Path: "account.holder", Label: "Account holder", Kind: KindText},
				{Path: "effective", Label: "From", Kind: KindDate},
			},
			Required:         []string{"account.iban", "account.holder"},
			Rules:            []Rule{{MinACR: phr, MaxAge: 5 * time.Minute}},
			Actions:          []string{"update"},
			AllowOtherFields: true,
		},
	}}
}

// ExamplePayments is the registry of [ExampleConfig].
func ExamplePayments(mfa, phr string) *Registry {
	r, err := New(ExampleConfig(mfa, phr), func(acr string) bool { return acr == mfa || acr == phr })
	if err != nil {
		panic(fmt.Sprintf("details: the example policy is invalid: %v", err)) // a bug here, pinned by TestExampleIsValid
	}
	return r
}
