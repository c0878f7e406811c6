package conformance

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"html"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/storage"
)

// Transaction-bound step-up (issue 19) at the login level, with the
// software authenticator: a passkey approves a request's authorization
// details only with an assertion over details.Challenge(details, nonce).
// /authorize does not read authorization_details yet, so each test puts
// them on the stored request, with what they demand, as it will.

const softPayment = `[{"type":"payment_initiation","instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":"Example Supplies Ltd"}]`

// softTransaction gives the stored request id authorization details and
// their demand (phr within 5 minutes), and returns them.
func (e *env) softTransaction(id string) details.Details {
	e.t.Helper()
	ctx := context.Background()
	d, err := details.Parse(softPayment)
	if err != nil {
		e.t.Fatal(err)
	}
	ar, err := e.store.AuthRequestByID(ctx, id, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	ar.AuthorizationDetails = d.String()
	ar.Requirement.TransactionMin, ar.Requirement.TransactionMaxAge = acrPHR, 300
	if err := e.store.DeleteAuthRequest(ctx, id); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateAuthRequest(ctx, ar); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func TestTransactionBoundPasskey(t *testing.T) {
	t.Run("the passkey signs a challenge derived from the details and a fresh nonce, and the approval is audited", func(t *testing.T) {
		e, r, key := softSetup(t)
		b := e.browser()
		a, id := b.softStepUp(r, alice, alicePass, url.Values{"acr_values": {acrPHR}})
		d := e.softTransaction(id)
		if p := b.get(e.issuer + "/login?id=" + url.QueryEscape(id)); !strings.Contains(html.UnescapeString(p.body), "You're approving") || softRequestID(t, p) != id {
			t.Fatalf("the passkey page does not show what is approved:\n%.3000s", p.body)
		}
		challenge, _ := b.softOptions(id)
		body := map[string]any{"id": id, "credential": key.assertion(e, challenge, softTweak{})}
		status, out := b.postJSON("/login/webauthn/verify", body)
		ev := e.lastAudit(storage.EventStepUpTransaction)
		if ev.Outcome != "success" || ev.Details["committed"] != "true" || ev.Details["method"] != "webauthn" || ev.Details["auth_request"] != id ||
			ev.Details["authorization_details"] != d.String() || ev.Details["acr"] != acrPHR {
			t.Fatalf("stepup.transaction: %+v", ev)
		}
		nonce, err := base64.RawURLEncoding.DecodeString(ev.Details["nonce"])
		if err != nil || len(nonce) < details.MinNonce {
			t.Fatalf("nonce %q: %v", ev.Details["nonce"], err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(challenge)
		if !details.VerifyChallenge(d, nonce, raw) {
			t.Fatalf("the options' challenge %s is not details.Challenge(details, nonce)", challenge)
		}
		tok := b.softFinish(r, a, status, out)
		if tok.claims.ACR != acrPHR {
			t.Fatalf("token acr %q", tok.claims.ACR)
		}
	})

	t.Run("an assertion over a challenge not derived from the details is refused and audited as a denial", func(t *testing.T) {
		e, _, key := softSetup(t)
		b := e.browser()
		_, id := b.softStepUp(e.rp(rpClient, e.rpSecret), alice, alicePass, url.Values{"acr_values": {acrPHR}})
		e.softTransaction(id)
		other := make([]byte, 32)
		_, _ = rand.Read(other)
		before := e.softRecorded("u-alice")
		status, out, _ := b.softAssert(id, key, softTweak{challenge: b64u(other)})
		e.softRefused("an assertion over another challenge", status, out, 401, softNotAccepted, "u-alice", before)
		if ev := e.lastAudit(storage.EventStepUpTransaction); ev.Outcome != "denied" || ev.Details["auth_request"] != id {
			t.Fatalf("refusal audit: %+v", ev)
		}
		b.softStillAsks("an assertion over another challenge", id)
	})

	t.Run("a ceremony begun before the details, over a plain random challenge, cannot approve them", func(t *testing.T) {
		e, _, key := softSetup(t)
		b := e.browser()
		_, id := b.softStepUp(e.rp(rpClient, e.rpSecret), alice, alicePass, url.Values{"acr_values": {acrPHR}})
		challenge, _ := b.softOptions(id) // random: the request has no details yet
		e.softTransaction(id)
		before := e.softRecorded("u-alice")
		status, out := b.postJSON("/login/webauthn/verify", map[string]any{"id": id, "credential": key.assertion(e, challenge, softTweak{})})
		e.softRefused("an honest assertion over a challenge that approves nothing", status, out, 401, softNotAccepted, "u-alice", before)
		if ev := e.lastAudit(storage.EventStepUpTransaction); ev.Outcome != "denied" || ev.Reason != "challenge not bound to the authorization details" {
			t.Fatalf("refusal audit: %+v", ev)
		}
	})
}
