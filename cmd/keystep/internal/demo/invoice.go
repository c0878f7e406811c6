package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/resource"
)

// "Pay an invoice": a transaction the person approves (RFC 9396). The app
// pushes the payment as authorization_details; Keystep shows it, asks for
// the passkey, which signs a challenge derived from it, and puts exactly
// that payment in the access token. The API pays only what the token
// covers: the same token cannot pay more, pay someone else, or pay twice.
//
//	POST /api/payments  a passkey or security key (phr or phrh), and the
//	                    token's approved authorization_details must cover
//	                    the payment in the body

// paymentType is the authorization details type of a payment (RFC 9396
// §2's example, registered at Keystep as payment_initiation).
const paymentType = "payment_initiation"

// payNeeds is the API's level for a payment. The freshness (a passkey in
// the last 5 minutes above EUR 1,000) is Keystep's details policy, checked
// when the person approved; the API checks what was approved.
var payNeeds = resource.Requirement{ACR: []string{acrPHR, acrPHRH}}

// paymentJSON is a payment as the API takes it: the fields of a
// payment_initiation object (RFC 9396 §2), less its type.
type paymentJSON struct {
	InstructedAmount amountJSON  `json:"instructedAmount"`
	CreditorName     string      `json:"creditorName"`
	CreditorAccount  accountJSON `json:"creditorAccount"`
	Reference        string      `json:"remittanceInformationUnstructured"`
}

type amountJSON struct {
	Amount   string `json:"amount"` // a plain decimal: "1250.00"
	Currency string `json:"currency"`
}

type accountJSON struct {
	IBAN string `json:"iban"`
}

// receiptJSON is the API's answer to a payment it made.
type receiptJSON struct {
	Status    string `json:"status"` // "paid"
	Reference string `json:"reference"`
	PaidAt    string `json:"paidAt"` // RFC 3339
}

// theInvoice is the one invoice Acme Payroll has to pay. Made up; the IBAN
// is the UK IBAN registry's example, valid and nobody's.
var theInvoice = invoice{
	Number: "INV-2026-0412",
	Payment: paymentJSON{
		InstructedAmount: amountJSON{Amount: "1250.00", Currency: "EUR"},
		CreditorName:     "Example Supplies Ltd",
		CreditorAccount:  accountJSON{IBAN: "GB29NWBK60161331926819"},
		Reference:        "Invoice INV-2026-0412",
	},
	For: "Office chairs and desks",
}

type invoice struct {
	Number  string
	Payment paymentJSON
	For     string
}

// object is p as one authorization details object: what the app asks
// Keystep to have approved, and what the API asks the token to cover.
func (p paymentJSON) object() map[string]any {
	return map[string]any{
		"type": paymentType,
		"instructedAmount": map[string]any{
			"amount": p.InstructedAmount.Amount, "currency": p.InstructedAmount.Currency,
		},
		"creditorName":                      p.CreditorName,
		"creditorAccount":                   map[string]any{"iban": p.CreditorAccount.IBAN},
		"remittanceInformationUnstructured": p.Reference,
	}
}

// authorizationDetails is the authorization_details request parameter
// for p: a JSON array of its one object.
func (p paymentJSON) authorizationDetails() string {
	b, err := json.Marshal([]any{p.object()})
	if err != nil {
		panic(err) // strings and maps only
	}
	return string(b)
}

var amountRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})\.[0-9]{2}$`)

// check reports what is wrong with a payment the API was sent.
func (p paymentJSON) check() error {
	var errs []string
	if !amountRE.MatchString(p.InstructedAmount.Amount) || p.InstructedAmount.Amount == "0.00" {
		errs = append(errs, "instructedAmount.amount must be a positive amount with two decimals")
	}
	if len(p.InstructedAmount.Currency) != 3 || strings.ToUpper(p.InstructedAmount.Currency) != p.InstructedAmount.Currency {
		errs = append(errs, "instructedAmount.currency must be an ISO 4217 code")
	}
	if strings.TrimSpace(p.CreditorName) == "" || len(p.CreditorName) > 140 {
		errs = append(errs, "creditorName must be 1 to 140 characters")
	}
	if iban, ok := normalizeIBAN(p.CreditorAccount.IBAN); !ok || iban != p.CreditorAccount.IBAN {
		errs = append(errs, "creditorAccount.iban must be a valid IBAN without spaces")
	}
	if len(p.Reference) > 140 {
		errs = append(errs, "remittanceInformationUnstructured must be at most 140 characters")
	}
	if errs != nil {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// ledger is what the API has paid, by approval: the SHA-256 of the access
// token that carried it. One approval pays once; a new approval (a new
// token) may pay the same invoice again, so the demo can be run twice.
// Made up and in memory, like the bank accounts.
type ledger struct {
	mu   sync.Mutex
	paid map[[sha256.Size]byte]time.Time
}

func newLedger() *ledger { return &ledger{paid: map[[sha256.Size]byte]time.Time{}} }

// pay records the payment of the approval in accessToken; false if that
// approval has paid before.
func (l *ledger) pay(accessToken string, now time.Time) bool {
	k := sha256.Sum256([]byte(accessToken))
	l.mu.Lock()
	defer l.mu.Unlock()
	for old, at := range l.paid {
		if now.Sub(at) > 24*time.Hour { // long after any token expired
			delete(l.paid, old)
		}
	}
	if _, ok := l.paid[k]; ok {
		return false
	}
	l.paid[k] = now
	return true
}

// apiPay makes a payment, if the token's approved authorization details
// cover it: the payment is read from the body first, then checked against
// the token (resource.CheckDetails), so an amount, creditor, account or
// reference other than the approved one is refused with 403
// insufficient_authorization_details. A second payment with the same
// token is 409.
func (a *App) apiPay(w http.ResponseWriter, r *http.Request) {
	var p paymentJSON
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "the body is not a payment"})
		return
	}
	if err := p.check(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	}
	want := p.object()
	switch err := resource.CheckDetails(r.Context(), want); {
	case errors.Is(err, resource.ErrInsufficientDetails):
		c, _ := resource.ClaimsFrom(r.Context())
		a.log.InfoContext(r.Context(), "demo payment refused: not what was approved", "sub", c.Subject,
			"amount", p.InstructedAmount.Amount, "currency", p.InstructedAmount.Currency, "creditor", p.CreditorName)
		resource.DetailsChallenge(w, r, want, "The approved authorization_details do not cover this payment")
		return
	case err != nil:
		a.log.ErrorContext(r.Context(), "demo payment not checked", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	c, _ := resource.ClaimsFrom(r.Context())
	now := a.cfg.Now()
	// Require took the token from Authorization: "DPoP <token>".
	_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !a.ledger.pay(strings.TrimSpace(token), now) {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "already_paid", "error_description": "this approval has paid once already"})
		return
	}
	a.log.InfoContext(r.Context(), "demo payment made", "sub", c.Subject, "acr", c.ACR,
		"amount", p.InstructedAmount.Amount, "currency", p.InstructedAmount.Currency, "creditor", p.CreditorName)
	writeJSON(w, http.StatusCreated, receiptJSON{Status: "paid", Reference: p.Reference, PaidAt: now.UTC().Format(time.RFC3339)})
}

// ---- the app's side ----

// payment is the invoice payment of a session: asked for, approved, paid.
type payment struct {
	Started  time.Time
	approval *approval    // set by the callback of the payment's authorization
	receipt  *receiptJSON // set once the API paid
	tries    []tryResult  // the last "Try …" runs
}

// approval is what Keystep issued for the payment: the access token, the
// authorization_details of the token response, and the token's claims as
// the API verifies them (acr, amr, auth_time and the approved details).
type approval struct {
	accessToken string
	response    json.RawMessage // the token response's authorization_details
	claims      resource.Claims
}

// tryResult is one attempt to stretch the approval.
type tryResult struct {
	What    string // what the app tried, in plain words
	Refused bool
	Answer  string // the API's answer, in plain words
	Detail  string // status and WWW-Authenticate or error, for developers
}

// invoicePage shows the invoice, and once paid what was approved.
func (a *App) invoicePage(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		a.renderInvoice(w, r, s, http.StatusOK)
		return nil
	})(w, r)
}

func (a *App) renderInvoice(w http.ResponseWriter, r *http.Request, s *session, status int) {
	p := invoicePageData{frame: a.frame(s, "Invoices"), Invoice: invoiceView(theInvoice)}
	p.Nav = "invoice"
	if pm := s.payment; pm != nil && pm.receipt != nil && pm.approval != nil {
		ap := pm.approval
		p.Paid = true
		p.PaidAt = whenWords(parseTime(pm.receipt.PaidAt), a.cfg.Now())
		p.Approved = approvedViews(ap.claims.AuthorizationDetails)
		p.Level, p.ACR = levelWords(ap.claims.ACR), ap.claims.ACR
		p.Factors, p.AMR = amrWords(ap.claims.AMR), strings.Join(ap.claims.AMR, " ")
		p.When = whenWords(ap.claims.AuthTime, a.cfg.Now())
		if !ap.claims.AuthTime.IsZero() {
			p.AuthTime = fmt.Sprintf("%d (%s)", ap.claims.AuthTime.Unix(), ap.claims.AuthTime.UTC().Format(time.RFC3339))
		}
		p.TokenDetails = indentJSON(ap.claims.AuthorizationDetails)
		p.Tries = pm.tries
	}
	a.render(w, r, status, "invoice", p)
}

// payInvoice starts the payment: the session remembers it, and the app
// pushes an authorization request whose authorization_details are exactly
// the invoice's payment. Keystep shows it, asks for the passkey, and sends
// the browser back to /invoice/resume.
func (a *App) payInvoice(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		if pm := s.payment; pm != nil && pm.receipt != nil {
			http.Redirect(w, r, "/invoice", http.StatusSeeOther)
			return nil
		}
		s.payment = &payment{Started: a.cfg.Now()}
		d := theInvoice.Payment.authorizationDetails()
		s.note(a.cfg.Now(), "Asked Keystep to approve paying "+moneyWords(theInvoice.Payment.InstructedAmount)+" to "+theInvoice.Payment.CreditorName+".",
			"pushed (PAR) with authorization_details="+d)
		return a.authorize(w, r, s, c, "/invoice/resume", url.Values{"authorization_details": {d}}, false)
	})(w, r)
}

// invoiceResume is where Keystep's callback brings the browser back after
// the approval. It pays only a payment this session itself started
// (through CrossOriginProtection) in the last ten minutes, with the token
// that approval gave.
func (a *App) invoiceResume(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		pm := s.payment
		if pm == nil || pm.approval == nil || pm.receipt != nil || a.cfg.Now().Sub(pm.Started) > authTimeout {
			if pm != nil && pm.receipt == nil {
				s.payment = nil
			}
			http.Redirect(w, r, "/invoice", http.StatusSeeOther)
			return nil
		}
		res, err := a.callAPIWith(r, pm.approval.accessToken, s, theInvoice.Payment)
		if err != nil {
			return apiFailed(res, err)
		}
		if res.status != http.StatusCreated {
			s.payment = nil
			return &publicError{status: http.StatusBadGateway, title: "The payment didn't go through",
				detail: "Acme Payroll's payments API refused it. Nothing was paid. Go back to the invoice and try again.",
				err:    fmt.Errorf("API status %d %s %s", res.status, res.header.Get("WWW-Authenticate"), res.body)}
		}
		var rc receiptJSON
		if err := json.Unmarshal(res.body, &rc); err != nil {
			return apiFailed(res, err)
		}
		pm.receipt = &rc
		s.note(a.cfg.Now(), "Payment: the API checked the approved details and paid.", "201 Created")
		s.flash = "Paid. " + moneyWords(theInvoice.Payment.InstructedAmount) + " is on its way to " + theInvoice.Payment.CreditorName + "."
		http.Redirect(w, r, "/invoice", http.StatusSeeOther)
		return nil
	})(w, r)
}

// The ways the result page tries to use the approval for something else.
var tries = map[string]struct {
	what   string
	change func(p paymentJSON) paymentJSON
}{
	"amount": {"Tried to pay EUR 12,500.00 with this approval", func(p paymentJSON) paymentJSON {
		p.InstructedAmount.Amount = "12500.00"
		return p
	}},
	"creditor": {"Tried to pay another supplier, Quick Cash Ltd, with this approval", func(p paymentJSON) paymentJSON {
		p.CreditorName, p.CreditorAccount.IBAN, p.Reference = "Quick Cash Ltd", "GB33BUKB20201555555555", "Invoice QC-7781"
		return p
	}},
	"again": {"Tried to pay this invoice a second time with this approval", func(p paymentJSON) paymentJSON { return p }},
}

// tryPayment calls the API with the approval's token for a payment other
// than the approved one (or the same one again) and shows the answer.
func (a *App) tryPayment(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		t, ok := tries[r.PostFormValue("what")]
		pm := s.payment
		if !ok || pm == nil || pm.receipt == nil {
			http.Redirect(w, r, "/invoice", http.StatusSeeOther)
			return nil
		}
		res, err := a.callAPIWith(r, pm.approval.accessToken, s, t.change(theInvoice.Payment))
		if err != nil {
			return apiFailed(res, err)
		}
		tr := tryResult{What: t.what, Detail: fmt.Sprintf("%s (%d)", http.StatusText(res.status), res.status)}
		ch, _ := resource.ParseChallenge(strings.Join(res.header.Values("WWW-Authenticate"), ", "))
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(res.body, &e)
		switch {
		case res.status == http.StatusForbidden && ch.Error == "insufficient_authorization_details":
			tr.Refused = true
			tr.Answer = "Refused. You approved " + moneyWords(theInvoice.Payment.InstructedAmount) + " to " + theInvoice.Payment.CreditorName + ", and nothing else."
			tr.Detail += " WWW-Authenticate: " + res.header.Get("WWW-Authenticate")
		case res.status == http.StatusConflict && e.Error == "already_paid":
			tr.Refused = true
			tr.Answer = "Refused. This approval has paid once already."
			tr.Detail += " " + strings.TrimSpace(string(res.body))
		case res.status == http.StatusUnauthorized:
			tr.Refused = true
			tr.Answer = "Refused. The approval's token has expired. Sign out and in again to start over."
			tr.Detail += " WWW-Authenticate: " + res.header.Get("WWW-Authenticate")
		case res.status < 300:
			tr.Answer = "Accepted. An approval should never stretch this far: tell whoever runs this server."
		default:
			tr.Answer = "Not accepted, but not for the usual reason."
			tr.Detail += " " + res.header.Get("WWW-Authenticate")
		}
		pm.tries = append([]tryResult{tr}, pm.tries...)
		if len(pm.tries) > len(tries) {
			pm.tries = pm.tries[:len(tries)]
		}
		text := "Payment: the API refused a payment you didn't approve."
		if !tr.Refused {
			text = "Payment: the API did not refuse a payment you didn't approve."
		}
		s.note(a.cfg.Now(), text, tr.Detail)
		http.Redirect(w, r, "/invoice#tries", http.StatusSeeOther)
		return nil
	})(w, r)
}

// callAPIWith posts a payment to the API with accessToken and a proof of
// the session's key.
func (a *App) callAPIWith(r *http.Request, accessToken string, s *session, p paymentJSON) (apiResponse, error) {
	req, err := newRequest(r.Context(), http.MethodPost, a.cfg.URL+"/api/payments", p)
	if err != nil {
		return apiResponse{}, err
	}
	if err := dpopRequest(req, "DPoP", accessToken, s.key, a.cfg.Now()); err != nil {
		return apiResponse{}, err
	}
	return a.send(req)
}

// ---- words ----

// moneyWords is an amount as Keystep's approval page words it: "EUR 1,250.00".
func moneyWords(m amountJSON) string { return details.English.Amount(m.Amount, m.Currency) }

// ibanWords is an IBAN in groups of four, as it is printed.
func ibanWords(iban string) string { return details.Groups(iban) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// sameJSON reports whether a and b are the same JSON value (object key
// order and spacing aside; numbers compared as written).
func sameJSON(a, b []byte) bool {
	var va, vb any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&va) != nil || db.Decode(&vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// indentJSON is raw JSON indented for reading; raw as it is if it is not JSON.
func indentJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

// ---- page data ----

type invoicePageData struct {
	frame
	Invoice invoiceLines
	Paid    bool
	PaidAt  string
	// From the approval's access token, shown as text.
	Approved       []approvedLines
	Level, ACR     string
	Factors, AMR   string
	When, AuthTime string
	TokenDetails   string
	Tries          []tryResult
}

// invoiceLines is the invoice as the page shows it.
type invoiceLines struct {
	Number, For, To, Account, Reference, Amount string
}

func invoiceView(i invoice) invoiceLines {
	p := i.Payment
	return invoiceLines{Number: i.Number, For: i.For, To: p.CreditorName, Account: ibanWords(p.CreditorAccount.IBAN),
		Reference: p.Reference, Amount: moneyWords(p.InstructedAmount)}
}

// approvedLines is one approved authorization details object in words.
type approvedLines struct {
	Type  string
	Lines []approvedLine
}

type approvedLine struct{ Label, Value string }

// approvedViews reads the token's authorization_details for the page: the
// payment fields the app knows in words, anything else by its name. A
// token the app cannot read shows nothing here; the raw JSON is below.
func approvedViews(raw json.RawMessage) []approvedLines {
	var objs []map[string]json.RawMessage
	if json.Unmarshal(raw, &objs) != nil {
		return nil
	}
	var out []approvedLines
	for _, o := range objs {
		var typ string
		_ = json.Unmarshal(o["type"], &typ)
		v := approvedLines{Type: typ}
		var p paymentJSON
		_ = json.Unmarshal(o["instructedAmount"], &p.InstructedAmount)
		_ = json.Unmarshal(o["creditorName"], &p.CreditorName)
		_ = json.Unmarshal(o["creditorAccount"], &p.CreditorAccount)
		_ = json.Unmarshal(o["remittanceInformationUnstructured"], &p.Reference)
		var actions []string
		_ = json.Unmarshal(o["actions"], &actions)
		add := func(label, value string) {
			if value != "" {
				v.Lines = append(v.Lines, approvedLine{label, value})
			}
		}
		if p.InstructedAmount.Amount != "" {
			add("Amount", moneyWords(p.InstructedAmount))
		}
		add("To", p.CreditorName)
		add("Account", ibanWords(p.CreditorAccount.IBAN))
		add("Reference", p.Reference)
		add("Action", strings.Join(actions, ", "))
		out = append(out, v)
	}
	return out
}
