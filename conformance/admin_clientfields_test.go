package conformance

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/keystep/keystep/storage"
)

// The console's client form sets the PAR, DPoP, security profile and
// back-channel logout settings (issues 18 and 20), checks them with the
// same rules as the CLI and apply, and shows them and what the FAPI 2.0
// profile implies on the client's page.

const consoleJWKS = `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func TestAdminClientFormSetsTheFAPI2Profile(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)

	// The new-client form offers the settings, off.
	p := b.get(e.issuer + "/admin/clients/new")
	for _, want := range []string{`<option value="fapi2">FAPI 2.0</option>`, `name="require_pushed_authorization_requests">`, `name="dpop_bound_access_tokens">`,
		`name="backchannel_logout_uri" type="url" value=""`, `name="backchannel_logout_session_required">`, "Include the session ID (sid)"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the new-client form lacks %s", want)
		}
	}

	// A FAPI 2.0 client with a secret and RS256 is refused with every
	// problem, and nothing is saved.
	f := newClientForm("bank")
	f.Set("profile", "fapi2")
	f.Set("id_token_alg", "RS256")
	f.Set("grant_types", "authorization_code")
	f.Set("backchannel_logout_uri", "http://bank.example/bc")
	before := e.auditCount()
	p = b.post("/admin/clients", f)
	if p.status != http.StatusBadRequest {
		t.Fatalf("status %d\n%.3000s", p.status, p.body)
	}
	for _, want := range []string{
		"Fix these 3 problems",
		"must authenticate with private_key_jwt",
		"must be signed with ES256 or EdDSA, not RS256",
		"http://bank.example/bc&#34; must use https",
		`<option value="fapi2" selected>FAPI 2.0</option>`,
		`value="http://bank.example/bc"`,
		`aria-describedby="alg-hint alg-error" aria-invalid="true"`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the refused form does not show %q", want)
		}
	}
	if _, err := e.store.ClientByID(context.Background(), "bank"); err == nil {
		t.Error("a refused client was saved")
	}
	if n := e.auditCount(); n != before {
		t.Errorf("%d audit rows for a refused form", n-before)
	}

	// With keys and ES256 it is saved, with what the profile implies on.
	f.Set("auth_method", "private_key_jwt")
	f.Set("jwks", consoleJWKS)
	f.Set("id_token_alg", "ES256")
	f.Set("backchannel_logout_uri", "https://bank.example/bc")
	f.Set("backchannel_logout_session_required", "on")
	p = b.post("/admin/clients", f)
	if p.status != http.StatusOK {
		t.Fatalf("create: %d\n%.3000s", p.status, p.body)
	}
	c, err := e.store.ClientByID(context.Background(), "bank")
	if err != nil || c.Profile != storage.ProfileFAPI2 || !c.RequirePAR || !c.DPoPBoundAccessTokens || !c.RequirePKCE ||
		c.BackchannelLogoutURI != "https://bank.example/bc" || !c.BackchannelLogoutSessionRequired || c.AuthMethod != "private_key_jwt" {
		t.Fatalf("stored %+v %v", c, err)
	}
	p = b.get(e.issuer + "/admin/clients/bank")
	for _, want := range []string{
		`<option value="fapi2" selected>FAPI 2.0</option>`,
		"With FAPI 2.0, Keystep holds this app to all of this",
		"Only pushed sign-in requests (PAR)",
		"Authorization codes valid for 60 seconds at most",
		`name="require_pushed_authorization_requests" checked>`,
		`name="dpop_bound_access_tokens" checked>`,
		"On with FAPI 2.0.",
		`value="https://bank.example/bc"`,
		`name="backchannel_logout_session_required" checked>`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the client's page does not show %q", want)
		}
	}
	if t.Failed() {
		t.Logf("%.8000s", p.body)
	}
	if p := b.get(e.issuer + "/admin/clients"); !strings.Contains(p.body, `<span class="badge">FAPI 2.0</span>`) {
		t.Errorf("the clients list does not mark the FAPI 2.0 client:\n%.3000s", p.body)
	}
}

// The switches work on their own too, and the implied list shows only with
// the profile.
func TestAdminClientFormSetsPARDPoPAndBackchannelLogout(t *testing.T) {
	e, secret := adminEnv(t)
	b := e.browser()
	b.adminLogin(secret)
	f := newClientForm(rpClient)
	f.Set("require_pushed_authorization_requests", "on")
	f.Set("dpop_bound_access_tokens", "on")
	f.Set("backchannel_logout_session_required", "on")
	// sid without a URL is refused.
	if p := b.post("/admin/clients/"+rpClient, f); p.status != http.StatusBadRequest || !strings.Contains(p.body, "needs a back-channel logout URI") {
		t.Fatalf("sid without a URL: %d\n%.3000s", p.status, p.body)
	}
	f.Set("backchannel_logout_uri", " http://localhost:9000/bc ")
	if p := b.post("/admin/clients/"+rpClient, f); !strings.Contains(p.body, "Your changes were saved") {
		t.Fatalf("save:\n%.3000s", p.body)
	}
	c, _ := e.store.ClientByID(context.Background(), rpClient)
	if !c.RequirePAR || !c.DPoPBoundAccessTokens || c.Profile != "" || c.BackchannelLogoutURI != "http://localhost:9000/bc" || !c.BackchannelLogoutSessionRequired {
		t.Fatalf("stored %+v", c)
	}
	ev := e.lastEvent("admin.client_updated")
	if !strings.Contains(ev.Details["after"], `"dpop_bound_access_tokens":true`) || !strings.Contains(ev.Details["after"], `"backchannel_logout_uri":"http://localhost:9000/bc"`) {
		t.Errorf("audit after %s", ev.Details["after"])
	}
	p := b.get(e.issuer + "/admin/clients/" + rpClient)
	if !strings.Contains(p.body, `name="require_pushed_authorization_requests" checked>`) || strings.Contains(p.body, "With FAPI 2.0") || strings.Contains(p.body, "On with FAPI 2.0.") {
		t.Errorf("the client's page:\n%.8000s", p.body)
	}
	// Unticked, they are off again.
	f.Del("dpop_bound_access_tokens")
	b.post("/admin/clients/"+rpClient, f)
	if c, _ := e.store.ClientByID(context.Background(), rpClient); c.DPoPBoundAccessTokens || !c.RequirePAR {
		t.Errorf("after unticking DPoP %+v", c)
	}
}
