package admin

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/stepup"
)

func TestValidateRedirectURI(t *testing.T) {
	tests := []struct {
		uri    string
		native bool
		want   string // "" for valid
	}{
		{"https://rp.example/cb", false, ""},
		{"https://rp.example/cb?x=1", false, ""},
		{"http://localhost:3000/cb", false, ""},
		{"http://127.0.0.1/cb", false, ""},
		{"http://[::1]:8080/cb", false, ""},
		{"com.example.app:/cb", true, ""},
		{"http://rp.example/cb", false, "must use https"},
		{"https://rp.example/cb#x", false, "fragment"},
		{"https://rp.example/cb#", false, "fragment"},
		{"/cb", false, "absolute"},
		{"https:///cb", false, "absolute"},
		{"com.example.app:/cb", false, "absolute"},
		{"myapp:/cb", true, "must use https"},
		{"ftp://rp.example/cb", false, "must use https"},
	}
	for _, tt := range tests {
		err := ValidateRedirectURI(tt.uri, tt.native)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q (native %v): %v, want valid", tt.uri, tt.native, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q (native %v): %v, want an error saying %q", tt.uri, tt.native, err, tt.want)
		}
	}
}

const ecJWKS = `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func TestValidateClient(t *testing.T) {
	p := stepup.DefaultPolicy()
	good := ClientSpec{ID: "rp", RedirectURIs: []string{"https://rp.example/cb"}}
	tests := []struct {
		name   string
		change func(*ClientSpec)
		fields []string // the fields with problems, in order
	}{
		{"a confidential client with the defaults is valid", func(*ClientSpec) {}, nil},
		{"a public client is valid", func(s *ClientSpec) { s.Public = true }, nil},
		{"a private_key_jwt client is valid", func(s *ClientSpec) { s.JWKS = json.RawMessage(ecJWKS) }, nil},
		{"a client_credentials client needs no redirect URI", func(s *ClientSpec) {
			s.RedirectURIs, s.GrantTypes = nil, []string{"client_credentials"}
		}, nil},
		{"an alias is a valid minimum", func(s *ClientSpec) { s.MinACR = stepup.PAPEMultiFactor }, nil},
		{"no ID", func(s *ClientSpec) { s.ID = "" }, []string{"id"}},
		{"an ID with a colon", func(s *ClientSpec) { s.ID = "a:b" }, []string{"id"}},
		{"the built-in ID", func(s *ClientSpec) { s.ID = "keystep-account" }, []string{"id"}},
		{"no redirect URI for the code flow", func(s *ClientSpec) { s.RedirectURIs = nil }, []string{"redirect_uris"}},
		{"a redirect URI twice", func(s *ClientSpec) { s.RedirectURIs = []string{"https://a/cb", "https://a/cb"} }, []string{"redirect_uris"}},
		{"a bad post-logout URI", func(s *ClientSpec) { s.PostLogoutRedirectURIs = []string{"http://rp.example/"} }, []string{"post_logout_redirect_uris"}},
		{"refresh tokens without the code flow", func(s *ClientSpec) { s.GrantTypes = []string{"refresh_token", "client_credentials"} }, []string{"grant_types"}},
		{"a public client with client_credentials", func(s *ClientSpec) {
			s.Public, s.GrantTypes = true, []string{"authorization_code", "client_credentials"}
		}, []string{"grant_types"}},
		{"a public client with a secret method", func(s *ClientSpec) { s.Public, s.AuthMethod = true, "client_secret_basic" }, []string{"auth_method"}},
		{"a confidential client with none", func(s *ClientSpec) { s.AuthMethod = "none" }, []string{"auth_method"}},
		{"private_key_jwt without keys", func(s *ClientSpec) { s.AuthMethod = "private_key_jwt" }, []string{"jwks"}},
		{"keys with a secret method", func(s *ClientSpec) { s.AuthMethod, s.JWKS = "client_secret_post", json.RawMessage(ecJWKS) }, []string{"jwks"}},
		{"an empty key set", func(s *ClientSpec) { s.JWKS = json.RawMessage(`{"keys":[]}`) }, []string{"jwks"}},
		{"a rate limit of its own is valid", func(s *ClientSpec) { s.RateLimit = 5000 }, nil},
		{"a negative rate limit", func(s *ClientSpec) { s.RateLimit = -1 }, []string{"rate_limit"}},
		{"a rate limit over the maximum", func(s *ClientSpec) { s.RateLimit = MaxRateLimit + 1 }, []string{"rate_limit"}},
		{"a rate limit for a public client, which never authenticates", func(s *ClientSpec) { s.Public, s.RateLimit = true, 50 }, []string{"rate_limit"}},
		{"a refresh reuse interval of none is valid", func(s *ClientSpec) { s.RefreshReuseInterval = "0s" }, nil},
		{"a refresh reuse interval that is no duration", func(s *ClientSpec) { s.RefreshReuseInterval = "soon" }, []string{"refresh_reuse_interval"}},
		{"a refresh reuse interval over a minute", func(s *ClientSpec) { s.RefreshReuseInterval = "2m" }, []string{"refresh_reuse_interval"}},
		{"a negative refresh reuse interval", func(s *ClientSpec) { s.RefreshReuseInterval = "-1s" }, []string{"refresh_reuse_interval"}},
		{"a fapi2 client with private_key_jwt and ES256 is valid", func(s *ClientSpec) {
			s.Profile, s.JWKS, s.IDTokenAlg = "fapi2", json.RawMessage(ecJWKS), "ES256"
		}, nil},
		{"a fapi2 client with EdDSA is valid", func(s *ClientSpec) {
			s.Profile, s.JWKS, s.IDTokenAlg = "fapi2", json.RawMessage(ecJWKS), "EdDSA"
		}, nil},
		{"a fapi2 client with keys takes ES256 and private_key_jwt by default", func(s *ClientSpec) {
			s.Profile, s.JWKS = "fapi2", json.RawMessage(ecJWKS)
		}, nil},
		{"profile none is no profile", func(s *ClientSpec) { s.Profile = "none" }, nil},
		{"an unknown profile", func(s *ClientSpec) { s.Profile = "fapi1" }, []string{"profile"}},
		{"a fapi2 client without keys", func(s *ClientSpec) { s.Profile = "fapi2" }, []string{"jwks"}},
		{"a fapi2 client with a secret and RS256", func(s *ClientSpec) {
			s.Profile, s.AuthMethod, s.IDTokenAlg = "fapi2", "client_secret_basic", "RS256"
		}, []string{"profile", "id_token_alg"}},
		{"a public fapi2 client", func(s *ClientSpec) { s.Profile, s.Public = "fapi2", true }, []string{"profile"}},
		{"a back-channel logout URI with sid is valid", func(s *ClientSpec) {
			s.BackchannelLogoutURI, s.BackchannelLogoutSessionRequired = "https://rp.example/logout?from=keystep", true
		}, nil},
		{"a back-channel logout URI on plain http", func(s *ClientSpec) { s.BackchannelLogoutURI = "http://rp.example/logout" }, []string{"backchannel_logout_uri"}},
		{"sid without a back-channel logout URI", func(s *ClientSpec) { s.BackchannelLogoutSessionRequired = true }, []string{"backchannel_logout_session_required"}},
		{"a confidential client_credentials client may be granted the admin API", func(s *ClientSpec) {
			s.GrantTypes, s.AdminAPI = []string{"authorization_code", "client_credentials"}, "write"
		}, nil},
		{"admin API read with private_key_jwt is valid", func(s *ClientSpec) {
			s.RedirectURIs, s.GrantTypes, s.JWKS, s.AdminAPI = nil, []string{"client_credentials"}, json.RawMessage(ecJWKS), "read"
		}, nil},
		{"admin API access that is neither read nor write", func(s *ClientSpec) {
			s.GrantTypes, s.AdminAPI = []string{"client_credentials"}, "admin"
		}, []string{"admin_api"}},
		{"admin API access without client_credentials", func(s *ClientSpec) { s.AdminAPI = "read" }, []string{"admin_api"}},
		{"admin API access for a public client", func(s *ClientSpec) { s.Public, s.AdminAPI = true, "write" }, []string{"admin_api"}},
		{"everything at once", func(s *ClientSpec) {
			s.ID, s.GrantTypes, s.IDTokenAlg, s.AccessTokenFormat, s.MinACR = "a b", []string{"implicit", "authorization_code"}, "HS256", "paseto", "gold"
		}, []string{"id", "grant_types", "id_token_alg", "access_token_format", "min_acr"}},
		{"every new problem at once", func(s *ClientSpec) {
			s.Profile, s.Public, s.IDTokenAlg, s.BackchannelLogoutURI = "fapi2", true, "RS256", "https://rp.example/logout#x"
		}, []string{"profile", "id_token_alg", "backchannel_logout_uri"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			s.RedirectURIs = slices.Clone(good.RedirectURIs)
			tt.change(&s)
			var got []string
			for _, pr := range ValidateClient(s, p, "keystep-account") {
				got = append(got, pr.Field)
			}
			if diff := cmp.Diff(tt.fields, got); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s\n%+v", diff, ValidateClient(s, p, "keystep-account"))
			}
		})
	}
}

func TestValidateBackchannelLogoutURI(t *testing.T) {
	tests := []struct {
		uri  string
		want string // "" for valid
	}{
		{"https://rp.example/backchannel", ""},
		{"https://rp.example:8443/bc?tenant=a", ""},
		{"http://localhost:3000/bc", ""},
		{"http://127.0.0.1/bc", ""},
		{"http://[::1]:8080/bc", ""},
		{"http://rp.example/bc", "must use https"},
		{"ftp://rp.example/bc", "must use https"},
		{"https://rp.example/bc#x", "fragment"},
		{"https://rp.example/bc#", "fragment"},
		{"/bc", "absolute"},
		{"https:///bc", "absolute"},
		{"rp.example/bc", "absolute"},
		{"https://user:pw@rp.example/bc", "user name or password"},
		{"https://rp.example/" + strings.Repeat("a", MaxBackchannelLogoutURI), "at most 2000"},
	}
	for _, tt := range tests {
		err := ValidateBackchannelLogoutURI(tt.uri)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%.60q: %v, want valid", tt.uri, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%.60q: %v, want an error saying %q", tt.uri, err, tt.want)
		}
	}
	// Exactly at the limit is fine.
	long := "https://rp.example/"
	long += strings.Repeat("a", MaxBackchannelLogoutURI-len(long))
	if err := ValidateBackchannelLogoutURI(long); err != nil {
		t.Errorf("a URI of %d characters: %v", len(long), err)
	}
}

// The FAPI 2.0 profile switches on what it implies, and its defaults meet
// it; the switches round-trip through storage.
func TestNormalizeFAPI2ImpliesItsSwitches(t *testing.T) {
	n := ClientSpec{ID: "bank", Profile: " fapi2 ", JWKS: json.RawMessage(ecJWKS)}.Normalize()
	if n.Profile != "fapi2" || !n.RequirePAR || !n.DPoPBoundAccessTokens || !n.RequirePKCE || n.IDTokenAlg != "ES256" || n.AuthMethod != "private_key_jwt" {
		t.Errorf("normalised fapi2 spec %+v", n)
	}
	if n := (ClientSpec{ID: "rp", Profile: "none"}).Normalize(); n.Profile != "" || n.RequirePAR || n.DPoPBoundAccessTokens || n.RequirePKCE || n.IDTokenAlg != "RS256" {
		t.Errorf("profile none: %+v", n)
	}
	all := ClientSpec{ID: "rp", RequirePAR: true, DPoPBoundAccessTokens: true, Profile: "fapi2", JWKS: json.RawMessage(ecJWKS),
		BackchannelLogoutURI: "https://rp.example/bc", BackchannelLogoutSessionRequired: true}
	c := all.Client()
	if !c.RequirePAR || !c.DPoPBoundAccessTokens || c.Profile != "fapi2" || c.BackchannelLogoutURI != "https://rp.example/bc" || !c.BackchannelLogoutSessionRequired {
		t.Errorf("stored %+v", c)
	}
	if d := DiffClients(all, SpecOf(c)); d != nil {
		t.Errorf("the spec and its stored client differ: %q", d)
	}
}

func TestNormalizeMakesEqualSpecsEqual(t *testing.T) {
	written := ClientSpec{ID: " rp ", Public: true, RedirectURIs: []string{"https://rp.example/cb", " "},
		JWKS: json.RawMessage("null")}
	stored := SpecOf(written.Client())
	if d := DiffClients(written, stored); d != nil {
		t.Errorf("a spec and its stored client differ: %q", d)
	}
	n := written.Normalize()
	if n.ID != "rp" || n.AuthMethod != "none" || !n.RequirePKCE || n.IDTokenAlg != "RS256" || n.AccessTokenFormat != "jwt" ||
		!slices.Equal(n.GrantTypes, []string{"authorization_code", "refresh_token"}) || len(n.RedirectURIs) != 1 || n.JWKS != nil {
		t.Errorf("normalised %+v", n)
	}
	// The same keys written differently are the same keys.
	a := ClientSpec{ID: "svc", JWKS: json.RawMessage(ecJWKS)}
	b := ClientSpec{ID: "svc", JWKS: json.RawMessage("{\n  \"keys\": [ {\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\", \"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\", \"crv\":\"P-256\", \"kty\":\"EC\"} ]\n}")}
	if d := DiffClients(a, b); d != nil {
		t.Errorf("reformatted keys differ: %q", d)
	}
	if a.Normalize().AuthMethod != "private_key_jwt" {
		t.Error("keys without a method did not mean private_key_jwt")
	}
}

// The refresh reuse interval round-trips: empty is the default, "0s" none
// (stored negative, since zero is the default), anything else itself.
func TestRefreshReuseIntervalRoundTrips(t *testing.T) {
	for _, c := range []struct {
		written string
		stored  time.Duration
		spec    string
	}{
		{"", 0, ""},
		{"10s", 0, ""}, // the default, written out
		{"0s", -1, "0s"},
		{"0", -1, "0s"},
		{"30s", 30 * time.Second, "30s"},
		{" 1m ", time.Minute, "1m0s"},
	} {
		got := ClientSpec{ID: "rp", RefreshReuseInterval: c.written}.Client()
		if got.RefreshReuseInterval != c.stored {
			t.Errorf("%q stored as %v, want %v", c.written, got.RefreshReuseInterval, c.stored)
		}
		if s := SpecOf(got).RefreshReuseInterval; s != c.spec {
			t.Errorf("%q reads back as %q, want %q", c.written, s, c.spec)
		}
	}
}

func TestDiffClientsSaysWhatChanged(t *testing.T) {
	a := ClientSpec{ID: "rp", RedirectURIs: []string{"https://a/cb"}}
	b := a
	b.RedirectURIs = []string{"https://a/cb", "https://b/cb"}
	b.MinACR, b.FirstParty, b.IDTokenAlg, b.RateLimit = "phr", true, "ES256", 5000
	want := []string{
		"redirect_uris: [https://a/cb] → [https://a/cb https://b/cb]",
		"id_token_alg: RS256 → ES256",
		"min_acr: (none) → phr",
		"first_party: false → true",
		"rate_limit: (default) → 5000",
	}
	if diff := cmp.Diff(want, DiffClients(a, b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	b = a
	b.BackchannelLogoutURI, b.BackchannelLogoutSessionRequired, b.DPoPBoundAccessTokens = "https://a/bc", true, true
	want = []string{
		"dpop_bound_access_tokens: false → true",
		"backchannel_logout_uri: (none) → https://a/bc",
		"backchannel_logout_session_required: false → true",
	}
	if diff := cmp.Diff(want, DiffClients(a, b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
