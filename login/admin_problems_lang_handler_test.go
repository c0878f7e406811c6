package login_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/storage"
)

// badClient is a new-client form with several problems: an ID with a
// space, a redirect URI over plain http, and a grant type Keystep does not
// know.
func badClient() url.Values {
	return url.Values{"id": {"bad id"}, "name": {"Bad"}, "type": {"confidential"}, "auth_method": {"client_secret_basic"},
		"redirect_uris": {"http://rp.example/cb"}, "grant_types": {"authorization_code", "implicit"},
		"id_token_alg": {"ES256"}, "access_token_format": {"jwt"}}
}

// badUser is a new-user form with a problem in every field.
func badUser() url.Values {
	return url.Values{"username": {"bad user"}, "email": {"nope"}, "password": {"short"}}
}

// clientFormTokens are the technical tokens the client form shows as they are.
var clientFormTokens = []string{"client_secret_basic", "client_secret_post", "private_key_jwt",
	"authorization_code", "refresh_token", "client_credentials", "ES256", "RS256", "EdDSA", "acr", "10s", "payment_initiation",
	"https://app.example/backchannel-logout"}

// TestAdminProblemsAreTranslated: the admin service's validation problems
// (login/admin) speak the console's language: none is left in English in
// the en-XA pseudo-locale, on the client form, the new-user form, the
// transmitter form and the policy page's checks of a stored client, and a
// German console reads them in German, the values in them as typed.
func TestAdminProblemsAreTranslated(t *testing.T) {
	f, b := adminConsole(t, withPseudoLocales(t))
	// A client stored before today's rules (its redirect URI is plain
	// http): the policy page's checks list its problem.
	if err := f.store.CreateClient(f.ctx(), storage.Client{ID: "legacy", Name: "Legacy", RedirectURIs: []string{"http://legacy.example/cb"},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, IDTokenAlg: "ES256", AccessTokenFormat: "jwt",
		CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	b.lang = "en-XA"
	data := consoleData(f)

	got := b.post("/admin/clients", badClient())
	if got.status != http.StatusBadRequest {
		t.Fatalf("invalid client: status %d\n%.2000s", got.status, got.body)
	}
	text := html.UnescapeString(got.body)
	for _, value := range []string{`"bad id"`, `"http://rp.example/cb"`, `"implicit"`} {
		if !strings.Contains(text, value) {
			t.Errorf("invalid client: no problem names %s", value)
		}
	}
	if left := consoleLeft(t, got.body, append(append(data, clientFormTokens...), "bad id", "Bad", "http://rp.example/cb", "implicit")...); len(left) > 0 {
		t.Errorf("invalid client: untranslated %q", left)
	}

	got = b.post("/admin/users", badUser())
	if got.status != http.StatusBadRequest {
		t.Fatalf("invalid user: status %d\n%.2000s", got.status, got.body)
	}
	if !strings.Contains(html.UnescapeString(got.body), `"nope"`) {
		t.Errorf("invalid user: no problem names the email address")
	}
	if left := consoleLeft(t, got.body, append(data, "example.com", "bad user", "nope")...); len(left) > 0 {
		t.Errorf("invalid user: untranslated %q", left)
	}

	got = b.post("/admin/outbox/receivers", url.Values{"issuer": {"http://edr.example"}, "jwks_uri": {"https://edr.example/jwks"}, "jwks": {`{"keys":[]}`}})
	if got.status != http.StatusBadRequest {
		t.Fatalf("invalid transmitter: status %d\n%.2000s", got.status, got.body)
	}
	if left := consoleLeft(t, got.body, append(data, "Reference for your administrator:", "http://edr.example", "https://edr.example/jwks")...); len(left) > 0 {
		t.Errorf("invalid transmitter: untranslated %q", left)
	}

	got = b.get("/admin/policy")
	if !strings.Contains(html.UnescapeString(got.body), `"http://legacy.example/cb"`) {
		t.Errorf("policy page: the stored client's problem is not listed\n%.3000s", got.body)
	}
	if left := consoleLeft(t, got.body, append(data, "Legacy", "legacy", "http://legacy.example/cb", "acr", "(acr_values)", "urn:keystep", "new_device",
		"new_network", "first_sign_in", "ip_denied", "ip_suspicious", "ip_failures", "account_failures", "credential_stuffing",
		"impossible_travel", "sensitive_client", "sensitive_scope", "session_drift", "openid", "totp", "webauthn", "recovery", "password")...); len(left) > 0 {
		t.Errorf("policy page: untranslated %q", left)
	}

	// In German: the problems read in German, the values as typed; the
	// English text is what the CLI and the admin API say.
	b.lang = "de"
	for _, c := range []struct {
		path          string
		form          url.Values
		want, english string
	}{
		{"/admin/clients", badClient(), `Redirect-URI "http://rp.example/cb" muss https verwenden (http nur für localhost)`, "must use https"},
		{"/admin/clients", badClient(), `Unbekannter Grant-Typ "implicit"`, "unknown grant type"},
		{"/admin/users", badUser(), `"nope" ist keine E-Mail-Adresse.`, "is not an email address"},
		// Several problems in one message of the error page: each in German.
		{"/admin/outbox/receivers", url.Values{"issuer": {"http://edr.example"}, "jwks": {`{"keys":[]}`}},
			`issuer: "http://edr.example": nur https (http für Loopback-Hosts); JWKS: keine Schlüssel; audience: erforderlich`, "https only"},
	} {
		got := b.post(c.path, c.form)
		text := html.UnescapeString(got.body)
		if got.status != http.StatusBadRequest || !strings.Contains(text, c.want) || strings.Contains(text, c.english) {
			t.Errorf("%s in German: status %d, want %q and not %q\n%.3000s", c.path, got.status, c.want, c.english, got.body)
		}
	}
}
