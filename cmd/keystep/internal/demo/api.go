package demo

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keystep/keystep/idp/resource"
)

// The API is a resource server in miniature: it knows nothing of cookies or
// sessions, only bearer tokens, and says what it needs with RFC 9470
// challenges written by resource.Verifier.Require:
//
//	GET /api/payslips      two steps (acr mfa, phr or phrh)
//	GET /api/bank-account  the same
//	PUT /api/bank-account  a passkey or security key (phr or phrh) in the last 5 minutes
//	POST /api/payments     a passkey or security key, and approved details covering the payment (invoice.go)

type payslipJSON struct {
	Month string `json:"month"` // "March 2026"
	Paid  string `json:"paid"`  // "31 Mar 2026"
	Gross string `json:"gross"`
	Net   string `json:"net"`
}

type payslipsJSON struct {
	Payslips []payslipJSON `json:"payslips"`
}

type bankAccountJSON struct {
	IBAN string `json:"iban"`
}

// bankChange is a change the person asked for, waiting for a step-up.
type bankChange struct {
	IBAN string
	At   time.Time
}

// accounts are the bank accounts on file, by subject. Made up and in memory.
type accounts struct {
	mu sync.Mutex
	m  map[string]string
}

// defaultIBAN is the example IBAN of the UK's IBAN registry entry: valid,
// and nobody's.
const defaultIBAN = "GB82WEST12345698765432"

func newAccounts() *accounts { return &accounts{m: map[string]string{}} }

func (as *accounts) get(sub string) string {
	as.mu.Lock()
	defer as.mu.Unlock()
	if v, ok := as.m[sub]; ok {
		return v
	}
	return defaultIBAN
}

func (as *accounts) set(sub, iban string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.m[sub] = iban
}

// api builds the API's routes around the token verifier v.
func (a *App) api(v *resource.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/payslips", v.Require(readNeeds, http.HandlerFunc(a.apiPayslips)))
	mux.Handle("GET /api/bank-account", v.Require(readNeeds, http.HandlerFunc(a.apiBankAccount)))
	mux.Handle("PUT /api/bank-account", v.Require(changeNeeds, http.HandlerFunc(a.apiChangeBankAccount)))
	mux.Handle("POST /api/payments", v.Require(payNeeds, http.HandlerFunc(a.apiPay)))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
	})
	return mux
}

// serveAPI serves the API once Keystep has been discovered.
func (a *App) serveAPI(w http.ResponseWriter, r *http.Request) {
	c, err := a.connect(r.Context())
	if err != nil {
		a.log.WarnContext(r.Context(), "demo API cannot reach Keystep", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	c.api.ServeHTTP(w, r)
}

func (a *App) apiPayslips(w http.ResponseWriter, r *http.Request) {
	// Three made-up payslips: the last three months, paid on their last day.
	now := a.cfg.Now().Local()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.Local)
	var out payslipsJSON
	nets := []string{"€2,913.40", "€2,913.40", "€3,402.15"} // the third had a bonus
	grosses := []string{"€4,250.00", "€4,250.00", "€5,050.00"}
	for i := range 3 {
		m := first.AddDate(0, -i-1, 0)
		paid := first.AddDate(0, -i, -1)
		out.Payslips = append(out.Payslips, payslipJSON{
			Month: m.Format("January 2006"), Paid: paid.Format("2 Jan 2006"), Gross: grosses[i], Net: nets[i],
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *App) apiBankAccount(w http.ResponseWriter, r *http.Request) {
	c, _ := resource.ClaimsFrom(r.Context())
	writeJSON(w, http.StatusOK, bankAccountJSON{IBAN: a.accounts.get(c.Subject)})
}

func (a *App) apiChangeBankAccount(w http.ResponseWriter, r *http.Request) {
	c, _ := resource.ClaimsFrom(r.Context())
	var in bankAccountJSON
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	iban, ok := normalizeIBAN(in.IBAN)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_iban"})
		return
	}
	a.accounts.set(c.Subject, iban)
	a.log.InfoContext(r.Context(), "demo bank account changed", "sub", c.Subject, "acr", c.ACR)
	writeJSON(w, http.StatusOK, bankAccountJSON{IBAN: iban})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// normalizeIBAN drops spaces, upper-cases, and checks the length and the
// ISO 13616 mod-97 check digits.
func normalizeIBAN(s string) (string, bool) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	if len(s) < 15 || len(s) > 34 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter, digit := 'A' <= c && c <= 'Z', '0' <= c && c <= '9'
		if !letter && !digit || i < 2 && !letter || (i == 2 || i == 3) && !digit {
			return "", false
		}
	}
	if err := ibanChecksum(s[4:] + s[:4]); err != nil {
		return "", false
	}
	return s, true
}

func ibanChecksum(s string) error {
	rem := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' {
			v := int(c-'A') + 10
			rem = (rem*100 + v) % 97
		} else {
			rem = (rem*10 + int(c-'0')) % 97
		}
	}
	if rem != 1 {
		return errors.New("IBAN check digits do not match")
	}
	return nil
}

// lastFour is what the app shows of an account number.
func lastFour(iban string) string {
	if len(iban) < 4 {
		return iban
	}
	return iban[len(iban)-4:]
}
