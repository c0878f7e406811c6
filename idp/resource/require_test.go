package resource_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/resource"
)

// serve runs h on a GET with the Authorization header auth ("" for none) and
// returns the response and the claims h's inner handler saw (nil if it did
// not run).
func serve(t *testing.T, v *resource.Verifier, req resource.Requirement, auth string) (*httptest.ResponseRecorder, *resource.Claims) {
	t.Helper()
	var seen *resource.Claims
	h := v.Require(req, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := resource.ClaimsFrom(r.Context())
		if !ok {
			t.Error("ClaimsFrom() found no claims behind Require")
		}
		seen = &c
		w.WriteHeader(http.StatusNoContent)
	}))
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, seen
}

func TestRequire(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t)
	bearer := func(edit map[string]any) string { return "Bearer " + is.sign(t, "es-1", "at+jwt", is.claims(edit)) }
	mfa := []string{"urn:keystep:acr:mfa", "phr", "phrh"}
	phr := []string{"phr", "phrh"}

	tests := []struct {
		name       string
		req        resource.Requirement
		auth       string
		wantStatus int
		wantHeader string
	}{
		{
			name:       "a token at an acceptable acr with the scopes reaches the handler",
			req:        resource.Requirement{ACR: mfa, MaxAge: 5 * time.Minute, Scope: []string{"orders:read"}},
			auth:       bearer(nil),
			wantStatus: http.StatusNoContent,
		},
		{
			name:       "an empty requirement accepts any valid token",
			auth:       bearer(map[string]any{"acr": nil, "auth_time": nil}),
			wantStatus: http.StatusNoContent,
		},
		{
			name:       "the Bearer scheme is case-insensitive (RFC 7235 §2.1)",
			auth:       "bEaReR " + is.sign(t, "es-1", "at+jwt", is.claims(nil)),
			wantStatus: http.StatusNoContent,
		},
		{
			name:       "no Authorization header gets a bare challenge (RFC 6750 §3.1)",
			req:        resource.Requirement{ACR: phr},
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer`,
		},
		{
			name:       "another auth scheme gets a bare challenge",
			req:        resource.Requirement{ACR: phr},
			auth:       "Basic b3JkZXJzOnNlY3JldA==",
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer`,
		},
		{
			name:       "an invalid token gets invalid_token and the requirement does not leak (RFC 9470 §7)",
			req:        resource.Requirement{ACR: phr, MaxAge: time.Minute, Scope: []string{"orders:write"}},
			auth:       "Bearer not-a-token",
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="The access token is invalid or has expired"`,
		},
		{
			name:       "an expired token gets invalid_token",
			req:        resource.Requirement{ACR: phr},
			auth:       bearer(map[string]any{"exp": t0.Add(-time.Hour).Unix()}),
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="The access token is invalid or has expired"`,
		},
		{
			name:       "an empty bearer token gets invalid_token",
			auth:       "Bearer ",
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="The access token is invalid or has expired"`,
		},
		{
			name:       "an acr not in the list gets insufficient_user_authentication naming every acceptable value",
			req:        resource.Requirement{ACR: phr},
			auth:       bearer(nil),
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="insufficient_user_authentication", error_description="The access token's authentication context class is not accepted here", acr_values="phr phrh"`,
		},
		{
			name:       "a token without acr fails an acr requirement",
			req:        resource.Requirement{ACR: mfa},
			auth:       bearer(map[string]any{"acr": nil}),
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="insufficient_user_authentication", error_description="The access token's authentication context class is not accepted here", acr_values="urn:keystep:acr:mfa phr phrh"`,
		},
		{
			name:       "auth_time older than MaxAge gets a challenge with max_age",
			req:        resource.Requirement{ACR: []string{"urn:keystep:acr:mfa"}, MaxAge: 5 * time.Minute},
			auth:       bearer(map[string]any{"auth_time": t0.Add(-10 * time.Minute).Unix()}),
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="insufficient_user_authentication", error_description="The access token's authentication is too old", acr_values="urn:keystep:acr:mfa", max_age=300`,
		},
		{
			name:       "MaxAge alone gives max_age without acr_values",
			req:        resource.Requirement{MaxAge: 90 * time.Second},
			auth:       bearer(map[string]any{"auth_time": t0.Add(-2 * time.Minute).Unix()}),
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="insufficient_user_authentication", error_description="The access token's authentication is too old", max_age=90`,
		},
		{
			name:       "auth_time exactly MaxAge ago still passes",
			req:        resource.Requirement{MaxAge: 2 * time.Minute},
			auth:       bearer(nil),
			wantStatus: http.StatusNoContent,
		},
		{
			name:       "a token without auth_time fails a MaxAge requirement",
			req:        resource.Requirement{MaxAge: time.Hour},
			auth:       bearer(map[string]any{"auth_time": nil}),
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="insufficient_user_authentication", error_description="The access token's authentication is too old", max_age=3600`,
		},
		{
			name:       "a missing scope gets 403 insufficient_scope naming the required scopes",
			req:        resource.Requirement{ACR: mfa, Scope: []string{"orders:read", "orders:write"}},
			auth:       bearer(nil),
			wantStatus: http.StatusForbidden,
			wantHeader: `Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="orders:read orders:write"`,
		},
		{
			name:       "a step-up and a missing scope give one 401 that names both (RFC 9470 §3)",
			req:        resource.Requirement{ACR: phr, Scope: []string{"orders:write"}},
			auth:       bearer(nil),
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="insufficient_user_authentication", error_description="The access token's authentication context class is not accepted here", acr_values="phr phrh", scope="orders:write"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, seen := serve(t, v, tt.req, tt.auth)
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", w.Code, tt.wantStatus)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.wantHeader {
				t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, tt.wantHeader)
			}
			if tt.wantStatus == http.StatusNoContent {
				if seen == nil {
					t.Fatal("the handler did not run")
				}
				if seen.Subject != "user-carol" {
					t.Errorf("ClaimsFrom().Subject = %q", seen.Subject)
				}
				return
			}
			if seen != nil {
				t.Error("the handler ran for a refused request")
			}
			if _, err := resource.ParseChallenge(w.Header().Get("WWW-Authenticate")); err != nil {
				t.Errorf("ParseChallenge() of what Require wrote: %v", err)
			}
		})
	}
}

