package storagetest

import (
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var consentTests = []test{
	{"no consent reads as nil without an error", func(t *testing.T, s storage.Store) {
		got, err := s.ConsentedScopes(t.Context(), "u1", "rp")
		must(t, err)
		if got != nil {
			t.Errorf("ConsentedScopes = %q, want nil", got)
		}
	}},
	{"a saved consent is read back, replaced and deleted per user and client", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.SaveConsent(ctx, "u1", "rp", []string{"openid", "email"}, t0))
		must(t, s.SaveConsent(ctx, "u1", "rp2", []string{"openid"}, t0))
		must(t, s.SaveConsent(ctx, "u2", "rp", []string{"profile"}, t0))
		got, err := s.ConsentedScopes(ctx, "u1", "rp")
		must(t, err)
		check(t, []string{"openid", "email"}, got)

		must(t, s.SaveConsent(ctx, "u1", "rp", []string{"openid", "profile"}, t0.Add(time.Hour)))
		got, err = s.ConsentedScopes(ctx, "u1", "rp")
		must(t, err)
		check(t, []string{"openid", "profile"}, got)

		must(t, s.DeleteConsent(ctx, "u1", "rp"))
		got, err = s.ConsentedScopes(ctx, "u1", "rp")
		must(t, err)
		if got != nil {
			t.Errorf("after delete: ConsentedScopes = %q, want nil", got)
		}
		wantErr(t, s.DeleteConsent(ctx, "u1", "rp"), storage.ErrNotFound)
		for _, uc := range [][2]string{{"u1", "rp2"}, {"u2", "rp"}} {
			got, err = s.ConsentedScopes(ctx, uc[0], uc[1])
			must(t, err)
			if len(got) != 1 {
				t.Errorf("consent of %s at %s = %q, want it untouched", uc[0], uc[1], got)
			}
		}
	}},
}

var oneTimeTokenTests = []test{
	{"a one-time token is spent once", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateOneTimeToken(ctx, "setup", "h1", t0.Add(time.Hour)))
		must(t, s.ConsumeOneTimeToken(ctx, "setup", "h1", t0))
		wantErr(t, s.ConsumeOneTimeToken(ctx, "setup", "h1", t0), storage.ErrReplayed)
	}},
	{"a one-time token is valid until its expiry and ErrExpired after it", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateOneTimeToken(ctx, "setup", "h1", t0))
		must(t, s.CreateOneTimeToken(ctx, "setup", "h2", t0))
		wantErr(t, s.ConsumeOneTimeToken(ctx, "setup", "h1", t0.Add(time.Nanosecond)), storage.ErrExpired)
		must(t, s.ConsumeOneTimeToken(ctx, "setup", "h2", t0))
	}},
	{"an unknown one-time token or another kind gives ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateOneTimeToken(ctx, "setup", "h1", t0.Add(time.Hour)))
		wantErr(t, s.ConsumeOneTimeToken(ctx, "setup", "nope", t0), storage.ErrNotFound)
		wantErr(t, s.ConsumeOneTimeToken(ctx, "reset", "h1", t0), storage.ErrNotFound)
		must(t, s.ConsumeOneTimeToken(ctx, "setup", "h1", t0))
	}},
	{"a taken one-time token gives ErrAlreadyExists", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateOneTimeToken(ctx, "setup", "h1", t0.Add(time.Hour)))
		wantErr(t, s.CreateOneTimeToken(ctx, "setup", "h1", t0.Add(time.Hour)), storage.ErrAlreadyExists)
		must(t, s.CreateOneTimeToken(ctx, "reset", "h1", t0.Add(time.Hour)))
	}},
	{"20 concurrent spends of one one-time token: exactly one succeeds", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateOneTimeToken(ctx, "setup", "h1", t0.Add(time.Hour)))
		errs := race(20, func(int) error { return s.ConsumeOneTimeToken(ctx, "setup", "h1", t0) })
		oneWinner(t, errs, storage.ErrReplayed)
	}},
	{"expired one-time tokens are swept with the tokens, live ones kept", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateOneTimeToken(ctx, "dpop", "old", t0))
		must(t, s.CreateOneTimeToken(ctx, "dpop", "live", t0.Add(time.Hour)))
		n, err := s.DeleteExpiredTokens(ctx, t0.Add(time.Second))
		must(t, err)
		if n != 1 {
			t.Errorf("swept %d rows, want 1", n)
		}
		wantErr(t, s.ConsumeOneTimeToken(ctx, "dpop", "old", t0), storage.ErrNotFound)
		must(t, s.ConsumeOneTimeToken(ctx, "dpop", "live", t0))
	}},
}
