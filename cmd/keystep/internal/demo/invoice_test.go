package demo

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/dpop"
	"github.com/keystep/keystep/idp/resource"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// invoiceDetails is the invoice's payment as canonical authorization
// details: what the app asks for, and what the token must carry.
func invoiceDetails(t *testing.T) string {
	t.Helper()
	return canonicalDetails(t, theInvoice.Payment.authorizationDetails())
}

func canonicalDetails(t *testing.T, raw string) string {
	t.Helper()
	d, err := details.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return d.String()
}

// paymentView is what the app keeps of b's invoice payment.
type paymentView struct {
	approval *approval
	receipt  *receiptJSON
	key      *dpop.Prover
}

func (e *env) payment(b *browser) paymentView {
	e.t.Helper()
	rp, _ := url.Parse(e.rpURL)
	for _, c := range b.jar.Cookies(rp) {
		if c.Name != sessionCookie {
			continue
		}
		e.app.sessions.mu.Lock()
		s := e.app.sessions.m[c.Value]
		e.app.sessions.mu.Unlock()
		if s == nil {
			break
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.payment == nil {
			return paymentView{key: s.key}
		}
		return paymentView{approval: s.payment.approval, receipt: s.payment.receipt, key: s.key}
	}
	e.t.Fatal("the browser has no Acme Payroll session")
	return paymentView{}
}

// transactionRows are Keystep's stepup.transaction audit rows, oldest first.
func (e *env) transactionRows() []storage.AuditEvent {
	e.t.Helper()
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: storage.EventStepUpTransaction})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// paymentBody is p as the API's JSON body.
func paymentBody(t *testing.T, p paymentJSON) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// invoice-pay: the demo's "Pay an invoice" end to end (issue 19). The app
// pushes exactly the invoice's payment as authorization_details, Keystep
// shows it and the passkey approves it (a signed, committed
// stepup.transaction row, as `keystep audit export --event
// stepup.transaction` prints it), the token carries it, the API pays it
// once, and the same token cannot pay EUR 12,500, another supplier, or
// the same invoice again.
func TestPayInvoice(t *testing.T) {
	e := newEnvWith(t, true, func(c *idp.Config) { c.PasskeysTrustedAtOnce = true })
	b := e.browser()
	b.signIn()
	key := b.enrollPasskey()
	want := invoiceDetails(t)

	p := b.get(e.rpURL + "/invoice")
	for _, s := range []string{"Invoice INV-2026-0412", "Example Supplies Ltd", "GB29 NWBK 6016 1331 9268 19", "EUR 1,250.00", `action="/invoice/pay"`} {
		if p.status != http.StatusOK || !strings.Contains(p.body, s) {
			t.Fatalf("the invoice page lacks %q: %d at %s\n%s", s, p.status, p.url, p.body)
		}
	}

	// Pay: the app pushes the invoice's payment, the browser carries only
	// the request_uri, and Keystep shows the payment above the passkey.
	p = b.post(e.rpURL+"/invoice/pay", nil)
	pushed := e.lastPushed()
	if got := canonicalDetails(t, pushed.Get("authorization_details")); got != want {
		t.Fatalf("pushed authorization_details %s, want %s", got, want)
	}
	authz := p.hop(e.issuer, "/authorize")
	if q := authz.Query(); authz == nil || len(q) != 2 || q.Get("request_uri") == "" {
		t.Fatalf("the authorization URL carries %v, want client_id and request_uri only", authz)
	}
	for _, s := range []string{"You're approving", "Example Supplies Ltd", "EUR 1,250.00", "Use a passkey or security key"} {
		if !strings.Contains(html.UnescapeString(p.body), s) {
			t.Fatalf("Keystep's passkey page lacks %q: %d at %s\n%.4000s", s, p.status, p.url, p.body)
		}
	}
	if strings.Contains(p.body, "more detail") {
		t.Errorf("Keystep shows part of the payment as more details:\n%s", p.body)
	}
	if strings.Contains(p.body, `type="password"`) {
		t.Fatal("the approval asks for the password again")
	}
	p = b.usePasskey(p, key)
	if !p.has("/login/consent") || !strings.Contains(p.body, "Example Supplies Ltd") {
		t.Fatalf("no approval page after the passkey: %d at %s\n%.3000s", p.status, p.url, p.body)
	}
	p = b.post(e.issuer+"/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	if p.status != http.StatusOK || p.url != e.rpURL+"/invoice" {
		t.Fatalf("after approving: %d at %s\n%.3000s", p.status, p.url, p.body)
	}
	if p.hop(e.rpURL, "/invoice/resume") == nil {
		t.Errorf("the payment was not made through /invoice/resume: %v", p.hops)
	}

	// The token, from the token response, carries exactly the invoice.
	pv := e.payment(b)
	if pv.approval == nil || pv.receipt == nil || pv.receipt.Status != "paid" {
		t.Fatalf("after approving: approval %v receipt %v", pv.approval, pv.receipt)
	}
	if got := canonicalDetails(t, string(pv.approval.response)); got != want {
		t.Errorf("token response authorization_details %s, want %s", got, want)
	}
	v, err := resource.Open(t.Context(), e.issuer, resource.WithAudience(clientID))
	if err != nil {
		t.Fatal(err)
	}
	tok := pv.approval.accessToken
	c, err := v.VerifyHeld(t.Context(), tok, pv.key.JKT)
	if err != nil {
		t.Fatal(err)
	}
	if got := canonicalDetails(t, string(c.AuthorizationDetails)); got != want || c.ACR != acrPHR || c.AuthTime.IsZero() {
		t.Errorf("access token: details %s acr %q auth_time %v; want %s, %s", got, c.ACR, c.AuthTime, want, acrPHR)
	}

	// The page shows what was approved and how, as text.
	for _, s := range []string{"Paid. EUR 1,250.00 is on its way to Example Supplies Ltd.", "What you approved", "GB29 NWBK 6016 1331 9268 19",
		"Invoice INV-2026-0412", levelWords(acrPHR), "<code>" + acrPHR + "</code>", "&#34;creditorName&#34;: &#34;Example Supplies Ltd&#34;"} {
		if !strings.Contains(p.body, html.EscapeString(s)) && !strings.Contains(p.body, s) {
			t.Errorf("the paid invoice page lacks %q:\n%s", s, p.body)
		}
	}

	// So does the overview's "What the tokens say".
	if p := b.get(e.rpURL + "/dashboard"); !strings.Contains(p.body, `<code class="token-details">`) ||
		!strings.Contains(p.body, html.EscapeString(`"creditorName": "Example Supplies Ltd"`)) {
		t.Errorf("the overview does not show the token's authorization_details:\n%s", p.body)
	}

	// Keystep's audit: the passkey committed to exactly these details.
	rows := e.transactionRows()
	var ok bool
	for _, ev := range rows {
		if ev.Outcome == "success" && ev.Details["committed"] == "true" && ev.Details["method"] == "webauthn" &&
			ev.Details["authorization_details"] == want && ev.ClientID == clientID && ev.UserID == userID {
			ok = true
			// What `keystep audit export --event stepup.transaction` prints for it.
			line, err := json.Marshal(admin.AuditJSONOf(ev))
			if err != nil || !strings.Contains(string(line), `"type":"stepup.transaction"`) || !strings.Contains(string(line), "Example Supplies Ltd") {
				t.Errorf("the exported row %s (%v)", line, err)
			}
		}
	}
	if !ok {
		t.Fatalf("no committed stepup.transaction success for the invoice: %+v", rows)
	}

	// The same token, for what was not approved: refused by the API.
	for _, tc := range []struct {
		name   string
		p      paymentJSON
		status int
		err    string
	}{
		{"EUR 12,500", tries["amount"].change(theInvoice.Payment), http.StatusForbidden, "insufficient_authorization_details"},
		{"another creditor", tries["creditor"].change(theInvoice.Payment), http.StatusForbidden, "insufficient_authorization_details"},
		{"the same payment again", theInvoice.Payment, http.StatusConflict, ""},
	} {
		status, h := e.callAPI(pv.key, http.MethodPost, "/api/payments", tok, paymentBody(t, tc.p))
		ch, _ := resource.ParseChallenge(h.Get("WWW-Authenticate"))
		if status != tc.status || ch.Error != tc.err {
			t.Errorf("%s: %d %q, want %d %s", tc.name, status, h.Get("WWW-Authenticate"), tc.status, tc.err)
		}
		if tc.err != "" {
			// The challenge names what would have to be approved instead.
			if got := canonicalDetails(t, string(ch.AuthorizationDetails)); got != canonicalDetails(t, tc.p.authorizationDetails()) {
				t.Errorf("%s: the challenge's authorization_details %s", tc.name, got)
			}
		}
	}

	// The page's buttons do the same and say so plainly.
	for what, answer := range map[string]string{
		"amount":   "Refused. You approved EUR 1,250.00 to Example Supplies Ltd, and nothing else.",
		"creditor": "Refused. You approved EUR 1,250.00 to Example Supplies Ltd, and nothing else.",
		"again":    "Refused. This approval has paid once already.",
	} {
		p := b.post(e.rpURL+"/invoice/try", url.Values{"what": {what}})
		if p.status != http.StatusOK || p.url != e.rpURL+"/invoice#tries" || !strings.Contains(p.body, `<li class="refused"><strong>`+html.EscapeString(tries[what].what)) ||
			!strings.Contains(p.body, answer) || strings.Contains(p.body, `<li class="accepted">`) {
			t.Errorf("try %s: %d at %s, want %q refused:\n%s", what, p.status, p.url, answer, p.body)
		}
	}

	// One approval pays once, but a new one pays again: the demo can be
	// run twice (sign out, sign in, pay).
	b.post(e.rpURL+"/logout", nil)
	b.signIn()
	p = b.usePasskey(b.post(e.rpURL+"/invoice/pay", nil), key)
	p = b.post(e.issuer+"/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	if p.url != e.rpURL+"/invoice" || !strings.Contains(p.body, "Paid. EUR 1,250.00") {
		t.Fatalf("paying with a second approval: %d at %s\n%.3000s", p.status, p.url, p.body)
	}
	if second := e.payment(b).approval; second == nil || second.accessToken == tok {
		t.Fatal("the second payment did not use a new approval")
	}
}

