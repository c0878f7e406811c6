package storagetest

import (
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var keyTests = []test{
	{"signing keys round-trip and are listed oldest first", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		got, err := s.ListSigningKeys(ctx)
		must(t, err)
		check(t, []storage.SigningKey(nil), got)

		newer := newSigningKey("k2", "ES256", t0.Add(time.Hour))
		older := newSigningKey("k1", "RS256", t0)
		older.RetiredAt, older.ExpiresAt = t0.Add(time.Hour), t0.Add(2*time.Hour)
		must(t, s.CreateSigningKey(ctx, newer))
		must(t, s.CreateSigningKey(ctx, older))
		got, err = s.ListSigningKeys(ctx)
		must(t, err)
		check(t, []storage.SigningKey{older, newer}, got)
		if !got[1].RetiredAt.IsZero() || !got[1].ExpiresAt.IsZero() {
			t.Errorf("a signing key's zero RetiredAt/ExpiresAt came back as %v/%v", got[1].RetiredAt, got[1].ExpiresAt)
		}
	}},
	{"a taken kid gives ErrAlreadyExists", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateSigningKey(ctx, newSigningKey("k1", "RS256", t0)))
		wantErr(t, s.CreateSigningKey(ctx, newSigningKey("k1", "ES256", t0)), storage.ErrAlreadyExists)
	}},
	{"retiring keys spares the kept key, other algorithms and keys already retired", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		oldRetired := newSigningKey("k0", "RS256", t0)
		oldRetired.RetiredAt, oldRetired.ExpiresAt = t0.Add(time.Minute), t0.Add(time.Hour)
		active := newSigningKey("k1", "RS256", t0.Add(time.Second))
		keep := newSigningKey("k2", "RS256", t0.Add(2*time.Second))
		other := newSigningKey("k3", "ES256", t0.Add(3*time.Second))
		for _, k := range []storage.SigningKey{oldRetired, active, keep, other} {
			must(t, s.CreateSigningKey(ctx, k))
		}
		retired, expires := t0.Add(24*time.Hour), t0.Add(48*time.Hour)
		must(t, s.RetireSigningKeys(ctx, "RS256", "k2", retired, expires))

		active.RetiredAt, active.ExpiresAt = retired, expires
		got, err := s.ListSigningKeys(ctx)
		must(t, err)
		check(t, []storage.SigningKey{oldRetired, active, keep, other}, got)
	}},
	{"expired signing keys are deleted and keys still signing stay", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		gone := newSigningKey("k1", "RS256", t0)
		gone.RetiredAt, gone.ExpiresAt = t0, t0.Add(-time.Nanosecond)
		due := newSigningKey("k2", "RS256", t0.Add(time.Second))
		due.RetiredAt, due.ExpiresAt = t0, t0
		signing := newSigningKey("k3", "RS256", t0.Add(2*time.Second))
		for _, k := range []storage.SigningKey{gone, due, signing} {
			must(t, s.CreateSigningKey(ctx, k))
		}
		n, err := s.DeleteExpiredSigningKeys(ctx, t0)
		must(t, err)
		if n != 1 {
			t.Errorf("deleted %d, want 1", n)
		}
		got, err := s.ListSigningKeys(ctx)
		must(t, err)
		check(t, []storage.SigningKey{due, signing}, got)
	}},
}
