package conformance

import (
	"context"
	"testing"

	"github.com/keystep/keystep/conformance/chrome"
	"github.com/keystep/keystep/storage"
)

// The client form's PAR, DPoP, profile and back-channel logout settings
// (issues 18 and 20) as an admin sees them, looked at and saved as
// screenshots at every size: a FAPI 2.0 client's page with what the
// profile implies, and a form refused for a bad logout URL.
func TestBrowserAdminClientProfileAndLogout(t *testing.T) {
	c := newTab(t)
	e := newEnv(t, onLocalhost, adminAt(acrMFA))
	e.addAdmin()
	secret := e.enrollTOTP(adaID)
	ctx := context.Background()
	bank := storage.Client{ID: "bank", Name: "Acme Bank", RedirectURIs: []string{rpRedirect}, AuthMethod: "private_key_jwt",
		GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "ES256", AccessTokenFormat: "jwt", JWKS: consoleJWKS,
		RequirePKCE: true, RequirePAR: true, DPoPBoundAccessTokens: true, Profile: storage.ProfileFAPI2,
		BackchannelLogoutURI: "https://bank.example/backchannel-logout", BackchannelLogoutSessionRequired: true,
		CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}
	if err := e.store.CreateClient(ctx, bank); err != nil {
		t.Fatal(err)
	}

	c.Open(e.issuer + "/admin")
	c.TypeIn("#username", ada)
	c.TypeIn("#password", adaPass)
	c.Follow(chrome.SignInButton)
	c.TypeIn("#code", e.totp(secret))
	c.Follow("form[action='/login/otp'] button[type=submit]")
	c.See("Admin console")

	c.Open(e.issuer + "/admin/clients")
	c.See("FAPI 2.0")
	c.lookAdmin("admin-clients-fapi2")
	c.Open(e.issuer + "/admin/clients/bank")
	c.See("With FAPI 2.0, Keystep holds this app to all of this")
	c.See("Include the session ID (sid)")
	c.lookAdmin("admin-client-fapi2")

	// A plain-http logout URL on a public host is refused, next to the field.
	c.fill("#backchannel_logout_uri", "http://bank.example/bc")
	c.Follow("form.client-form button[type=submit]")
	c.See("must use https (http only for localhost)")
	c.lookAdmin("admin-client-logout-invalid")
	if got, _ := e.store.ClientByID(ctx, "bank"); got.BackchannelLogoutURI != bank.BackchannelLogoutURI {
		t.Errorf("a refused form changed the URL to %q", got.BackchannelLogoutURI)
	}
}
