package resource_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/resource"
)

func intp(n int) *int { return &n }

var parseTests = []struct {
	name    string
	header  string
	want    resource.ChallengeInfo
	wantErr bool
}{
	{
		name:   "a bare Bearer challenge has no parameters",
		header: `Bearer`,
		want:   resource.ChallengeInfo{Scheme: "Bearer"},
	},
	{
		name:   "the RFC 9470 §3 example parses",
		header: `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR"`,
		want: resource.ChallengeInfo{Scheme: "Bearer", Error: "insufficient_user_authentication",
			ErrorDescription: "A different authentication level is required", ACRValues: []string{"myACR"}},
	},
	{
		name:   "max_age is a token value",
		header: `Bearer error="insufficient_user_authentication", acr_values="phr phrh", max_age=300`,
		want: resource.ChallengeInfo{Scheme: "Bearer", Error: "insufficient_user_authentication",
			ACRValues: []string{"phr", "phrh"}, MaxAge: intp(300)},
	},
	{
		name:   "max_age may be quoted and may be zero",
		header: `Bearer max_age="0"`,
		want:   resource.ChallengeInfo{Scheme: "Bearer", MaxAge: intp(0)},
	},
	{
		name:   "a lowercase scheme and upper-case parameter names are read (RFC 7235 §2.1, §2.2)",
		header: `bearer ERROR="invalid_token", Realm="api"`,
		want:   resource.ChallengeInfo{Scheme: "bearer", Error: "invalid_token", Realm: "api"},
	},
	{
		name:   "commas inside quoted strings are text",
		header: `Bearer error_description="first, second, third", error="invalid_token"`,
		want:   resource.ChallengeInfo{Scheme: "Bearer", Error: "invalid_token", ErrorDescription: "first, second, third"},
	},
	{
		name:   "escaped quotes and backslashes are unescaped",
		header: `Bearer error_description="say \"hi\" \\ \x"`,
		want:   resource.ChallengeInfo{Scheme: "Bearer", ErrorDescription: `say "hi" \ x`},
	},
	{
		name:   "the Bearer challenge is found after a Basic one",
		header: `Basic realm="x", Bearer error="insufficient_user_authentication", acr_values="phr", max_age=60`,
		want: resource.ChallengeInfo{Scheme: "Bearer", Error: "insufficient_user_authentication",
			ACRValues: []string{"phr"}, MaxAge: intp(60)},
	},
	{
		name:   "the Bearer challenge is found before a Basic one",
		header: `Bearer realm="api", error="invalid_token", Basic realm="x", charset="UTF-8"`,
		want:   resource.ChallengeInfo{Scheme: "Bearer", Realm: "api", Error: "invalid_token"},
	},
	{
		name:   "a token68 challenge and an empty one before Bearer are skipped",
		header: `Negotiate YII+/abc==, Basic, Bearer scope="orders:read orders:write"`,
		want:   resource.ChallengeInfo{Scheme: "Bearer", Scope: []string{"orders:read", "orders:write"}},
	},
	{
		name:   "whitespace around = and empty list elements are allowed",
		header: " ,Bearer \terror = \"insufficient_scope\" ,, scope=orders.read ,",
		want:   resource.ChallengeInfo{Scheme: "Bearer", Error: "insufficient_scope", Scope: []string{"orders.read"}},
	},
	{
		name:   "unknown parameters are ignored",
		header: `Bearer foo=bar, error=invalid_token, x-trace="a, b"`,
		want:   resource.ChallengeInfo{Scheme: "Bearer", Error: "invalid_token"},
	},
	{
		name:   "an empty acr_values is no acr values",
		header: `Bearer acr_values="", scope="  "`,
		want:   resource.ChallengeInfo{Scheme: "Bearer"},
	},
	{
		name:   "the first of two Bearer challenges wins",
		header: `Bearer error="a", Bearer error="b"`,
		want:   resource.ChallengeInfo{Scheme: "Bearer", Error: "a"},
	},
	{name: "an empty header is an error", header: ``, wantErr: true},
	{name: "only commas and spaces is an error", header: ` , ,`, wantErr: true},
	{name: "no Bearer challenge is an error", header: `Basic realm="x"`, wantErr: true},
	{name: "a DPoP challenge is read with its algs (RFC 9449 §7.1)",
		header: `Basic realm="x", DPoP error="insufficient_user_authentication", acr_values="phr", algs="ES256 EdDSA"`,
		want:   resource.ChallengeInfo{Scheme: "DPoP", Error: "insufficient_user_authentication", ACRValues: []string{"phr"}, Algs: []string{"ES256", "EdDSA"}}},
	{name: "a Bearer token68 is an error", header: `Bearer abc==`, wantErr: true},
	{name: "an unterminated quoted string is an error", header: `Bearer error="invalid_token`, wantErr: true},
	{name: "a trailing backslash in a quoted string is an error", header: `Bearer error="x\`, wantErr: true},
	{name: "a control character in a quoted string is an error", header: "Bearer error=\"a\x01b\"", wantErr: true},
	{name: "a missing value is an error", header: `Bearer error=`, wantErr: true},
	{name: "a missing name is an error", header: `Bearer ="x"`, wantErr: true},
	{name: "parameters without a comma between them are an error", header: `Bearer error="a" realm="b"`, wantErr: true},
	{name: "a repeated parameter is an error (RFC 7235 §2.2)", header: `Bearer error="a", ERROR="b"`, wantErr: true},
	{name: "a negative max_age is an error", header: `Bearer max_age=-1`, wantErr: true},
	{name: "a signed max_age is an error", header: `Bearer max_age=+5`, wantErr: true},
	{name: "a max_age with units is an error", header: `Bearer max_age="5m"`, wantErr: true},
	{name: "a max_age that overflows is an error", header: `Bearer max_age=99999999999999999999999`, wantErr: true},
	{name: "a quote where the scheme should be is an error", header: `"Bearer"`, wantErr: true},
	{name: "text after a quoted value is an error", header: `Bearer error="x"garbage`, wantErr: true},
	{name: "a colon in an unquoted value is an error (it is no tchar)", header: `Bearer scope=orders:read`, wantErr: true},
	{name: "a scheme glued to a parameter is an error", header: `Bearer, error=x`, wantErr: true},
	{name: "binary garbage is an error", header: "\x00\xff{}", wantErr: true},
}

func TestParseChallenge(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resource.ParseChallenge(tt.header)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseChallenge(%q) = %+v, want an error", tt.header, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseChallenge(%q): %v", tt.header, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseChallenge(%q) mismatch (-want +got):\n%s", tt.header, diff)
			}
		})
	}
}

func TestAuthorizeParams(t *testing.T) {
	tests := []struct {
		name string
		in   resource.ChallengeInfo
		want url.Values
	}{
		{"acr_values and max_age carry over (RFC 9470 §4)",
			resource.ChallengeInfo{ACRValues: []string{"phr", "phrh"}, MaxAge: intp(300), Scope: []string{"x"}},
			url.Values{"acr_values": {"phr phrh"}, "max_age": {"300"}}},
		{"max_age=0 is kept: it asks for a fresh login",
			resource.ChallengeInfo{MaxAge: intp(0)},
			url.Values{"max_age": {"0"}}},
		{"a challenge without them adds nothing",
			resource.ChallengeInfo{Error: "invalid_token"},
			url.Values{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.in.AuthorizeParams()); diff != "" {
				t.Errorf("AuthorizeParams() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseChallenge checks that ParseChallenge never panics, that what it
// accepts is a Bearer challenge, and that any description and acr values
// Challenge is given still make a header ParseChallenge reads.
func FuzzParseChallenge(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.header)
	}
	f.Fuzz(func(t *testing.T, s string) {
		info, err := resource.ParseChallenge(s)
		if err == nil {
			if !strings.EqualFold(info.Scheme, "Bearer") && !strings.EqualFold(info.Scheme, "DPoP") {
				t.Errorf("ParseChallenge(%q).Scheme = %q", s, info.Scheme)
			}
			if info.MaxAge != nil && *info.MaxAge < 0 {
				t.Errorf("ParseChallenge(%q).MaxAge = %d", s, *info.MaxAge)
			}
		}

		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		resource.Challenge(w, r, resource.Requirement{ACR: strings.Fields(s)}, s)
		h := w.Header().Get("WWW-Authenticate")
		got, err := resource.ParseChallenge(h)
		if err != nil {
			t.Fatalf("ParseChallenge(%q) of a Challenge header: %v", h, err)
		}
		if got.Error != "insufficient_user_authentication" {
			t.Errorf("ParseChallenge(%q).Error = %q", h, got.Error)
		}
	})
}
