package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

func newOutboxMessage(id, clientID string) storage.OutboxMessage {
	return storage.OutboxMessage{
		ID: id, Kind: storage.OutboxBackchannelLogout, ClientID: clientID,
		Target: "https://" + clientID + ".example/backchannel", Payload: `{"sub":"user-1","sid":"sid-1","jti":"` + id + `"}`,
		Status: storage.OutboxPending, QueuedAt: t0, NextAttemptAt: t0,
	}
}

var outboxTests = []test{
	{"the clients under a session come from its families and completed requests", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("g1")
		must(t, s.CreateFamily(ctx, newFamily("f1", g), nil))
		g2 := newGrant("g2")
		g2.ClientID = "other"
		must(t, s.CreateFamily(ctx, newFamily("f2", g2), nil))
		g3 := newGrant("g3")
		g3.SessionID, g3.ClientID = "sid-2", "elsewhere"
		must(t, s.CreateFamily(ctx, newFamily("f3", g3), nil))
		ar := newAuthRequest("ar1")
		ar.ClientID = "code-only"
		must(t, s.CreateAuthRequest(ctx, ar))
		res := authResult
		res.SessionID = "sid-1"
		must(t, s.CompleteAuthRequest(ctx, "ar1", res))
		pending := newAuthRequest("ar2") // not completed: no session yet
		pending.ClientID = "pending"
		must(t, s.CreateAuthRequest(ctx, pending))

		got, err := s.SessionClients(ctx, "sid-1")
		must(t, err)
		check(t, []string{"code-only", "other", "rp"}, got)
		got, err = s.SessionClients(ctx, "unknown")
		must(t, err)
		check(t, []string(nil), got)
	}},
	{"ending a session deletes it, revokes its tokens only, and queues its messages in one step", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateSession(ctx, newSession("s1", "user-1")))
		must(t, s.CreateSession(ctx, newSession("s2", "user-1")))
		g := newGrant("g1")
		at := newAccessToken("at1", g, "f1")
		must(t, s.CreateFamily(ctx, newFamily("f1", g), &at))
		other := newGrant("g2")
		other.SessionID = "sid-2"
		must(t, s.CreateFamily(ctx, newFamily("f2", other), nil))
		must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt1", "legacy", g), nil))
		m := newOutboxMessage("m1", "rp")
		must(t, s.EndSessions(ctx, []storage.SessionEnd{{ID: "s1", UserID: "user-1", SID: "sid-1"}}, []storage.OutboxMessage{m}))

		_, err := s.SessionByID(ctx, "s1", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.SessionByID(ctx, "s2", t0)
		must(t, err)
		f, err := s.FamilyByID(ctx, "f1")
		must(t, err)
		if !f.Revoked {
			t.Error("the session's family is not revoked")
		}
		_, err = s.AccessTokenByID(ctx, "at1", t0)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.RotateFamily(ctx, "f1", 0, nil, nil, t0)
		if err == nil {
			t.Error("a revoked family rotated")
		}
		_, err = s.RefreshTokenByID(ctx, "rt1", t0)
		wantErr(t, err, storage.ErrNotFound)
		f2, err := s.FamilyByID(ctx, "f2")
		must(t, err)
		if f2.Revoked {
			t.Error("another session's family was revoked")
		}
		got, err := s.OutboxMessages(ctx, "", "", 10)
		must(t, err)
		check(t, []storage.OutboxMessage{m}, got)

		// A session already gone still has its tokens revoked; a
		// message ID taken fails the whole step.
		must(t, s.CreateSession(ctx, newSession("s3", "user-1")))
		err = s.EndSessions(ctx, []storage.SessionEnd{{ID: "s3", UserID: "user-1"}, {UserID: "user-1", SID: "sid-2"}}, []storage.OutboxMessage{m})
		wantErr(t, err, storage.ErrAlreadyExists)
		_, err = s.SessionByID(ctx, "s3", t0)
		must(t, err)
		if f2, _ := s.FamilyByID(ctx, "f2"); f2.Revoked {
			t.Error("a failed end revoked a family")
		}
		must(t, s.EndSessions(ctx, []storage.SessionEnd{{ID: "s3", UserID: "user-1"}, {UserID: "user-1", SID: "sid-2"}}, nil))
		if f2, _ := s.FamilyByID(ctx, "f2"); !f2.Revoked {
			t.Error("the family of a session already gone is not revoked")
		}
	}},
	{"expired and idle sessions are listed for ending, oldest first", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		old := newSession("old", "u1")
		old.ExpiresAt = t0.Add(-time.Minute)
		idle := newSession("idle", "u1")
		idle.LastSeen = t0.Add(-2 * time.Hour)
		live := newSession("live", "u1")
		for _, x := range []storage.Session{old, idle, live} {
			must(t, s.CreateSession(ctx, x))
		}
		got, err := s.ExpiredSessions(ctx, t0, t0.Add(-time.Hour), 10)
		must(t, err)
		check(t, []storage.Session{old, idle}, got)
		got, err = s.ExpiredSessions(ctx, t0, t0.Add(-time.Hour), 1)
		must(t, err)
		check(t, []storage.Session{old}, got)
	}},
	{"a message is claimed by one of many concurrent workers, leased, and due again when the lease runs out", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		const n = 20
		var msgs []storage.OutboxMessage
		for i := range n {
			msgs = append(msgs, newOutboxMessage(fmt.Sprintf("m%02d", i), "rp"))
		}
		must(t, s.EndSessions(ctx, nil, msgs))
		var mu sync.Mutex
		claimed := map[string]string{}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				owner := fmt.Sprintf("w%d", w)
				for range 5 {
					got, err := s.ClaimOutbox(ctx, owner, t0, time.Minute, 3)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, m := range got {
						if prev, ok := claimed[m.ID]; ok {
							t.Errorf("%s claimed by %s and %s", m.ID, prev, owner)
						}
						claimed[m.ID] = owner
						if m.Attempts != 1 || m.LeaseOwner != owner || !m.LeaseUntil.Equal(t0.Add(time.Minute)) || !m.LastAttemptAt.Equal(t0) {
							t.Errorf("claimed %+v", m)
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != n {
			t.Fatalf("%d of %d messages claimed", len(claimed), n)
		}
		got, err := s.ClaimOutbox(ctx, "late", t0.Add(time.Minute-time.Nanosecond), time.Minute, n)
		must(t, err)
		if len(got) != 0 {
			t.Errorf("%d messages claimed while leased", len(got))
		}
		// The leases run out (a worker died): every message is due again,
		// a few of one client's at a time, oldest first.
		got, err = s.ClaimOutbox(ctx, "late", t0.Add(time.Minute), time.Minute, n)
		must(t, err)
		if len(got) == 0 || len(got) > 4 || got[0].ID != "m00" || got[0].Attempts != 2 {
			t.Fatalf("after the leases: claimed %d (want 1 to 4 of one client's), first %+v", len(got), got)
		}
		total := len(got)
		for range n {
			more, err := s.ClaimOutbox(ctx, "late", t0.Add(time.Minute), time.Minute, n)
			must(t, err)
			total += len(more)
		}
		if total != n {
			t.Fatalf("after the leases: %d of %d messages claimed again", total, n)
		}
		// The first owner lost its lease: it cannot reschedule.
		wantErr(t, s.RetryOutbox(ctx, "m00", claimed["m00"], t0.Add(time.Hour), "x"), storage.ErrNotFound)
	}},
	{"one claim takes a few of each client's messages, so one app's queue never holds up another's", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		var msgs []storage.OutboxMessage
		for i := range 10 {
			msgs = append(msgs, newOutboxMessage(fmt.Sprintf("slow%02d", i), "slow"))
		}
		msgs = append(msgs, newOutboxMessage("fast", "fast"))
		must(t, s.EndSessions(ctx, nil, msgs))
		got, err := s.ClaimOutbox(ctx, "w", t0, time.Minute, 16)
		must(t, err)
		per := map[string]int{}
		for _, m := range got {
			per[m.ClientID]++
		}
		if per["fast"] != 1 || per["slow"] < 1 || per["slow"] > 4 {
			t.Fatalf("one claim took %v", per)
		}
	}},
	{"a failed delivery is retried when due, a delivered one is gone, a given-up one waits for a requeue", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.EndSessions(ctx, nil, []storage.OutboxMessage{newOutboxMessage("a", "rp"), newOutboxMessage("b", "rp"), newOutboxMessage("c", "other")}))
		got, err := s.ClaimOutbox(ctx, "w", t0, time.Minute, 10)
		must(t, err)
		if len(got) != 3 {
			t.Fatalf("claimed %d", len(got))
		}
		must(t, s.RetryOutbox(ctx, "a", "w", t0.Add(10*time.Second), "503 Service Unavailable"))
		must(t, s.FinishOutbox(ctx, "b"))
		must(t, s.FinishOutbox(ctx, "b")) // delivered twice: not an error
		must(t, s.FailOutbox(ctx, "c", "w", "gave up: connection refused"))
		wantErr(t, s.RequeueOutbox(ctx, "a", t0), storage.ErrNotFound) // only a failed one

		got, err = s.ClaimOutbox(ctx, "w", t0.Add(9*time.Second), time.Minute, 10)
		must(t, err)
		if len(got) != 0 {
			t.Errorf("claimed %d before the retry is due", len(got))
		}
		got, err = s.ClaimOutbox(ctx, "w", t0.Add(10*time.Second), time.Minute, 10)
		must(t, err)
		if len(got) != 1 || got[0].ID != "a" || got[0].Attempts != 2 || got[0].LastError != "503 Service Unavailable" {
			t.Fatalf("claimed %+v", got)
		}

		sums, err := s.OutboxSummaries(ctx)
		must(t, err)
		check(t, []storage.OutboxSummary{
			{ClientID: "other", Failed: 1, LastAttemptAt: t0, LastError: "gave up: connection refused"},
			{ClientID: "rp", Pending: 1, LastAttemptAt: t0.Add(10 * time.Second), LastError: "503 Service Unavailable"},
		}, sums)
		failed, err := s.OutboxMessages(ctx, "other", storage.OutboxFailed, 10)
		must(t, err)
		if len(failed) != 1 || failed[0].ID != "c" {
			t.Fatalf("failed = %+v", failed)
		}
		one, err := s.OutboxMessage(ctx, "c")
		must(t, err)
		check(t, failed[0], one)
		_, err = s.OutboxMessage(ctx, "b") // delivered
		wantErr(t, err, storage.ErrNotFound)
		must(t, s.FinishOutbox(ctx, "a"))
		n, err := s.DeleteGivenUpOutbox(ctx, t0) // last attempted at t0: kept
		must(t, err)
		if n != 0 {
			t.Fatalf("deleted %d given-up messages attempted at the cutoff", n)
		}
		must(t, s.RequeueOutbox(ctx, "c", t0.Add(time.Hour)))
		got, err = s.ClaimOutbox(ctx, "w", t0.Add(time.Hour), time.Minute, 10)
		must(t, err)
		if len(got) != 1 || got[0].ID != "c" || got[0].Attempts != 1 || !got[0].QueuedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("requeued: %+v", got)
		}
	}},
}

