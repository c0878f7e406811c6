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
