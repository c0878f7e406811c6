package conformance

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
)

// The console registers a client's authorization details types: only
// types the server's policy has, every problem listed, nothing saved on a
// refusal; the page says which types the server has.
func TestAdminClientFormSetsAuthorizationDetailsTypes(t *testing.T) {
	e, secret := adminEnv(t, func(c *idp.Config) { c.Details = details.ExamplePayments(acrMFA, acrPHR) })
	b := e.browser()
	b.adminLogin(secret)
	p := b.get(e.issuer + "/admin/clients/" + rpClient)
	if !strings.Contains(p.body, `name="authorization_details_types"`) || !strings.Contains(p.body, "This server has: <code>account_change</code>, <code>payment_initiation</code>.") {
		t.Fatalf("the client's page:\n%.8000s", p.body)
	}

	f := newClientForm(rpClient)
	f.Set("authorization_details_types", "payment_initiation, refund, Bad Name")
	p = b.post("/admin/clients/"+rpClient, f)
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, `authorization details type &#34;refund&#34; is not in the server&#39;s policy`) ||
		!strings.Contains(p.body, `authorization details type &#34;Bad&#34;: use at most 64 characters`) {
		t.Fatalf("unknown and malformed types: %d\n%.6000s", p.status, p.body)
	}
	if c, _ := e.store.ClientByID(context.Background(), rpClient); len(c.AuthorizationDetailsTypes) != 0 {
		t.Fatalf("a refused form saved %v", c.AuthorizationDetailsTypes)
	}

	f.Set("authorization_details_types", "payment_initiation, account_change")
	if p := b.post("/admin/clients/"+rpClient, f); !strings.Contains(p.body, "Your changes were saved") {
		t.Fatalf("save:\n%.3000s", p.body)
	}
	c, _ := e.store.ClientByID(context.Background(), rpClient)
	if !slices.Equal(c.AuthorizationDetailsTypes, []string{details.PaymentInitiation, details.AccountChange}) {
		t.Fatalf("stored %v", c.AuthorizationDetailsTypes)
	}
	if ev := e.lastEvent("admin.client_updated"); !strings.Contains(ev.Details["after"], `"authorization_details_types":["payment_initiation","account_change"]`) {
		t.Errorf("audit after %s", ev.Details["after"])
	}
	if p := b.get(e.issuer + "/admin/clients/" + rpClient); !strings.Contains(p.body, `value="payment_initiation, account_change"`) {
		t.Errorf("the saved types are not shown:\n%.8000s", p.body)
	}
	if p := b.get(e.issuer + "/admin/clients"); !strings.Contains(p.body, `<span class="badge" title="Transaction types: payment_initiation, account_change">transactions</span>`) {
		t.Errorf("the clients list does not mark the client:\n%.6000s", p.body)
	}
}

// A server without a policy registers no types, and the console says so.
func TestAdminClientFormRefusesTypesWithoutAPolicy(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	if p := b.get(e.issuer + "/admin/clients/" + rpClient); !strings.Contains(p.body, "This server has none yet") {
		t.Errorf("hint:\n%.8000s", p.body)
	}
	f := newClientForm(rpClient)
	f.Set("authorization_details_types", "payment_initiation")
	if p := b.post("/admin/clients/"+rpClient, f); p.status != http.StatusBadRequest || !strings.Contains(p.body, "none are registered") {
		t.Fatalf("%d\n%.6000s", p.status, p.body)
	}
}
