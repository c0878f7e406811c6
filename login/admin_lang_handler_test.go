package login_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// adminConsole is a fixture with passkeys off and the console at mfa,
// alice an administrator signed in with her password and code in b.
func adminConsole(t *testing.T, opts ...option) (*fixture, *browser) {
	t.Helper()
	f := newFixture(t, append([]option{withAdminACR(acrMFA)}, opts...)...)
	f.makeAdmin(aliceID)
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	f.signInMFA(b, alice, alicePass, secret)
	return f, b
}

// consoleData are the texts of the console's pages that are data, not
// messages: names, IDs, addresses, acr values, technical tokens (an
// algorithm, a grant type, an event type) and the English date layout the
// pseudo-locale keeps.
func consoleData(f *fixture) []string {
	data := []string{"Keystep", "Acme Payroll", "Acme HR", "Acme Shop", appClient, "hr", "shop", accountClient, "https://rp.example/cb",
		alice, bob, aliceID, bobID, homeIP, "TestBrowser/1.0", acrMFA, "urn:keystep:acr:sfa", "urn:keystep:acr:phr", "phrh", "phr",
		"http://schemas.openid.net/pape/policies/2007/06/multi-factor",
		"http://schemas.openid.net/pape/policies/2007/06/phishing-resistant", "FAPI 2.0", "PAR", "DPoP",
		t0.Format("Jan"), f.clock.Now().Format("Jan"), "UTC",
		// The audit log's event names are eventText's, the portal's
		// messages (events.go): translated there.
		"Signed in", "Extra check", "Password entered"}
	for _, e := range storage.EventTypes() {
		data = append(data, string(e))
	}
	return data
}

// eventDetails are an audit event's stored details: data.
var eventDetails = regexp.MustCompile(`(?s)<dl class="kv small">.*?</dl>`)

// consoleLeft is untranslated for a console page, less the audit events'
// stored details.
func consoleLeft(t *testing.T, body string, allow ...string) []string {
	t.Helper()
	return untranslated(t, eventDetails.ReplaceAllString(body, ""), allow...)
}

