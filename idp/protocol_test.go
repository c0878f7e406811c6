package idp

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// RFC 8252 §7.3: a native app's loopback redirect URI may differ from the
// registered one in its port only.
func TestRedirectRegistered(t *testing.T) {
	registered := []string{"http://127.0.0.1/cb", "http://[::1]/cb6", "http://localhost:8080/local", "com.example.app:/oauth", "https://app.example/cb"}
	for _, tt := range []struct {
		name   string
		native bool
		uri    string
		want   bool
	}{
		{"an exact match", true, "http://127.0.0.1/cb", true},
		{"an exact match of a web client", false, "https://app.example/cb", true},
		{"a loopback URI on another port", true, "http://127.0.0.1:53123/cb", true},
		{"an IPv6 loopback URI on another port", true, "http://[::1]:40000/cb6", true},
		{"localhost registered with a port, asked on another", true, "http://localhost:9999/local", true},
		{"localhost registered with a port, asked without one", true, "http://localhost/local", true},
		{"a private-use scheme exactly", true, "com.example.app:/oauth", true},
		{"a web client's loopback URI on another port", false, "http://127.0.0.1:53123/cb", false},
		{"https instead of http", true, "https://127.0.0.1:53123/cb", false},
		{"localhost instead of 127.0.0.1", true, "http://localhost:53123/cb", false},
		{"::1 instead of 127.0.0.1", true, "http://[::1]:53123/cb", false},
		{"another loopback address", true, "http://127.0.0.2:53123/cb", false},
		{"127.0.0.1 instead of localhost", true, "http://127.0.0.1:9999/local", false},
		{"another path", true, "http://127.0.0.1:53123/cb6", false},
		{"a longer path", true, "http://127.0.0.1:53123/cb/", false},
		{"an encoded path", true, "http://127.0.0.1:53123/c%62", false},
		{"an added query", true, "http://127.0.0.1:53123/cb?x=1", false},
		{"an empty query", true, "http://127.0.0.1:53123/cb?", false},
		{"a fragment", true, "http://127.0.0.1:53123/cb#f", false},
		{"an empty fragment", true, "http://127.0.0.1:53123/cb#", false},
		{"user info", true, "http://user@127.0.0.1:53123/cb", false},
		{"a non-loopback host", true, "http://app.example:53123/cb", false},
		{"another port on a non-loopback https URI", true, "https://app.example:8443/cb", false},
		{"a private-use scheme with another path", true, "com.example.app:/other", false},
		{"garbage", true, "http://[::1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := client{Client: storage.Client{Native: tt.native}}
			if got := c.redirectRegistered(registered, tt.uri); got != tt.want {
				t.Errorf("redirectRegistered(%q) = %v, want %v", tt.uri, got, tt.want)
			}
		})
	}
}

// RFC 7662 §4: introspection answers only the token's client or a client
// in its audience.
func TestIntrospectionCaller(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	g := storage.Grant{GrantID: "ar1", ClientID: "rp", Subject: "u1", Audience: []string{"rp", "api"}, ACR: "urn:keystep:acr:mfa", AuthTime: now}
	if err := st.CreateAccessToken(ctx, storage.AccessToken{ID: "at1", Grant: g, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	s := &opStorage{store: st, now: func() time.Time { return now }}
	for _, tt := range []struct {
		caller string
		active bool
	}{
		{"rp", true},
		{"api", true},
		{"other", false},
		{"", false},
	} {
		var resp oidc.IntrospectionResponse
		err := s.SetIntrospectionFromToken(ctx, &resp, "at1", "u1", tt.caller)
		if tt.active != (err == nil) || tt.active != resp.Active {
			t.Errorf("caller %q: err %v, active %v; want active %v", tt.caller, err, resp.Active, tt.active)
		}
		if !tt.active && (resp.Subject != "" || resp.Claims != nil || !errors.Is(err, errNotForCaller)) {
			t.Errorf("caller %q learned %+v (err %v)", tt.caller, resp, err)
		}
	}
}
