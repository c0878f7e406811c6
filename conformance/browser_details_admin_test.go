package conformance

import (
	"context"
	"slices"
	"testing"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
)

// The client form's transaction types (issue 19) as an admin sees them,
// looked at and saved as screenshots at every size: the field with the
// server's types in its hint, a refused type next to the field, and the
// saved client marked in the list.
func TestBrowserAdminClientTransactionTypes(t *testing.T) {
	c := newTab(t)
	e := newEnv(t, onLocalhost, adminAt(acrMFA), func(cfg *idp.Config) { cfg.Details = details.ExamplePayments(acrMFA, acrPHR) })
	e.addAdmin()
	secret := e.enrollTOTP(adaID)

	c.Open(e.issuer + "/admin")
	c.TypeIn("#username", ada)
	c.TypeIn("#password", adaPass)
	c.Follow(chrome.SignInButton)
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	c.See("Admin console")

	c.Open(e.issuer + "/admin/clients/" + rpClient)
	c.See("Transaction types")
	c.See("This server has: account_change, payment_initiation.")
	c.fill("#authorization_details_types", "payment_initiation, refund")
	c.Follow("form.client-form button[type=submit]")
	c.See(`authorization details type "refund" is not in the server's policy`)
	c.lookAdmin("admin-client-transaction-types-invalid")
	if got, _ := e.store.ClientByID(context.Background(), rpClient); len(got.AuthorizationDetailsTypes) != 0 {
		t.Errorf("a refused form saved %v", got.AuthorizationDetailsTypes)
	}

	c.fill("#authorization_details_types", "payment_initiation")
	c.Follow("form.client-form button[type=submit]")
	c.See("Your changes were saved")
	if got, _ := e.store.ClientByID(context.Background(), rpClient); !slices.Equal(got.AuthorizationDetailsTypes, []string{details.PaymentInitiation}) {
		t.Errorf("saved %v", got.AuthorizationDetailsTypes)
	}
	c.lookAdmin("admin-client-transaction-types")
	c.Open(e.issuer + "/admin/clients")
	c.See("transactions")
	c.lookAdmin("admin-clients-transactions")
}