var outboxSweepTests = []test{
	{"given-up messages are deleted once old, pending ones never", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.EndSessions(ctx, nil, []storage.OutboxMessage{newOutboxMessage("old", "rp"), newOutboxMessage("new", "rp"), newOutboxMessage("pending", "rp")}))
		for _, c := range []struct {
			id string
			at time.Time
		}{{"old", t0}, {"new", t0.Add(time.Hour)}} {
			got, err := s.ClaimOutbox(ctx, "w", c.at, time.Minute, 1)
			must(t, err)
			if len(got) != 1 {
				t.Fatalf("claimed %d", len(got))
			}
			must(t, s.FailOutbox(ctx, got[0].ID, "w", "gave up"))
		}
		n, err := s.DeleteGivenUpOutbox(ctx, t0.Add(time.Hour))
		must(t, err)
		if n != 1 {
			t.Errorf("deleted %d, want 1", n)
		}
		left, err := s.OutboxMessages(ctx, "", "", 10)
		must(t, err)
		if len(left) != 2 {
			t.Errorf("%d left, want 2 (the newer given-up one and the pending one)", len(left))
		}
	}},
}

var sessionClientTests = []test{
	{"a client given tokens under a session is remembered after its family is swept, until the session ends", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		g := newGrant("g1")
		f := newFamily("f1", g)
		f.ExpiresAt = t0.Add(time.Minute) // no refresh token: it lives as long as the access token
		must(t, s.CreateFamily(ctx, f, nil))
		must(t, s.CreateFamily(ctx, newFamily("f2", g), nil)) // the same client again
		cc := newGrant("g3")
		cc.Subject, cc.SessionID = "", "" // client credentials: no session
		cc.ClientID = "machine"
		must(t, s.CreateFamily(ctx, newFamily("f3", cc), nil))
		_, err := s.DeleteExpiredTokens(ctx, t0.Add(48*time.Hour))
		must(t, err)
		got, err := s.SessionClients(ctx, "sid-1")
		must(t, err)
		check(t, []string{"rp"}, got)

		must(t, s.EndSessions(ctx, []storage.SessionEnd{{UserID: "user-1", SID: "sid-1"}}, nil))
		got, err = s.SessionClients(ctx, "sid-1")
		must(t, err)
		check(t, []string(nil), got)
	}},
	{"ending a session deletes the requests completed in it, so their codes are never redeemed", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateAuthRequest(ctx, newAuthRequest("ar1")))
		must(t, s.CompleteAuthRequest(ctx, "ar1", authResult))
		must(t, s.SaveAuthCode(ctx, "ar1", "code-1", t0.Add(time.Minute)))
		other := newAuthRequest("ar2") // not completed: no session yet
		must(t, s.CreateAuthRequest(ctx, other))
		must(t, s.EndSessions(ctx, []storage.SessionEnd{{UserID: authResult.Subject, SID: authResult.SessionID}}, nil))
		_, err := s.ConsumeAuthCode(ctx, "code-1", t0)
		if err == nil {
			t.Fatal("a code was redeemed after its session ended")
		}
		_, err = s.AuthRequestByID(ctx, "ar2", t0)
		must(t, err)
	}},
	{"remembered clients are forgotten by age, a batch at a time", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		for i := range 3 {
			g := newGrant(fmt.Sprintf("g%d", i))
			g.SessionID = fmt.Sprintf("sid-%d", i)
			f := newFamily(fmt.Sprintf("f%d", i), g)
			f.CreatedAt = t0.Add(time.Duration(i) * time.Hour)
			must(t, s.CreateFamily(ctx, f, nil))
		}
		_, err := s.DeleteExpiredTokens(ctx, t0.Add(48*time.Hour))
		must(t, err)
		n, err := s.ForgetSessionClients(ctx, t0.Add(90*time.Minute))
		must(t, err)
		if n != 2 {
			t.Errorf("forgot %d, want 2", n)
		}
		for sid, want := range map[string][]string{"sid-0": nil, "sid-1": nil, "sid-2": {"rp"}} {
			got, err := s.SessionClients(ctx, sid)
			must(t, err)
			check(t, want, got)
		}
	}},
}