// TestAdminConsoleIsTranslated opens every page of the console in the
// en-XA pseudo-locale: no text of any of them is left untranslated, but
// for the data on it (consoleData) and the tokens named per page.
func TestAdminConsoleIsTranslated(t *testing.T) {
	f, b := adminConsole(t, withPseudoLocales(t), withMail())
	// A pending recovery request, for its row and its decision form.
	f.verify(bobID, "bob@example.com")
	if err := f.store.CreateRecoveryRequest(f.ctx(), storage.RecoveryRequest{ID: "rq-1", UserID: bobID, Status: storage.RecoveryPending,
		CreatedAt: f.clock.Now(), EligibleAt: f.clock.Now().Add(72 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Signing keys in two states, for the keys table and the overview.
	for _, k := range []storage.SigningKey{
		{ID: "k-signing", Algorithm: "ES256", CreatedAt: t0, ActiveAt: t0},
		{ID: "k-next", Algorithm: "ES256", CreatedAt: t0, ActiveAt: f.clock.Now().Add(time.Hour)},
	} {
		if err := f.store.CreateSigningKey(f.ctx(), k); err != nil {
			t.Fatal(err)
		}
	}
	b.lang = "en-XA"
	data := consoleData(f)
	pages := []struct {
		path   string
		status int
		tokens []string // technical tokens the page shows as they are
	}{
		{"/admin?notice=client-saved", http.StatusOK, []string{"ES256"}},
		{"/admin/clients", http.StatusOK, []string{"client_secret_basic"}},
		{"/admin/clients?q=nothing-like-this", http.StatusOK, []string{"nothing-like-this"}},
		{"/admin/clients/" + appClient, http.StatusOK, []string{"client_secret_basic", "client_secret_post", "private_key_jwt",
			"authorization_code", "refresh_token", "client_credentials", "ES256", "RS256", "EdDSA", "acr", "10s", "payment_initiation", "https://app.example/backchannel-logout"}},
		{"/admin/clients/new", http.StatusOK, []string{"client_secret_basic", "client_secret_post", "private_key_jwt",
			"authorization_code", "refresh_token", "client_credentials", "ES256", "RS256", "EdDSA", "10s", "payment_initiation", "https://app.example/backchannel-logout"}},
		// The error page is the shared one (error.html).
		{"/admin/clients/no-such-client", http.StatusNotFound, []string{"Reference for your administrator:"}},
		{"/admin/users", http.StatusOK, []string{"example.com"}},
		{"/admin/users/" + bobID, http.StatusOK, []string{"example.com", "user.", "account.", "admin."}},
		{"/admin/users/" + aliceID, http.StatusOK, []string{"Phone", "user.", "account.", "admin.", "session."}},
		{"/admin/policy", http.StatusOK, []string{"acr", "(acr_values)", "urn:keystep", "new_device", "new_network", "first_sign_in",
			"ip_denied", "ip_suspicious", "ip_failures", "account_failures", "credential_stuffing", "impossible_travel", "sensitive_client",
			"sensitive_scope", "session_drift", "openid", "totp", "webauthn", "recovery", "password"}},
		{"/admin/policy?user=" + bob + "&client=" + appClient + "&ip=" + homeIP + "&scope=openid#explain", http.StatusOK, []string{"acr", "(acr_values)",
			"urn:keystep", "new_device", "new_network", "first_sign_in", "ip_denied", "ip_suspicious", "ip_failures", "account_failures",
			"credential_stuffing", "impossible_travel", "sensitive_client", "sensitive_scope", "session_drift", "openid", "totp", "webauthn", "recovery", "password",
			// A risk signal's reason is the risk engine's message (risk.Reason),
			// translated with the sign-in pages'.
			"This is your first sign-in."}},
		{"/admin/audit", http.StatusOK, []string{"user.", "account.", "admin.", "session.", "login.", "token.", "client.", "policy.", "recovery."}},
		{"/admin/audit?from=yesterday", http.StatusBadRequest, []string{"yesterday"}},
		{"/admin/keys", http.StatusOK, []string{"k-signing", "k-next", "ES256"}},
		{"/admin/outbox", http.StatusOK, []string{"https://edr.example.com/jwks", "https://edr.example.com"}},
		{"/admin/recovery", http.StatusOK, []string{"example.com"}},
	}
	for _, p := range pages {
		got := b.get(p.path)
		if got.status != p.status {
			t.Errorf("%s: status %d, want %d\n%.1500s", p.path, got.status, p.status, got.body)
			continue
		}
		if !strings.Contains(got.body, `<html lang="en-XA"`) {
			t.Errorf("%s: not in en-XA", p.path)
		}
		if left := consoleLeft(t, got.body, append(append([]string{}, data...), p.tokens...)...); len(left) > 0 {
			t.Errorf("%s: untranslated: %q", p.path, left)
		}
	}
	// A page composed after a form: a problem of the console's own.
	got := b.post("/admin/keys/rotate", url.Values{"activate_in": {"soon"}})
	if left := consoleLeft(t, got.body, append(data, "ES256", "RS256", "EdDSA")...); got.status != http.StatusBadRequest || len(left) > 0 {
		t.Errorf("rotate with a bad time: %d, untranslated %q", got.status, left)
	}

	// Bob is no administrator: the refusal speaks his language too.
	bobSecret := f.enrollTOTP(bobID)
	nb := f.browser()
	f.signInMFA(nb, bob, bobPass, bobSecret)
	nb.lang = "en-XA"
	got = nb.get("/admin")
	if got.status != http.StatusForbidden {
		t.Fatalf("bob at the console: %d", got.status)
	}
	if left := consoleLeft(t, got.body, data...); len(left) > 0 {
		t.Errorf("denied: untranslated %q", left)
	}
}

// TestAdminConsoleInGerman: a browser that asks for German gets the
// clients page in German, numbers and words alike; English stays the
// default.
func TestAdminConsoleInGerman(t *testing.T) {
	f, b := adminConsole(t)
	b.lang = "de-DE,de;q=0.9,en;q=0.5"
	got := b.get("/admin/clients?notice=client-created")
	if got.status != http.StatusOK {
		t.Fatalf("clients: %d", got.status)
	}
	for _, want := range []string{`<html lang="de"`, "<h1>Clients</h1>", "Neuer Client", "Client suchen", `placeholder="ID, Name oder Redirect-URI"`,
		`data-label="Mindest-acr"`, "Der Client wurde erstellt.", "Abmelden", "Ihr Konto", "eigene App"} {
		if !strings.Contains(got.body, want) {
			t.Errorf("German clients page lacks %q:\n%.3000s", want, got.body)
		}
	}
	for _, english := range []string{"Find a client", "New client", "Sign out", "The client was created."} {
		if strings.Contains(got.body, english) {
			t.Errorf("German clients page still says %q", english)
		}
	}
	b.lang = ""
	if got := b.get("/admin/clients"); !strings.Contains(got.body, "Find a client") {
		t.Errorf("without Accept-Language the console is not English:\n%.2000s", got.body)
	}
	_ = f
}
