package idp

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClaimedClient(t *testing.T) {
	assertion := func(iss string) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(`{"iss":"`+iss+`","sub":"`+iss+`"}`)) + ".sig"
	}
	for _, tc := range []struct {
		name        string
		basic, body string
		want        string
	}{
		{"nothing names no client", "", "grant_type=client_credentials", ""},
		{"the Basic user is the client", "svc", "grant_type=client_credentials", "svc"},
		{"client_id in the body is the client", "", "client_id=svc&client_secret=x", "svc"},
		{"an assertion's issuer is the client", "", "client_assertion=" + assertion("svc"), "svc"},
		{"Basic and client_id naming one client name it", "svc", "client_id=svc", "svc"},
		{"Basic and client_id naming two clients name none", "mine", "client_id=victim", ""},
		{"an assertion naming another client than client_id names none", "", "client_id=mine&client_assertion=" + assertion("victim"), ""},
		{"an unreadable assertion names none", "", "client_id=svc&client_assertion=garbage", ""},
		{"a Basic user that does not unescape names none", "%zz", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basic != "" {
				r.SetBasicAuth(tc.basic, "secret")
			}
			if got := claimedClient(r); got != tc.want {
				t.Errorf("claimedClient = %q, want %q", got, tc.want)
			}
			// The handler still reads the body as it came.
			if err := r.ParseForm(); err != nil {
				t.Fatal(err)
			}
			if got := r.PostForm.Encode(); got != mustParse(t, tc.body) {
				t.Errorf("the handler read %q, want %q", got, tc.body)
			}
		})
	}
}

func mustParse(t *testing.T, body string) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	return r.PostForm.Encode()
}

// A body over the limit is refused by the handler as before: peeking
// keeps the read error for it.
func TestPeekFormKeepsTheReadError(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("client_id=svc&pad="+strings.Repeat("a", 100)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Body = http.MaxBytesReader(w, r.Body, 50)
	if got := claimedClient(r); got != "" {
		t.Errorf("claimedClient of a cut body = %q", got)
	}
	_, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) {
		t.Errorf("the handler reads %v, want the MaxBytesError", err)
	}
}

// Every endpoint that authenticates a client or checks a token counts
// against the "token" group per address, the admin API included; pages do
// not.
func TestRateGroup(t *testing.T) {
	for path, want := range map[string]string{
		"/oauth/token": "token", "/oauth/par": "token", "/authorize": "authorize",
		"/admin/api/policy": "token", "/admin/api": "token", "/admin/api/clients/x": "token",
		"/admin/apis": "", "/admin/policy": "", "/login": "",
	} {
		if got := rateGroup(path); got != want {
			t.Errorf("rateGroup(%q) = %q, want %q", path, got, want)
		}
	}
}
