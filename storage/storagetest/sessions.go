package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var sessionTests = []test{
	{"a session round-trips with its factor events", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newSession("s1", "u1")
		// A factor time in another zone comes back as the same instant in UTC.
		want.Factors[1].At = want.Factors[1].At.In(time.FixedZone("CET", 3600))
		must(t, s.CreateSession(ctx, want))
		got, err := s.SessionByID(ctx, "s1", t0)
		must(t, err)
		check(t, want, got)

		bare := storage.Session{ID: "s2", UserID: "u1", ExpiresAt: t0.Add(time.Hour)}
		must(t, s.CreateSession(ctx, bare))
		got, err = s.SessionByID(ctx, "s2", t0)
		must(t, err)
		check(t, bare, got)
	}},
	{"expired sessions are swept, more than a batch of them, and live ones stay", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		const expired = 1500 // more than one sweep batch
		for i := range expired {
			must(t, s.CreateSession(ctx, storage.Session{ID: fmt.Sprintf("old-%d", i), UserID: "u1", ExpiresAt: t0.Add(-time.Second)}))
		}
		live := storage.Session{ID: "live", UserID: "u1", ExpiresAt: t0}
		must(t, s.CreateSession(ctx, live))
		n, err := s.DeleteExpiredSessions(ctx, t0)
		must(t, err)
		if n != expired {
			t.Errorf("swept %d sessions, want %d", n, expired)
		}
		got, err := s.ListUserSessions(ctx, "u1", t0.Add(-time.Hour))
		must(t, err)
		if len(got) != 1 || got[0].ID != "live" {
			t.Errorf("left %d sessions, want only the live one", len(got))
		}
	}},
	{"a taken session id gives ErrAlreadyExists", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateSession(ctx, newSession("s1", "u1")))
		wantErr(t, s.CreateSession(ctx, newSession("s1", "u2")), storage.ErrAlreadyExists)
	}},
	{"a session is valid until its expiry and ErrExpired after it", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		sess := newSession("s1", "u1")
		must(t, s.CreateSession(ctx, sess))
		_, err := s.SessionByID(ctx, "s1", sess.ExpiresAt)
		must(t, err)
		_, err = s.SessionByID(ctx, "s1", sess.ExpiresAt.Add(time.Nanosecond))
		wantErr(t, err, storage.ErrExpired)
	}},
	{"an unknown session gives ErrNotFound everywhere", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		_, err := s.SessionByID(ctx, "nope", t0)
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.RotateSession(ctx, "nope", newSession("s2", "u1")), storage.ErrNotFound)
		wantErr(t, s.TouchSession(ctx, "nope", t0), storage.ErrNotFound)
		wantErr(t, s.DeleteSession(ctx, "nope"), storage.ErrNotFound)
		_, err = s.SessionByID(ctx, "s2", t0)
		wantErr(t, err, storage.ErrNotFound) // the failed rotation stored nothing
	}},
	{"rotating a session replaces the old id with the new session", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateSession(ctx, newSession("s1", "u1")))
		next := newSession("s2", "u1")
		next.Factors = append(next.Factors, storage.FactorEvent{Method: "totp", At: t0.Add(time.Hour)})
		must(t, s.RotateSession(ctx, "s1", next))
		_, err := s.SessionByID(ctx, "s1", t0)
		wantErr(t, err, storage.ErrNotFound)
		got, err := s.SessionByID(ctx, "s2", t0)
		must(t, err)
		check(t, next, got)
	}},
	{"rotating onto a taken id fails and keeps the old session", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateSession(ctx, newSession("s1", "u1")))
		must(t, s.CreateSession(ctx, newSession("s2", "u1")))
		wantErr(t, s.RotateSession(ctx, "s1", newSession("s2", "u1")), storage.ErrAlreadyExists)
		_, err := s.SessionByID(ctx, "s1", t0)
		must(t, err)
	}},
	{"20 concurrent rotations of one session: one wins, the rest get ErrNotFound", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateSession(ctx, newSession("s1", "u1")))
		errs := race(20, func(i int) error {
			return s.RotateSession(ctx, "s1", newSession(fmt.Sprintf("next-%d", i), "u1"))
		})
		w := oneWinner(t, errs, storage.ErrNotFound)
		got, err := s.ListUserSessions(ctx, "u1", t0)
		must(t, err)
		check(t, []storage.Session{newSession(fmt.Sprintf("next-%d", w), "u1")}, got)
	}},
	{"touching a session updates only its last-seen time", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		want := newSession("s1", "u1")
		must(t, s.CreateSession(ctx, want))
		want.LastSeen = t0.Add(3 * time.Hour)
		must(t, s.TouchSession(ctx, "s1", want.LastSeen))
		got, err := s.SessionByID(ctx, "s1", t0)
		must(t, err)
		check(t, want, got)
	}},
	{"a deleted session is gone", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateSession(ctx, newSession("s1", "u1")))
		must(t, s.DeleteSession(ctx, "s1"))
		_, err := s.SessionByID(ctx, "s1", t0)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"a user's unexpired sessions are listed oldest first", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		var want []storage.Session
		for i, created := range []time.Duration{2 * time.Hour, 0, time.Hour} {
			sess := newSession(fmt.Sprintf("s%d", i), "u1")
			sess.CreatedAt = t0.Add(created)
			must(t, s.CreateSession(ctx, sess))
			want = append(want, sess)
		}
		want = []storage.Session{want[1], want[2], want[0]}
		expired := newSession("old", "u1")
		expired.ExpiresAt = t0.Add(-time.Nanosecond)
		must(t, s.CreateSession(ctx, expired))
		must(t, s.CreateSession(ctx, newSession("other", "u2")))

		got, err := s.ListUserSessions(ctx, "u1", t0)
		must(t, err)
		check(t, want, got)
		got, err = s.ListUserSessions(ctx, "nobody", t0)
		must(t, err)
		check(t, []storage.Session(nil), got)
	}},
	{"deleting a user's sessions keeps the current one and other users' sessions", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		for _, id := range []string{"s1", "s2", "s3"} {
			must(t, s.CreateSession(ctx, newSession(id, "u1")))
		}
		must(t, s.CreateSession(ctx, newSession("other", "u2")))
		n, err := s.DeleteUserSessions(ctx, "u1", "s2")
		must(t, err)
		if n != 2 {
			t.Errorf("deleted %d, want 2", n)
		}
		got, err := s.ListUserSessions(ctx, "u1", t0)
		must(t, err)
		check(t, []storage.Session{newSession("s2", "u1")}, got)
		_, err = s.SessionByID(ctx, "other", t0)
		must(t, err)

		n, err = s.DeleteUserSessions(ctx, "u1", "")
		must(t, err)
		if n != 1 {
			t.Errorf("deleted %d with no keepID, want 1", n)
		}
	}},
}