func TestRequireIssuerDown(t *testing.T) {
	is := newIssuer(t)
	v, clk := is.open(t)
	clk.Advance(time.Minute)
	is.setFailKeys(true)
	// A kid the verifier has not seen needs the JWKS, which is down.
	w, seen := serve(t, v, resource.Requirement{}, "Bearer "+is.sign(t, "es-2", "at+jwt", is.claims(nil)))
	if w.Code != http.StatusServiceUnavailable || seen != nil {
		t.Errorf("status = %d, handler ran = %v; want 503 and no handler", w.Code, seen != nil)
	}
	if h := w.Header().Get("WWW-Authenticate"); h != "" {
		t.Errorf("WWW-Authenticate = %q, want none: the token may be fine", h)
	}
}

func TestChallenge(t *testing.T) {
	max300 := 300
	tests := []struct {
		name string
		req  resource.Requirement
		desc string
		want resource.ChallengeInfo
	}{
		{
			name: "acr_values and max_age round-trip through ParseChallenge",
			req:  resource.Requirement{ACR: []string{"phr", "phrh"}, MaxAge: 5 * time.Minute},
			desc: "Transfers above 10 000 EUR need a passkey",
			want: resource.ChallengeInfo{Scheme: "Bearer", Error: "insufficient_user_authentication",
				ErrorDescription: "Transfers above 10 000 EUR need a passkey", ACRValues: []string{"phr", "phrh"}, MaxAge: &max300},
		},
		{
			name: "quotes, backslashes and non-ASCII are dropped from the description (RFC 6750 §3)",
			req:  resource.Requirement{ACR: []string{"phr"}},
			desc: `say "hi" \ to the café, please`,
			want: resource.ChallengeInfo{Scheme: "Bearer", Error: "insufficient_user_authentication",
				ErrorDescription: "say hi  to the caf, please", ACRValues: []string{"phr"}},
		},
		{
			name: "an acr value with a quote survives by escaping",
			req:  resource.Requirement{ACR: []string{`urn:x:"odd"`}, Scope: []string{"a", "b"}},
			want: resource.ChallengeInfo{Scheme: "Bearer", Error: "insufficient_user_authentication",
				ACRValues: []string{`urn:x:"odd"`}, Scope: []string{"a", "b"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			resource.Challenge(w, httptest.NewRequest(http.MethodGet, "/", nil), tt.req, tt.desc)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401", w.Code)
			}
			got, err := resource.ParseChallenge(w.Header().Get("WWW-Authenticate"))
			if err != nil {
				t.Fatalf("ParseChallenge(%q): %v", w.Header().Get("WWW-Authenticate"), err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
