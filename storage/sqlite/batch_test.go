package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// Many writers at once share transactions (batch.go); each must still get
// exactly its own outcome: a failing part is rolled back alone.
func TestGroupCommitKeepsEachCallersOutcome(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	token := func(id string) storage.AccessToken {
		return storage.AccessToken{ID: id, Grant: storage.Grant{ClientID: "svc"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	}
	for i := range 10 {
		if err := s.CreateAccessToken(ctx, token(fmt.Sprintf("taken-%d", i))); err != nil {
			t.Fatal(err)
		}
	}

	// 200 writers at once; every fifth reuses a taken ID, and one pair of
	// refresh tokens fails in its second statement (the access token's ID
	// is taken), which must undo its first.
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			switch {
			case i == 7:
				at := token("taken-0")
				errs[i] = s.CreateRefreshToken(ctx, storage.RefreshToken{ID: "rt-half", FamilyID: "rt-half", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, &at)
			case i%5 == 0:
				errs[i] = s.CreateAccessToken(ctx, token(fmt.Sprintf("taken-%d", i%10)))
			default:
				errs[i] = s.CreateAccessToken(ctx, token(fmt.Sprintf("new-%d", i)))
			}
		})
	}
	before := s.batches.Load()
	wg.Wait()
	t.Logf("%d writers in %d transactions", n, s.batches.Load()-before)
	for i, err := range errs {
		wantTaken := i == 7 || i%5 == 0
		if wantTaken != errors.Is(err, storage.ErrAlreadyExists) || (!wantTaken && err != nil) {
			t.Errorf("writer %d: err %v, want taken=%v", i, err, wantTaken)
		}
		if !wantTaken {
			if _, err := s.AccessTokenByID(ctx, fmt.Sprintf("new-%d", i), t0); err != nil {
				t.Errorf("writer %d's token: %v", i, err)
			}
		}
	}
	if _, err := s.RefreshTokenByID(ctx, "rt-half", t0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the half-failed pair left its refresh token: %v", err)
	}
}

// A writer whose context ends while it waits is skipped; after Close,
// writers fail instead of waiting for ever.
func TestGroupCommitCancelAndClose(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := storage.AccessToken{ID: "a", Grant: storage.Grant{ClientID: "svc"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.CreateAccessToken(ctx, at); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled writer: err %v", err)
	}
	if _, err := s.AccessTokenByID(t.Context(), "a", t0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("cancelled writer's token was stored: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.CreateAccessToken(t.Context(), at) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a write after Close succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write after Close is still waiting")
	}
}

// A part whose caller goes away mid-way still runs to its end: SQLite would
// answer an interrupted write by rolling back the whole shared transaction.
// A panicking part fails alone.
func TestGroupCommitPartsRunToTheirEnd(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	err = s.tx(ctx, func(tx *txn) error {
		cancel() // the caller disconnects after its part has started
		_, err := tx.ExecContext(ctx, `INSERT INTO one_time_tokens (kind, hash, expires_at, used_at) VALUES ('t', 'a', 1, 0)`)
		return err
	})
	if err != nil {
		t.Errorf("a part whose context ended mid-way failed: %v", err)
	}
	err = s.tx(t.Context(), func(tx *txn) error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking part: err %v", err)
	}
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM one_time_tokens`).Scan(&n); err != nil || n != 1 {
		t.Errorf("one_time_tokens has %d rows (%v), want the cancelled caller's 1", n, err)
	}
}