// Changing the payment in the browser: the app's authorization URL has
// only client_id and request_uri, and authorization_details added to it
// are refused by Keystep (400 page), with a denied stepup.transaction row.
func TestInvoiceDetailsChangedInTheBrowser(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	before := len(e.transactionRows())

	req, _ := http.NewRequest(http.MethodPost, e.rpURL+"/invoice/pay", nil)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(to.String(), e.issuer+"/authorize?") {
		t.Fatalf("Pay: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if q := to.Query(); len(q) != 2 || q.Get("client_id") != clientID || q.Get("request_uri") == "" {
		t.Fatalf("the authorization URL carries %v, want client_id and request_uri only", q)
	}
	tampered := strings.Replace(e.lastPushed().Get("authorization_details"), `"1250.00"`, `"12500.00"`, 1)
	if !strings.Contains(tampered, "12500.00") {
		t.Fatalf("the pushed details have no amount to change: %s", tampered)
	}
	q := to.Query()
	q.Set("authorization_details", tampered)
	to.RawQuery = q.Encode()
	p := b.get(to.String())
	if p.status != http.StatusBadRequest || p.hop(e.rpURL, "/callback") != nil || strings.Contains(p.body, "12500") {
		t.Fatalf("changed details in the browser: %d at %s (hops %v)\n%.2000s", p.status, p.url, p.hops, p.body)
	}
	rows := e.transactionRows()
	if len(rows) != before+1 {
		t.Fatalf("%d stepup.transaction rows after the refusal, want %d", len(rows), before+1)
	}
	if ev := rows[len(rows)-1]; ev.Outcome != "denied" || ev.Details["endpoint"] != "authorize" || ev.ClientID != clientID {
		t.Fatalf("the refusal's audit row: %+v", ev)
	}
	if pv := e.payment(b); pv.approval != nil || pv.receipt != nil {
		t.Fatal("a payment was approved or made")
	}
}

// Without a passkey Keystep cannot approve a payment above EUR 1,000: its
// page says so, its "Go back" returns to the invoice, which says what to
// add, and nothing is paid.
func TestInvoiceWithoutPasskey(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	p := b.goBack(b.post(e.rpURL+"/invoice/pay", nil))
	if p.status != http.StatusOK || p.url != e.rpURL+"/invoice" || !strings.Contains(p.body, "your Keystep account doesn&#39;t have one yet") {
		t.Fatalf("paying without a passkey: %d at %s\n%.3000s", p.status, p.url, p.body)
	}
	if strings.Contains(p.body, "What you approved") {
		t.Fatal("the invoice shows as approved")
	}
	if pv := e.payment(b); pv.approval != nil || pv.receipt != nil {
		t.Fatal("a payment was approved or made")
	}
}

// "Don't approve" on Keystep's approval page pays nothing and says so.
func TestInvoiceNotApproved(t *testing.T) {
	e := newEnvWith(t, true, func(c *idp.Config) { c.PasskeysTrustedAtOnce = true })
	b := e.browser()
	b.signIn()
	key := b.enrollPasskey()
	p := b.usePasskey(b.post(e.rpURL+"/invoice/pay", nil), key)
	if !p.has("/login/consent") {
		t.Fatalf("no approval page after the passkey: %d at %s\n%.3000s", p.status, p.url, p.body)
	}
	p = b.post(e.issuer+"/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"deny"}})
	if p.url != e.rpURL+"/invoice" || !strings.Contains(p.body, "You didn&#39;t approve the payment, so nothing was paid.") ||
		!strings.Contains(p.body, `action="/invoice/pay"`) {
		t.Fatalf("after Don't approve: %d at %s\n%.3000s", p.status, p.url, p.body)
	}
	if pv := e.payment(b); pv.approval != nil || pv.receipt != nil {
		t.Fatal("a payment was approved or made")
	}
}

func TestSameJSON(t *testing.T) {
	asked := theInvoice.Payment.authorizationDetails()
	for _, tt := range []struct {
		b    string
		same bool
	}{
		{asked, true},
		{canonicalDetails(t, asked), true}, // Keystep's canonical form: keys sorted
		{strings.Replace(asked, "1250.00", "12500.00", 1), false},
		{strings.Replace(asked, "1250.00", "1250.0", 1), false},
		{"[]", false},
		{"", false},
		{"null", false},
	} {
		if got := sameJSON([]byte(asked), []byte(tt.b)); got != tt.same {
			t.Errorf("sameJSON(asked, %s) = %v", tt.b, got)
		}
	}
}

func TestMoneyAndIBANWords(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{moneyWords(amountJSON{"1250.00", "EUR"}), "EUR 1,250.00"},
		{moneyWords(amountJSON{"12500.00", "EUR"}), "EUR 12,500.00"},
		// Worded as Keystep's approval page words it (idp/details): to the
		// currency's minor unit.
		{moneyWords(amountJSON{"999.5", "GBP"}), "GBP 999.50"},
		{moneyWords(amountJSON{"1234567.00", "EUR"}), "EUR 1,234,567.00"},
		{ibanWords("GB29NWBK60161331926819"), "GB29 NWBK 6016 1331 9268 19"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if iban, ok := normalizeIBAN(theInvoice.Payment.CreditorAccount.IBAN); !ok || iban != theInvoice.Payment.CreditorAccount.IBAN {
		t.Errorf("the invoice's IBAN %s is not valid", theInvoice.Payment.CreditorAccount.IBAN)
	}
	if err := theInvoice.Payment.check(); err != nil {
		t.Errorf("the invoice's payment: %v", err)
	}
}
