package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var factorTests = []test{
	{"a factor round-trips and a user's factors are listed oldest first", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		webauthn := newFactor("f2", "u1", storage.FactorWebAuthn, t0.Add(time.Hour))
		webauthn.Secret = []byte(`{"id":"cred","publicKey":"pk","signCount":7}`)
		totp := newFactor("f1", "u1", storage.FactorTOTP, t0)
		unused := newFactor("f3", "u1", storage.FactorTOTP, t0.Add(2*time.Hour))
		unused.LastUsedAt = time.Time{}
		for _, f := range []storage.Factor{webauthn, totp, unused, newFactor("f4", "u2", storage.FactorTOTP, t0)} {
			must(t, s.CreateFactor(ctx, f))
		}
		got, err := s.FactorByID(ctx, "f2")
		must(t, err)
		check(t, webauthn, got)
		list, err := s.ListFactors(ctx, "u1")
		must(t, err)
		check(t, []storage.Factor{totp, webauthn, unused}, list)
		if !list[2].LastUsedAt.IsZero() {
			t.Errorf("a zero LastUsedAt came back as %v", list[2].LastUsedAt)
		}
		list, err = s.ListFactors(ctx, "nobody")
		must(t, err)
		check(t, []storage.Factor(nil), list)
	}},
	{"a taken factor id gives ErrAlreadyExists and an unknown one ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateFactor(ctx, newFactor("f1", "u1", storage.FactorTOTP, t0)))
		wantErr(t, s.CreateFactor(ctx, newFactor("f1", "u2", storage.FactorTOTP, t0)), storage.ErrAlreadyExists)
		_, err := s.FactorByID(ctx, "nope")
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.UpdateFactor(ctx, newFactor("nope", "u1", storage.FactorTOTP, t0)), storage.ErrNotFound)
	}},
	{"updating a factor replaces its name, secret and last-used time only", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newFactor("f1", "u1", storage.FactorWebAuthn, t0)
		must(t, s.CreateFactor(ctx, want))
		want.Name, want.Secret, want.LastUsedAt = "YubiKey", []byte(`{"signCount":8}`), t0.Add(time.Hour)
		upd := want
		upd.UserID, upd.Kind, upd.CreatedAt = "u2", storage.FactorTOTP, t0.Add(time.Hour) // ignored
		must(t, s.UpdateFactor(ctx, upd))
		got, err := s.FactorByID(ctx, "f1")
		must(t, err)
		check(t, want, got)
	}},
	{"a factor is deleted only by its owner", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateFactor(ctx, newFactor("f1", "u1", storage.FactorTOTP, t0)))
		wantErr(t, s.DeleteFactor(ctx, "u2", "f1"), storage.ErrNotFound)
		_, err := s.FactorByID(ctx, "f1")
		must(t, err)
		must(t, s.DeleteFactor(ctx, "u1", "f1"))
		_, err = s.FactorByID(ctx, "f1")
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.DeleteFactor(ctx, "u1", "f1"), storage.ErrNotFound)
	}},
	{"deleting a user's factors removes their factors and recovery codes only", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateFactor(ctx, newFactor("f1", "u1", storage.FactorTOTP, t0)))
		must(t, s.CreateFactor(ctx, newFactor("f2", "u1", storage.FactorWebAuthn, t0)))
		must(t, s.CreateFactor(ctx, newFactor("f3", "u2", storage.FactorTOTP, t0)))
		must(t, s.ReplaceRecoveryCodes(ctx, "u1", []string{"a", "b"}, t0))
		must(t, s.ReplaceRecoveryCodes(ctx, "u2", []string{"a", "b"}, t0))

		must(t, s.DeleteUserFactors(ctx, "u1"))
		got, err := s.ListFactors(ctx, "u1")
		must(t, err)
		check(t, []storage.Factor(nil), got)
		wantCodes(t, s, "u1", 0)
		got, err = s.ListFactors(ctx, "u2")
		must(t, err)
		check(t, []storage.Factor{newFactor("f3", "u2", storage.FactorTOTP, t0)}, got)
		wantCodes(t, s, "u2", 2)
	}},
	{"a TOTP step is accepted once per user", func(t *testing.T, s storage.Store) {
		// NIST SP 800-63B §5.1.4.2.
		ctx := t.Context()
		must(t, s.UseTOTPStep(ctx, "u1", 59000000, t0))
		wantErr(t, s.UseTOTPStep(ctx, "u1", 59000000, t0.Add(time.Second)), storage.ErrReplayed)
		must(t, s.UseTOTPStep(ctx, "u1", 59000001, t0))
		must(t, s.UseTOTPStep(ctx, "u2", 59000000, t0))
	}},
	{"20 concurrent uses of one TOTP step: exactly one succeeds", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		errs := race(20, func(int) error { return s.UseTOTPStep(ctx, "u1", 59000000, t0) })
		oneWinner(t, errs, storage.ErrReplayed)
	}},
	{"a TOTP step is accepted only when it is later than every step accepted before", func(t *testing.T, s storage.Store) {
		// RFC 6238 §5.2: after step t+1, the unused step t (still inside
		// the drift window) is refused too.
		ctx := t.Context()
		must(t, s.UseTOTPStep(ctx, "u1", 59000001, t0))
		wantErr(t, s.UseTOTPStep(ctx, "u1", 59000000, t0), storage.ErrReplayed)
		must(t, s.UseTOTPStep(ctx, "u1", 59000003, t0.Add(time.Minute)))
		wantErr(t, s.UseTOTPStep(ctx, "u1", 59000002, t0.Add(time.Minute)), storage.ErrReplayed)
		wantErr(t, s.UseTOTPStep(ctx, "u1", 59000003, t0.Add(time.Minute)), storage.ErrReplayed)
		must(t, s.UseTOTPStep(ctx, "u2", 59000000, t0))
	}},
	{"concurrent uses of a step and the one before it: the later wins once, the earlier at most once before it", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.UseTOTPStep(ctx, "u1", 59000000, t0))
		steps := func(i int) int64 { return 59000001 + int64(i%2) }
		errs := race(20, func(i int) error { return s.UseTOTPStep(ctx, "u1", steps(i), t0) })
		won := map[int64]int{}
		for i, err := range errs {
			switch {
			case err == nil:
				won[steps(i)]++
			case !errors.Is(err, storage.ErrReplayed):
				t.Errorf("call %d: %v, want nil or ErrReplayed", i, err)
			}
		}
		if won[59000002] != 1 || won[59000001] > 1 {
			t.Errorf("accepted %v, want step 59000002 once and 59000001 at most once", won)
		}
		// Neither step, nor an older one, is accepted again.
		for _, step := range []int64{59000002, 59000001, 59000000} {
			wantErr(t, s.UseTOTPStep(ctx, "u1", step, t0), storage.ErrReplayed)
		}
	}},
	{"recovery codes are spent once each, in any order, counting down", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		wantCodes(t, s, "u1", 0)
		must(t, s.ReplaceRecoveryCodes(ctx, "u1", []string{"h1", "h2", "h3"}, t0))
		wantCodes(t, s, "u1", 3)

		for i, h := range []string{"h2", "h3", "h1"} {
			left, err := s.UseRecoveryCode(ctx, "u1", h, t0)
			must(t, err)
			if want := 2 - i; left != want {
				t.Errorf("after using %s: remaining = %d, want %d", h, left, want)
			}
		}
		_, err := s.UseRecoveryCode(ctx, "u1", "h2", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.UseRecoveryCode(ctx, "u1", "nope", t0)
		wantErr(t, err, storage.ErrNotFound)
		wantCodes(t, s, "u1", 0)
	}},
	{"a recovery code belongs to its user", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.ReplaceRecoveryCodes(ctx, "u1", []string{"h1"}, t0))
		_, err := s.UseRecoveryCode(ctx, "u2", "h1", t0)
		wantErr(t, err, storage.ErrNotFound)
		wantCodes(t, s, "u1", 1)
	}},
	{"replacing recovery codes discards the old ones, used or not", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.ReplaceRecoveryCodes(ctx, "u1", []string{"old1", "old2"}, t0))
		_, err := s.UseRecoveryCode(ctx, "u1", "old1", t0)
		must(t, err)
		must(t, s.ReplaceRecoveryCodes(ctx, "u1", []string{"old1", "new1", "new2"}, t0.Add(time.Hour)))
		wantCodes(t, s, "u1", 3)
		_, err = s.UseRecoveryCode(ctx, "u1", "old2", t0)
		wantErr(t, err, storage.ErrNotFound)
		left, err := s.UseRecoveryCode(ctx, "u1", "old1", t0) // a new code that happens to match
		must(t, err)
		if left != 2 {
			t.Errorf("remaining = %d, want 2", left)
		}
	}},
	{"20 concurrent uses of one recovery code: exactly one succeeds", func(t *testing.T, s storage.Store) {
		// NIST SP 800-63B §5.1.2.2.
		ctx := t.Context()
		must(t, s.ReplaceRecoveryCodes(ctx, "u1", []string{"h1", "h2"}, t0))
		left := make([]int, 20)
		errs := race(20, func(i int) error {
			var err error
			left[i], err = s.UseRecoveryCode(ctx, "u1", "h1", t0)
			return err
		})
		w := oneWinner(t, errs, storage.ErrNotFound)
		if left[w] != 1 {
			t.Errorf("winner's remaining = %d, want 1", left[w])
		}
		wantCodes(t, s, "u1", 1)
	}},
}

func wantCodes(t *testing.T, s storage.Store, userID string, want int) {
	t.Helper()
	n, err := s.CountRecoveryCodes(t.Context(), userID)
	must(t, err)
	if n != want {
		t.Errorf("CountRecoveryCodes(%s) = %d, want %d", userID, n, want)
	}
}
