package idp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keystep/keystep/storage"
)

// RFC 9207 §2: iss goes onto authorization responses to the client, and
// only there.
func TestWithIss(t *testing.T) {
	const iss = "https://id.example"
	for _, tt := range []struct {
		name, loc, want string
	}{
		{"a code response", "https://rp.example/cb?code=c&state=s", "https://rp.example/cb?code=c&iss=https%3A%2F%2Fid.example&state=s"},
		{"an error response", "https://rp.example/cb?error=access_denied", "https://rp.example/cb?error=access_denied&iss=https%3A%2F%2Fid.example"},
		{"a registered query kept", "com.example.app:/cb?tenant=1&code=c", "com.example.app:/cb?code=c&iss=https%3A%2F%2Fid.example&tenant=1"},
		{"the login page", "/login?id=abc", "/login?id=abc"},
		{"an absolute URL that is no response", "https://rp.example/bye?state=s", "https://rp.example/bye?state=s"},
		{"an iss already there is replaced", "https://rp.example/cb?code=c&iss=evil", "https://rp.example/cb?code=c&iss=https%3A%2F%2Fid.example"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := withIss(tt.loc, iss); got != tt.want {
				t.Fatalf("withIss(%q) = %q, want %q", tt.loc, got, tt.want)
			}
		})
	}
}

// The discovery members the library has no field for are flattened into
// the document; a name clash would drop both silently.
func TestDiscoveryDocumentFlattens(t *testing.T) {
	doc := discoveryDocument{
		DiscoveryConfiguration: &oidc.DiscoveryConfiguration{Issuer: "https://id.example", RequestParameterSupported: true},
		discoveryExtra: discoveryExtra{PushedAuthorizationRequestEndpoint: "https://id.example/oauth/par",
			RequirePushedAuthorizationRequests: true, AuthorizationResponseIssParameterSupported: true},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"issuer": "https://id.example", "request_parameter_supported": true,
		"pushed_authorization_request_endpoint": "https://id.example/oauth/par",
		"require_pushed_authorization_requests": true, "authorization_response_iss_parameter_supported": true,
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
}

func TestParRequired(t *testing.T) {
	for _, tt := range []struct {
		name       string
		c          storage.Client
		serverWide bool
		want       bool
	}{
		{"an ordinary client", storage.Client{}, false, false},
		{"a client that asked for it", storage.Client{RequirePAR: true}, false, true},
		{"a fapi2 client", storage.Client{Profile: storage.ProfileFAPI2}, false, true},
		{"any client when the server requires it", storage.Client{}, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (client{Client: tt.c}).parRequired(tt.serverWide); got != tt.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

// A request object's claims become the form values they stand for.
func TestRequestObjectParams(t *testing.T) {
	for _, tt := range []struct {
		name, claim, want string
	}{
		{"a string", `"openid profile"`, "openid profile"},
		{"max_age", `300`, "300"},
		{"the claims parameter", `{"id_token":{"acr":{"essential":true,"values":["phr"]}}}`, `{"id_token":{"acr":{"essential":true,"values":["phr"]}}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var v map[string]any
			dec := json.NewDecoder(strings.NewReader(`{"v":` + tt.claim + `}`))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			got, err := paramValue(v["v"])
			if err != nil || got != tt.want {
				t.Fatalf("paramValue = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if !audienceHas([]any{"x", "https://id.example"}, "https://id.example") || audienceHas("https://id.example/", "https://id.example") {
		t.Fatal("audienceHas")
	}
}
