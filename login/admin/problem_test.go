package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/i18n"
)

// TestProblemMessagesStayEnglish: the CLI and the admin API show a
// problem's Message, and its JSON, exactly as before problems had keys;
// the console translates the key and its arguments, an argument that is
// a message (a weak key's reason) too.
func TestProblemMessagesStayEnglish(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ec.PublicKey, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	spec := ClientSpec{ID: "bad id", Profile: "fapi2", AuthMethod: "private_key_jwt", JWKS: set, IDTokenAlg: "RS256",
		GrantTypes:             []string{"authorization_code", "implicit"},
		RedirectURIs:           []string{"http://rp.example/cb"},
		PostLogoutRedirectURIs: []string{"https://rp.example/bye#top"},
	}
	got := map[string]string{}
	var weak Problem
	for _, p := range ValidateClient(spec, stepup.DefaultPolicy(), "") {
		got[p.Message] = p.Field
		if p.Field == "jwks" {
			weak = p
		}
	}
	for _, p := range (NewUser{Username: "ok", Email: "nope", Password: "long enough"}).Validate() {
		got[p.Message] = p.Field
	}
	for _, p := range (ReceiverSpec{Issuer: "http://edr.example", JWKSURI: "https://edr.example/jwks", Audience: "k"}).check() {
		got[p.Message] = p.Field
	}
	for msg, field := range map[string]string{
		`client ID "bad id": use at most 128 characters, without spaces or ':'`:                      "id",
		`unknown grant type "implicit" (want authorization_code, refresh_token, client_credentials)`: "grant_types",
		`redirect URI "http://rp.example/cb" must use https (http only for localhost)`:               "redirect_uris",
		`post-logout redirect URI "https://rp.example/bye#top" must not have a fragment`:             "post_logout_redirect_uris",
		`JWKS: key 0: a FAPI 2.0 client's EC key must be on P-256, not P-384`:                        "jwks",
		`a FAPI 2.0 client's ID tokens must be signed with ES256 or EdDSA, not RS256`:                "id_token_alg",
		`"nope" is not an email address.`:                                                            "email",
		`issuer: "http://edr.example": https only (http for loopback hosts)`:                         "receiver",
	} {
		if got[msg] != field {
			t.Errorf("no problem %q on %s; got %v", msg, field, got)
		}
	}

	raw, err := json.Marshal(weak)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"field":"jwks","message":"JWKS: key 0: a FAPI 2.0 client's EC key must be on P-256, not P-384"}`; string(raw) != want {
		t.Errorf("JSON %s, want %s", raw, want)
	}
	if weak.Key != "JWKS: key %d: %s" {
		t.Errorf("key %q", weak.Key)
	}
	// In the en-XA pseudo-locale each message is bracketed: the nested
	// one (the key's problem) is translated inside the outer one.
	cats, err := i18n.Load(i18n.Options{Pseudo: true})
	if err != nil {
		t.Fatal(err)
	}
	xa := cats.Printer(i18n.PseudoAccented)
	if got := weak.In(xa); !strings.HasPrefix(got, "[") || strings.Count(got, "[") != 2 || !strings.Contains(got, "P-384") || strings.Contains(got, "must be on") {
		t.Errorf("translated %q, want a bracketed message holding a bracketed one", got)
	}
	// A diagnostic without a key (policy.Compile's) is shown as it is.
	diag := Problems(fmt.Errorf("levels[0].acr: required"))
	if diff := cmp.Diff([]string{"levels[0].acr", "levels[0].acr: required"}, []string{diag[0].Field, diag[0].In(xa)}); diff != "" {
		t.Errorf("diagnostic (-want +got):\n%s", diff)
	}
}
