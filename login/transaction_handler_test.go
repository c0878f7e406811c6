package login_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/storage"
)

// withPayments gives the pages the example policy's types (idp/details).
func withPayments() option {
	return func(c *fixtureConfig) { c.Details = details.ExamplePayments(acrMFA, acrPHR) }
}

// pay is a request for a payment: what the app asks the person to approve.
func pay(amount, creditor string) func(*authRequest) {
	return func(ar *authRequest) {
		ar.AuthorizationDetails = `[{"type":"payment_initiation","instructedAmount":{"amount":"` + amount +
			`","currency":"EUR"},"creditorName":` + jsonString(creditor) + `,"creditorAccount":{"iban":"DE89370400440532013000"}}]`
	}
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// approving reports whether a page shows the payment under "You're
// approving", the creditor as text.
func approving(body, creditor string) bool {
	return says(body, "You're approving") && says(body, "Pay an invoice") && says(body, "EUR 1,250.00") &&
		says(body, "DE89 3704 0044 0532 0130 00") && says(body, creditor)
}

// TestTransactionPages pins that every page asking for a factor, and the
// approval page, shows what is approved, as escaped text: an app cannot
// put markup on Keystep's page through a creditor name.
func TestTransactionPages(t *testing.T) {
	const creditor = `<script>alert("pwned")</script> Example Supplies Ltd`
	f := newFixture(t, withPayments())
	secret := f.enrollTOTP(aliceID)
	codes := f.recoveryCodes(aliceID)
	b := f.browser()
	id := f.request(b, appClient, pay("1250.00", creditor))

	check := func(page string, r response) {
		t.Helper()
		if r.status != http.StatusOK || !approving(r.body, creditor) {
			t.Fatalf("%s: want the details shown, got %d\n%.3000s", page, r.status, r.body)
		}
		if strings.Contains(r.body, "<script>alert") {
			t.Errorf("%s: the creditor name is markup on the page:\n%.3000s", page, r.body)
		}
		if !strings.Contains(r.body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; Example Supplies Ltd") {
			t.Errorf("%s: the creditor name is not shown as escaped text", page)
		}
	}
	check("sign-in page", b.open(id))
	f.mustContinue(b.password(id, alice, alicePass), id)
	// EUR 1,250 needs phr; alice has no passkey: the request cannot be met.
	// A smaller payment (mfa within 15 minutes) goes through the code page.
	checkDispatch(t, f, id, b.open(id), dispatchWant{oauthErr: "unmet_authentication_requirements", viaPage: true})

	id = f.request(b, appClient, pay("12.50", creditor))
	r := b.open(id)
	if !hasForm(r.body, "/login/otp") || !says(r.body, "EUR 12.50") || !says(r.body, "You're approving") {
		t.Fatalf("want the code page with the details, got %d\n%.3000s", r.status, r.body)
	}
	if r := b.get("/login?id=" + url.QueryEscape(id) + "&method=recovery"); !hasForm(r.body, "/login/recovery") || !says(r.body, "You're approving") || !says(r.body, "EUR 12.50") {
		t.Errorf("want the recovery code page with the details, got %d\n%.3000s", r.status, r.body)
	}
	f.mustContinue(b.code("/login/otp", id, f.totp(secret)), id)
	evs := f.audit(storage.EventStepUpTransaction)
	if len(evs) == 0 {
		t.Fatal("no stepup.transaction audit for the code")
	}
	if e := evs[len(evs)-1]; e.Outcome != "success" || e.Details["method"] != "totp" || e.Details["committed"] != "false" ||
		e.Details["auth_request"] != id || !strings.Contains(e.Details["authorization_details"], `"amount":"12.50"`) || e.Details["acr"] != acrMFA {
		t.Errorf("stepup.transaction for a code: %+v", e)
	}
	// The first-party app's approval page: the details, no scopes.
	r = b.open(id)
	if !hasForm(r.body, "/login/consent") || !says(r.body, "You're approving") || !says(r.body, "EUR 12.50") || says(r.body, "will also be able to") {
		t.Fatalf("want the approval page with the details, got %d\n%.3000s", r.status, r.body)
	}
	f.mustComplete(b.post("/login/consent", url.Values{"id": {id}, "decision": {"allow"}}), id)

	// The password page of a known user (prompt=login), and a recovery
	// code as the approval: recorded, committed to nothing.
	f.clock.Advance(31e9)
	id = f.request(b, appClient, pay("12.50", creditor), prompt("login"))
	if r := b.open(id); !hasForm(r.body, "/login/password") || !says(r.body, "Signed in as") || !says(r.body, "You're approving") {
		t.Fatalf("want the password page with the details, got %d\n%.3000s", r.status, r.body)
	}
	f.mustContinue(b.password(id, alice, alicePass), id)
	f.mustContinue(b.code("/login/recovery", id, codes[0]), id)
	if e := f.audit(storage.EventStepUpTransaction); e[len(e)-1].Details["method"] != "recovery" || e[len(e)-1].Details["committed"] != "false" {
		t.Errorf("stepup.transaction for a recovery code: %+v", e[len(e)-1])
	}
}

// TestTransactionConsentNeverRemembered pins RFC 9396 consent: approving
// details stores no consent, a third party's remembered consent does not
// skip the page, and refusing sends access_denied.
func TestTransactionConsentNeverRemembered(t *testing.T) {
	f := newFixture(t, withPayments())
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	f.signInMFA(b, alice, alicePass, secret)
	for i := range 2 {
		if i == 1 {
			// A remembered consent of the scopes the payment asks for
			// does not skip the approval either.
			if err := f.store.SaveConsent(f.ctx(), aliceID, shopClient, []string{"openid"}, t0); err != nil {
				t.Fatal(err)
			}
		}
		f.clock.Advance(31e9) // a new TOTP step
		id := f.request(b, shopClient, pay("12.50", "Example Supplies Ltd"))
		if r := b.open(id); hasForm(r.body, "/login/otp") {
			f.mustContinue(b.code("/login/otp", id, f.totp(secret)), id)
		} else {
			t.Fatalf("payment %d: a session at mfa from before the request must prove the code again, got %d\n%.2000s", i, r.status, r.body)
		}
		r := b.open(id)
		if !hasForm(r.body, "/login/consent") || !says(r.body, "You're approving") || !says(r.body, "Know who you are") {
			t.Fatalf("payment %d: want the approval page (scopes too, for a third party), got %d %s\n%.3000s", i, r.status, r.location, r.body)
		}
		f.mustComplete(b.post("/login/consent", url.Values{"id": {id}, "decision": {"allow"}}), id)
		if i == 0 {
			if granted, err := f.store.ConsentedScopes(f.ctx(), aliceID, shopClient); err != nil || granted != nil {
				t.Fatalf("approving details was stored as a remembered consent: %v %v", granted, err)
			}
		}
	}

	f.clock.Advance(31e9)
	id := f.request(b, shopClient, pay("12.50", "Example Supplies Ltd"))
	f.mustContinue(b.code("/login/otp", id, f.totp(secret)), id)
	checkDispatch(t, f, id, b.post("/login/consent", url.Values{"id": {id}, "decision": {"deny"}}), dispatchWant{oauthErr: "access_denied"})
}
