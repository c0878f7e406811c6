package idp

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

func TestRefreshTokenNamesFamilyAndGenerationUnderItsMAC(t *testing.T) {
	m := newRefreshMinter([]byte("0123456789abcdef0123456789abcdef"))
	tok := m.token("fam-1", 7)
	if f, g, ok := m.parse(tok); !ok || f != "fam-1" || g != 7 {
		t.Fatalf("parse(%q) = %q, %d, %v", tok, f, g, ok)
	}
	other := newRefreshMinter([]byte("another master key, 32 bytes...."))
	mac := tok[strings.LastIndex(tok, ".")+1:]
	for name, bad := range map[string]string{
		"another family under the same MAC":     "fam-2.7." + mac,
		"another generation under the same MAC": "fam-1.8." + mac,
		"a generation written with a zero":      "fam-1.07." + mac,
		"a negative generation":                 m.token("fam-1", -1),
		"a MAC made with another key":           other.token("fam-1", 7),
		"a MAC cut short":                       tok[:len(tok)-2],
		"no family":                             m.token("", 7),
		"a token from before families":          "c29tZS1yYW5kb20tdG9rZW4tZnJvbS1iZWZvcmU",
		"an empty string":                       "",
	} {
		if _, _, ok := m.parse(bad); ok {
			t.Errorf("%s: %q parsed", name, bad)
		}
	}
}

func TestJWTIDNamesItsFamily(t *testing.T) {
	id, err := newJWTID("fam-1")
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := jwtFamily(id); !ok || f != "fam-1" {
		t.Fatalf("jwtFamily(%q) = %q, %v", id, f, ok)
	}
	cc, _ := newJWTID("")
	if f, ok := jwtFamily(cc); !ok || f != "" {
		t.Fatalf("client credentials: jwtFamily(%q) = %q, %v", cc, f, ok)
	}
	row, _ := newTokenID()
	if _, ok := jwtFamily(row); ok {
		t.Fatalf("an ID with a row (%q) names a family", row)
	}
}

func TestRetryOrReuse(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rotated := storage.Family{ID: "f", Grant: storage.Grant{ClientID: "rp"}, Generation: 3, RotatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	rp := &client{Client: storage.Client{ID: "rp"}}
	tests := []struct {
		name   string
		change func(f *storage.Family, c **client, gen *int64, now *time.Time)
		retry  bool
	}{
		{"the generation just rotated away, by its client, at once, is a retry", nil, true},
		{"it is a retry until just before the interval ends", func(_ *storage.Family, _ **client, _ *int64, now *time.Time) {
			*now = t0.Add(storage.DefaultRefreshReuseInterval - time.Nanosecond)
		}, true},
		{"it is reuse once the interval has passed", func(_ *storage.Family, _ **client, _ *int64, now *time.Time) {
			*now = t0.Add(storage.DefaultRefreshReuseInterval)
		}, false},
		{"an instance whose clock is a little behind the rotating one sees a retry", func(_ *storage.Family, _ **client, _ *int64, now *time.Time) {
			*now = t0.Add(-time.Second)
		}, true},
		{"a clock behind by the interval or more fails closed", func(_ *storage.Family, _ **client, _ *int64, now *time.Time) {
			*now = t0.Add(-storage.DefaultRefreshReuseInterval)
		}, false},
		{"an older generation is reuse", func(_ *storage.Family, _ **client, gen *int64, _ *time.Time) { *gen = 1 }, false},
		{"the current generation is no retry", func(_ *storage.Family, _ **client, gen *int64, _ *time.Time) { *gen = 3 }, false},
		{"another client is reuse", func(_ *storage.Family, c **client, _ *int64, _ *time.Time) {
			*c = &client{Client: storage.Client{ID: "spa"}}
		}, false},
		{"no authenticated client is reuse", func(_ *storage.Family, c **client, _ *int64, _ *time.Time) { *c = nil }, false},
		{"a client without a reuse interval never retries", func(_ *storage.Family, c **client, _ *int64, _ *time.Time) {
			*c = &client{Client: storage.Client{ID: "rp", RefreshReuseInterval: -1}}
		}, false},
		{"a client's own interval counts", func(_ *storage.Family, c **client, _ *int64, now *time.Time) {
			*c = &client{Client: storage.Client{ID: "rp", RefreshReuseInterval: time.Minute}}
			*now = t0.Add(50 * time.Second)
		}, true},
		{"a revoked family never retries", func(f *storage.Family, _ **client, _ *int64, _ *time.Time) { f.Revoked = true }, false},
		{"an expired family never retries", func(f *storage.Family, _ **client, _ *int64, _ *time.Time) { f.ExpiresAt = t0.Add(-time.Second) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c, gen, now := rotated, rp, int64(2), t0
			if tt.change != nil {
				tt.change(&f, &c, &gen, &now)
			}
			ctx := context.WithValue(t.Context(), stateKey{}, &reqState{client: c})
			if got := (&opStorage{}).retry(ctx, f, gen, now); got != tt.retry {
				t.Errorf("retry = %v, want %v", got, tt.retry)
			}
		})
	}
}

// A client-credentials JWT has no family: its client is what it hangs on.
// Deleting the client ends it, and a client made anew under the same ID
// does not bring it back.
func TestClientCredentialsTokenEndsWithItsClient(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	now := t0
	s := &opStorage{store: st, now: func() time.Time { return now }}
	svc := storage.Client{ID: "svc", GrantTypes: []string{"client_credentials"}, CreatedAt: t0, UpdatedAt: t0}
	if err := st.CreateClient(ctx, svc); err != nil {
		t.Fatal(err)
	}
	// token is a token issued at issued to the registration reg ("" for
	// a token from before the claim: its iat decides).
	token := func(issued time.Time, reg string) *oidc.AccessTokenClaims {
		id, _ := newJWTID("")
		c := &oidc.AccessTokenClaims{}
		c.JWTID, c.Subject, c.ClientID, c.Audience = id, "svc", "svc", []string{"svc"}
		c.IssuedAt, c.Expiration = oidc.FromTime(issued), oidc.FromTime(issued.Add(accessTokenTTL))
		if reg != "" {
			c.Claims = map[string]any{clientRegistrationClaim: reg}
		}
		return c
	}
	live := func(c *oidc.AccessTokenClaims) bool {
		ctx := context.WithValue(ctx, stateKey{}, &reqState{jwt: c})
		_, err := s.liveAccessToken(ctx, c.JWTID)
		return err == nil
	}
	old := token(t0.Add(time.Minute), registrationOf(svc))
	legacy := token(t0.Add(time.Minute), "")
	now = t0.Add(2 * time.Minute)
	if !live(old) || !live(legacy) {
		t.Fatal("a client-credentials token of a live client is not live")
	}
	if err := st.DeleteClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if live(old) || live(legacy) {
		t.Fatal("live after its client was deleted")
	}
	svc.CreatedAt = now
	if err := st.CreateClient(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if live(old) || live(legacy) {
		t.Fatal("a client made anew under the same ID brought it back")
	}
	if fresh := token(now, registrationOf(svc)); !live(fresh) {
		t.Fatal("a token of the new client is not live")
	}
	// Made anew within the second the stolen token was issued: only the
	// registration it names tells the two apart.
	stolen := token(now, registrationOf(svc))
	if err := st.DeleteClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	svc.CreatedAt = now.Add(time.Millisecond)
	if err := st.CreateClient(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if live(stolen) {
		t.Fatal("a client made anew in the same second brought its token back")
	}
}
