package conformance

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// Rich Authorization Requests (RFC 9396) end to end (issue 19): an app
// pushes what the person is to approve, the person approves it with a
// passkey that signs the details, and the tokens carry exactly that; no
// step between the app and the token can change it.

const (
	payClient = "payer"
	paySecret = "pay-secret"
	// bigPayment is above the example policy's EUR 1,000: phr within 5 minutes.
	bigPayment   = `[{"type":"payment_initiation","instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":"Example Supplies Ltd"}]`
	otherPayment = `{"type":"payment_initiation","instructedAmount":{"amount":"80.00","currency":"EUR"},"creditorName":"Corner Shop"}`
)

// rarEnv is an issuer on localhost with the example payments policy, a
// client registered for payment_initiation, and Alice with a trusted
// passkey on the software authenticator.
func rarEnv(t *testing.T) (*env, *rp, *softKey) {
	t.Helper()
	e := newEnv(t, onLocalhost, func(c *idp.Config) { c.Details = details.ExamplePayments(acrMFA, acrPHR) })
	e.addClient(storage.Client{ID: payClient, Name: "Acme Payroll", SecretHash: factor.HashToken(paySecret), AuthMethod: "client_secret_basic",
		RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "ES256",
		FirstParty: true, AuthorizationDetailsTypes: []string{details.PaymentInitiation}})
	return e, e.rp(payClient, paySecret), e.softEnroll(alice, alicePass)
}

// payCode pushes a request for raw (with extra parameters), signs Alice in
// with her password, approves with the passkey, and returns the request
// and its code.
func (e *env) payCode(b *browser, r *rp, key *softKey, raw string, extra url.Values) (authRequest, string) {
	e.t.Helper()
	a, params := authParams(e.t, r, extra)
	params.Set("authorization_details", raw)
	uri := e.mustPush(params, payClient, paySecret)
	p := b.get(e.pushedURL(payClient, uri, nil))
	if p.has("/login/password") {
		p = b.signIn(p, alice, alicePass)
	}
	if !strings.Contains(html.UnescapeString(p.body), "You're approving") || !strings.Contains(p.body, "Example Supplies Ltd") {
		e.t.Fatalf("the passkey page does not show the payment: %d %s\n%.3000s", p.status, p.url, p.body)
	}
	id := softRequestID(e.t, p)
	status, out, _ := b.softAssert(id, key, softTweak{})
	next, _ := out["redirect"].(string)
	if status != http.StatusOK || !strings.HasPrefix(next, "/login?id=") {
		e.t.Fatalf("verify: %d %v", status, out)
	}
	p = b.get(e.issuer + next)
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	checkIss(e.t, e, p)
	return a, r.code(p, a)
}

// redeem posts a code to the token endpoint with extra form values.
func (e *env) redeem(a authRequest, code string, extra url.Values) (int, map[string]any) {
	e.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {a.verifier}}
	for k, v := range extra {
		form[k] = v
	}
	status, out, _ := e.postForm("/oauth/token", form, payClient, paySecret)
	return status, out
}

// jwtClaims decodes a JWT's claims without checking it.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.40s", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// canonical is the canonical form of details JSON v (any JSON value).
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d, err := details.Parse(string(b))
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return d.String()
}

