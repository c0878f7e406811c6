package storagetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

func newReset(id, userID string) storage.PasswordReset {
	return storage.PasswordReset{ID: id, UserID: userID, BrowserHash: "browser-" + id, CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}
}

func newRecoveryRequest(id, userID string, created time.Time) storage.RecoveryRequest {
	return storage.RecoveryRequest{ID: id, UserID: userID, CreatedAt: created, EligibleAt: created.Add(72 * time.Hour), Status: storage.RecoveryPending}
}

var recoveryTests = []test{
	{"users by email lists every account with the address, by username, and none for an unknown one", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		for _, u := range []storage.User{newUser("u1", "zed"), newUser("u2", "amy"), newUser("u3", "other")} {
			if u.ID == "u3" {
				u.Email = "someone@example.com"
			} else {
				u.Email = "shared@example.com"
			}
			must(t, s.CreateUser(ctx, u))
		}
		got, err := s.UsersByEmail(ctx, "Shared@EXAMPLE.com")
		must(t, err)
		if len(got) != 2 || got[0].Username != "amy" || got[1].Username != "zed" {
			t.Fatalf("UsersByEmail = %+v, want amy and zed", got)
		}
		got, err = s.UsersByEmail(ctx, "nobody@example.com")
		must(t, err)
		if len(got) != 0 {
			t.Errorf("UsersByEmail(unknown) = %+v, want none", got)
		}
	}},
	{"a password reset reads back, with its mail queued in the same call", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		r := newReset("r1", "u1")
		m := newOutboxMessage("m1", "")
		m.Kind = storage.OutboxMail
		must(t, s.CreatePasswordReset(ctx, r, []storage.OutboxMessage{m}))
		got, err := s.PasswordReset(ctx, "r1", t0)
		must(t, err)
		check(t, r, got)
		if _, err := s.OutboxMessage(ctx, "m1"); err != nil {
			t.Errorf("the reset's mail was not queued: %v", err)
		}
		wantErr(t, s.CreatePasswordReset(ctx, r, nil), storage.ErrAlreadyExists)
		_, err = s.PasswordReset(ctx, "nope", t0)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"a password reset expires after ExpiresAt, is proved once a factor is, and is used once", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreatePasswordReset(ctx, newReset("r1", "u1"), nil))
		_, err := s.PasswordReset(ctx, "r1", t0.Add(15*time.Minute+1))
		wantErr(t, err, storage.ErrExpired)
		wantErr(t, s.UsePasswordReset(ctx, "r1", t0.Add(16*time.Minute)), storage.ErrExpired)
		must(t, s.ProvePasswordReset(ctx, "r1", t0.Add(time.Minute)))
		got, err := s.PasswordReset(ctx, "r1", t0.Add(15*time.Minute))
		must(t, err)
		if !got.FactorAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("FactorAt = %v", got.FactorAt)
		}
		wantErr(t, s.ProvePasswordReset(ctx, "nope", t0), storage.ErrNotFound)
		must(t, s.UsePasswordReset(ctx, "r1", t0.Add(2*time.Minute)))
		wantErr(t, s.UsePasswordReset(ctx, "r1", t0.Add(3*time.Minute)), storage.ErrReplayed)
		_, err = s.PasswordReset(ctx, "r1", t0.Add(3*time.Minute))
		wantErr(t, err, storage.ErrReplayed)
		wantErr(t, s.UsePasswordReset(ctx, "nope", t0), storage.ErrNotFound)
		n, err := s.DeleteExpiredPasswordResets(ctx, t0.Add(15*time.Minute+1))
		must(t, err)
		if n != 1 {
			t.Errorf("swept %d, want 1", n)
		}
	}},
	{"of concurrent uses of one password reset exactly one succeeds", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreatePasswordReset(ctx, newReset("r1", "u1"), nil))
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 8 {
			wg.Go(func() {
				if s.UsePasswordReset(ctx, "r1", t0) == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if ok != 1 {
			t.Errorf("%d uses succeeded, want 1", ok)
		}
	}},
	{"recovery requests read back, newest first, and list by status", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		must(t, s.CreateUser(ctx, newUser("u2", "bob")))
		a := newRecoveryRequest("q1", "u1", t0)
		b := newRecoveryRequest("q2", "u1", t0.Add(time.Hour))
		c := newRecoveryRequest("q3", "u2", t0.Add(2*time.Hour))
		for _, r := range []storage.RecoveryRequest{a, b, c} {
			must(t, s.CreateRecoveryRequest(ctx, r))
		}
		wantErr(t, s.CreateRecoveryRequest(ctx, a), storage.ErrAlreadyExists)
		got, err := s.RecoveryRequestByID(ctx, "q1")
		must(t, err)
		check(t, a, got)
		got, err = s.LatestRecoveryRequest(ctx, "u1")
		must(t, err)
		check(t, b, got)
		_, err = s.LatestRecoveryRequest(ctx, "u9")
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RecoveryRequestByID(ctx, "q9")
		wantErr(t, err, storage.ErrNotFound)
		must(t, s.DecideRecoveryRequest(ctx, "q2", storage.RecoveryPending, storage.RecoveryDenied, "admin-1", "not the owner", t0.Add(3*time.Hour)))
		pending, err := s.ListRecoveryRequests(ctx, storage.RecoveryPending, 10)
		must(t, err)
		if len(pending) != 2 || pending[0].ID != "q3" || pending[1].ID != "q1" {
			t.Errorf("pending = %+v, want q3, q1", pending)
		}
		all, err := s.ListRecoveryRequests(ctx, "", 2)
		must(t, err)
		if len(all) != 2 || all[0].ID != "q3" || all[1].ID != "q2" {
			t.Errorf("all (limit 2) = %+v, want q3, q2", all)
		}
		got, err = s.RecoveryRequestByID(ctx, "q2")
		must(t, err)
		b.Status, b.DecidedBy, b.Reason, b.DecidedAt = storage.RecoveryDenied, "admin-1", "not the owner", t0.Add(3*time.Hour)
		check(t, b, got)
	}},
	{"a recovery request is decided once: a second decision from the old status conflicts", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		must(t, s.CreateRecoveryRequest(ctx, newRecoveryRequest("q1", "u1", t0)))
		must(t, s.DecideRecoveryRequest(ctx, "q1", storage.RecoveryPending, storage.RecoveryCancelled, "u1", "", t0))
		wantErr(t, s.DecideRecoveryRequest(ctx, "q1", storage.RecoveryPending, storage.RecoveryApproved, "admin", "ok", t0), storage.ErrConflict)
		wantErr(t, s.DecideRecoveryRequest(ctx, "q9", storage.RecoveryPending, storage.RecoveryApproved, "admin", "ok", t0), storage.ErrNotFound)
		got, err := s.RecoveryRequestByID(ctx, "q1")
		must(t, err)
		if got.Status != storage.RecoveryCancelled {
			t.Errorf("status = %s, want cancelled", got.Status)
		}
	}},
	{"a request is eligible when approved (for RecoveryApprovalTTL), or pending once the cooling-off is over", func(t *testing.T, s storage.Store) {
		r := newRecoveryRequest("q1", "u1", t0)
		r.DecidedAt = t0
		for _, c := range []struct {
			status storage.RecoveryStatus
			at     time.Time
			want   bool
		}{
			{storage.RecoveryPending, r.EligibleAt.Add(-time.Nanosecond), false},
			{storage.RecoveryPending, r.EligibleAt, true},
			{storage.RecoveryApproved, t0, true},
			{storage.RecoveryApproved, t0.Add(storage.RecoveryApprovalTTL - time.Nanosecond), true},
			{storage.RecoveryApproved, t0.Add(storage.RecoveryApprovalTTL), false},
			{storage.RecoveryCancelled, r.EligibleAt.Add(time.Hour), false},
			{storage.RecoveryDenied, r.EligibleAt.Add(time.Hour), false},
			{storage.RecoveryUsed, r.EligibleAt.Add(time.Hour), false},
		} {
			r.Status = c.status
			if got := r.Eligible(c.at); got != c.want {
				t.Errorf("%s at %v: Eligible = %v, want %v", c.status, c.at, got, c.want)
			}
			if open := c.status == storage.RecoveryPending || c.status == storage.RecoveryApproved && c.want; r.Open(c.at) != open {
				t.Errorf("%s at %v: Open = %v, want %v", c.status, c.at, !open, open)
			}
		}
	}},
}
