package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage"
)

// Transaction approval (RFC 9396). An authorization request with
// authorization details is a transaction the person approves: every page
// that asks for a factor, and the consent page, shows what is approved
// ("You're approving"); a passkey signs a challenge derived from the details
// (details.Challenge), so its assertion proves that this key approved these
// details; each factor proved for the request is written to the audit log
// as a stepup.transaction event, the assertion with it, for `keystep audit
// verify --transaction`. Consent to details is never remembered.

// nonceSize is the server nonce of a transaction-bound WebAuthn challenge:
// 32 random bytes, twice details.MinNonce.
const nonceSize = 32

// transaction is the request's authorization details (nil for none). They
// were checked at /authorize and stored in canonical form; parsing them
// again cannot fail unless the row was changed.
func transaction(st *flowState) (details.Details, error) {
	if st.ar.AuthorizationDetails == "" {
		return nil, nil
	}
	d, err := details.Parse(st.ar.AuthorizationDetails)
	if err != nil {
		return nil, fmt.Errorf("auth request %s: stored authorization details: %w", st.ar.ID, err)
	}
	return d, nil
}

// approving is what the pages show under "You're approving": one item per
// object, plain text the template escapes.
func (h *Handler) approving(st *flowState) ([]details.Item, error) {
	d, err := transaction(st)
	if err != nil || d == nil {
		return nil, err
	}
	return st.pol.Details.Display(d), nil
}

// newNonce draws a transaction challenge's server nonce.
func newNonce() ([]byte, error) {
	b := make([]byte, nonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

var b64 = base64.RawURLEncoding

// transactionEvent is the stepup.transaction audit row for a factor proved
// on a request with details d. extra holds the assertion of a WebAuthn
// approval; without it the factor committed to nothing.
func transactionEvent(st *flowState, userID string, d details.Details, m stepup.Method, outcome, reason, acr string, extra map[string]string) storage.AuditEvent {
	h := d.Hash()
	det := map[string]string{
		"auth_request":          st.ar.ID,
		"authorization_details": d.String(),
		"details_hash":          b64.EncodeToString(h[:]),
		"method":                string(m),
		"committed":             strconv.FormatBool(extra != nil && outcome == "success"),
		"acr":                   acr,
	}
	for k, v := range extra {
		det[k] = v
	}
	ev := storage.AuditEvent{Type: storage.EventStepUpTransaction, UserID: userID, ClientID: st.client.ID, Outcome: outcome, Reason: reason, Details: det}
	if outcome == "success" {
		ev.ActorID = userID
	}
	return ev
}

// reached is the acr the request reaches once ev is added to the session
// of user u ("" while it still needs more), as the dispatcher will decide
// it: the approval's audit row says what it achieved.
func (h *Handler) reached(r *http.Request, st *flowState, u storage.User, ev storage.FactorEvent) (string, error) {
	next := *st
	if !next.hasSess || next.user.ID != u.ID {
		next.hasSess, next.user = true, u
		next.sess = storage.Session{UserID: u.ID, CreatedAt: h.cfg.Now()}
		if err := h.loadFactors(r.Context(), &next); err != nil {
			return "", err
		}
	}
	var fs []storage.FactorEvent
	for _, f := range next.sess.Factors {
		if f.Method != ev.Method {
			fs = append(fs, f)
		}
	}
	next.sess.Factors = append(fs, ev)
	_, d, err := h.decide(r, &next)
	if err != nil || d.Outcome != stepup.Satisfied {
		return "", err
	}
	return d.ACR, nil
}

// recordApproval writes the stepup.transaction row for a factor other
// than a passkey (a code, a recovery code, a password) proved on a request
// with details: it shows the details were on the page, and says the factor
// committed to nothing (committed=false). It does nothing for a request
// without details.
func (h *Handler) recordApproval(r *http.Request, st *flowState, u storage.User, ev storage.FactorEvent) error {
	d, err := transaction(st)
	if err != nil || d == nil {
		return err
	}
	acr, err := h.reached(r, st, u, ev)
	if err != nil {
		return err
	}
	return h.cfg.Audit.Record(r.Context(), transactionEvent(st, u.ID, d, stepup.Method(ev.Method), "success", "", acr, nil))
}

// recordRefusal audits a passkey that did not approve a request's details
// (a wrong key, an assertion over another challenge, a blocked credential)
// as a denial about userID ("" while nobody is identified).
func (h *Handler) recordRefusal(ctx context.Context, st *flowState, userID, reason string) error {
	d, err := transaction(st)
	if err != nil || d == nil {
		return err
	}
	return h.cfg.Audit.Record(ctx, transactionEvent(st, userID, d, stepup.WebAuthn, "denied", reason, "", nil))
}