func mustCanonical(t *testing.T, raw string) string {
	t.Helper()
	d, err := details.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestRichAuthorizationRequests(t *testing.T) {
	t.Run("approved with a passkey, the tokens and introspection carry exactly the payment", func(t *testing.T) {
		e, r, key := rarEnv(t)
		a, code := e.payCode(e.browser(), r, key, bigPayment, nil)
		status, out := e.redeem(a, code, nil)
		if status != http.StatusOK {
			t.Fatalf("token: %d %v", status, out)
		}
		want := mustCanonical(t, bigPayment)
		if got := canonical(t, out["authorization_details"]); got != want {
			t.Fatalf("token response authorization_details %s, want %s", got, want)
		}
		at, _ := out["access_token"].(string)
		claims := jwtClaims(t, at)
		if got := canonical(t, claims["authorization_details"]); got != want || claims["acr"] != acrPHR {
			t.Fatalf("access token: details %s acr %v", got, claims["acr"])
		}
		status, in, _ := e.postForm("/oauth/introspect", url.Values{"token": {at}}, payClient, paySecret)
		if status != http.StatusOK || in["active"] != true || canonical(t, in["authorization_details"]) != want {
			t.Fatalf("introspection: %d %v", status, in)
		}
		ev := e.lastAudit(storage.EventStepUpTransaction)
		if ev.Outcome != "success" || ev.Details["committed"] != "true" || ev.Details["authorization_details"] != want {
			t.Fatalf("stepup.transaction: %+v", ev)
		}
	})

	t.Run("discovery lists the registered types", func(t *testing.T) {
		e, _, _ := rarEnv(t)
		types, _ := e.discovery()["authorization_details_types_supported"].([]any)
		if !slices.Contains(types, any(details.PaymentInitiation)) {
			t.Fatalf("authorization_details_types_supported %v", types)
		}
	})

	t.Run("a session already at phr approves each payment with the passkey again", func(t *testing.T) {
		e, r, key := rarEnv(t)
		b := e.browser()
		e.payCode(b, r, key, bigPayment, nil)
		// payCode fails unless the passkey page, showing the payment, comes
		// again for the second payment in the same session.
		e.payCode(b, r, key, bigPayment, nil)
	})

	t.Run("the token request may narrow the approved details, never change or widen them", func(t *testing.T) {
		e, r, key := rarEnv(t)
		two := "[" + strings.TrimSuffix(strings.TrimPrefix(bigPayment, "["), "]") + "," + otherPayment + "]"
		a, code := e.payCode(e.browser(), r, key, two, nil)
		widened := strings.Replace(bigPayment, "1250.00", "12500.00", 1)
		status, out := e.redeem(a, code, url.Values{"authorization_details": {widened}})
		if status != http.StatusBadRequest || out["error"] != details.ErrorCode {
			t.Fatalf("a changed amount at the token endpoint: %d %v", status, out)
		}
		if ev := e.lastAudit(storage.EventStepUpTransaction); ev.Outcome != "denied" || ev.Details["endpoint"] != "token" {
			t.Fatalf("the refusal is not audited: %+v", ev)
		}

		a, code = e.payCode(e.browser(), r, key, two, nil)
		status, out = e.redeem(a, code, url.Values{"authorization_details": {"[" + otherPayment + "]"}})
		if status != http.StatusOK {
			t.Fatalf("a narrowed token request: %d %v", status, out)
		}
		at, _ := out["access_token"].(string)
		if got, want := canonical(t, jwtClaims(t, at)["authorization_details"]), mustCanonical(t, "["+otherPayment+"]"); got != want {
			t.Fatalf("narrowed token carries %s, want %s", got, want)
		}
	})

	t.Run("a refresh narrows, never widens, and the family keeps what was approved", func(t *testing.T) {
		e, r, key := rarEnv(t)
		two := "[" + strings.TrimSuffix(strings.TrimPrefix(bigPayment, "["), "]") + "," + otherPayment + "]"
		a, code := e.payCode(e.browser(), r, key, two, url.Values{"scope": {"openid offline_access"}})
		status, out := e.redeem(a, code, nil)
		rt, _ := out["refresh_token"].(string)
		if status != http.StatusOK || rt == "" {
			t.Fatalf("token: %d %v", status, out)
		}
		refresh := func(raw string) (int, map[string]any) {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			if raw != "" {
				form.Set("authorization_details", raw)
			}
			status, out, _ := e.postForm("/oauth/token", form, payClient, paySecret)
			if next, _ := out["refresh_token"].(string); next != "" {
				rt = next
			}
			return status, out
		}
		if status, out := refresh("[" + otherPayment + "]"); status != http.StatusOK || canonical(t, out["authorization_details"]) != mustCanonical(t, "["+otherPayment+"]") {
			t.Fatalf("narrowing refresh: %d %v", status, out)
		}
		extra := `[{"type":"payment_initiation","instructedAmount":{"amount":"9.99","currency":"EUR"},"creditorName":"Someone Else"}]`
		if status, out := refresh(extra); status != http.StatusBadRequest || out["error"] != details.ErrorCode {
			t.Fatalf("widening refresh: %d %v", status, out)
		}
		if status, out := refresh(""); status != http.StatusOK || canonical(t, out["authorization_details"]) != mustCanonical(t, two) {
			t.Fatalf("a plain refresh after narrowing gets all that was approved: %d %v", status, out)
		}
	})

	t.Run("details changed in the browser beside a pushed request are refused and audited", func(t *testing.T) {
		e, r, _ := rarEnv(t)
		_, params := authParams(t, r, nil)
		params.Set("authorization_details", bigPayment)
		uri := e.mustPush(params, payClient, paySecret)
		tampered := strings.Replace(bigPayment, "1250.00", "12500.00", 1)
		p := e.browser().get(e.pushedURL(payClient, uri, url.Values{"authorization_details": {tampered}}))
		refusedPage(t, p)
		if ev := e.lastAudit(storage.EventStepUpTransaction); ev.Outcome != "denied" || ev.Details["endpoint"] != "authorize" {
			t.Fatalf("the refusal is not audited: %+v", ev)
		}
	})

	t.Run("malformed, unknown or unregistered details are invalid_authorization_details at PAR", func(t *testing.T) {
		e, r, _ := rarEnv(t)
		for name, raw := range map[string]string{
			"not JSON":          `[{"type":`,
			"not an array":      `{"type":"payment_initiation"}`,
			"unknown type":      `[{"type":"wire_everything"}]`,
			"required missing":  `[{"type":"payment_initiation","creditorName":"X"}]`,
			"an amount as text": `[{"type":"payment_initiation","instructedAmount":{"amount":"lots","currency":"EUR"},"creditorName":"X"}]`,
		} {
			_, params := authParams(t, r, nil)
			params.Set("authorization_details", raw)
			status, out, _ := e.push(params, payClient, paySecret)
			if status != http.StatusBadRequest || out["error"] != details.ErrorCode {
				t.Errorf("%s: %d %v", name, status, out)
			}
		}
		// The env's rp client is not registered for payment_initiation.
		other := e.rp(rpClient, e.rpSecret)
		_, params := authParams(t, other, nil)
		params.Set("authorization_details", bigPayment)
		if status, out, _ := e.push(params, rpClient, e.rpSecret); status != http.StatusBadRequest || out["error"] != details.ErrorCode {
			t.Errorf("a client not registered for the type: %d %v", status, out)
		}
	})
}
