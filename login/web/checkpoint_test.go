package web_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// newAuditor is an Auditor on a fresh SQLite store, checkpointing every 5
// events, whose signer writes "cp:SEQ:HASH" (the signature itself is
// idp's and tested there) unless fail is set.
func newAuditor(t *testing.T, fail *atomic.Bool) (*web.Auditor, storage.AuditKey) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := storage.NewAuditKey([]byte("login test master key, 32 bytes!"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	return &web.Auditor{
		Store: st, Key: key, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 },
		CheckpointEvery: 5,
		SignCheckpoint: func(_ context.Context, c storage.AuditCheckpoint) (string, error) {
			if fail != nil && fail.Load() {
				return "", errors.New("no signing key")
			}
			return fmt.Sprintf("cp:%d:%s", c.Seq, c.Hash), nil
		},
	}, key
}

// checkpointRows verifies the chain and returns, for each checkpoint row,
// the row it covers.
func checkpointRows(t *testing.T, a *web.Auditor, key storage.AuditKey) (rows, covered []int64) {
	t.Helper()
	events, err := a.Store.ListAudit(t.Context(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.VerifyAuditChain(key, events); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Type != storage.EventAuditCheckpoint {
			continue
		}
		seq, _ := strconv.ParseInt(e.Details["seq"], 10, 64)
		if seq < 1 || seq >= e.Seq || e.Details["checkpoint"] != fmt.Sprintf("cp:%d:%s", seq, events[seq-1].Hash) {
			t.Fatalf("checkpoint row %d: %v", e.Seq, e.Details)
		}
		rows, covered = append(rows, e.Seq), append(covered, seq)
	}
	return rows, covered
}

func TestCheckpointsUnderConcurrentRecords(t *testing.T) {
	a, key := newAuditor(t, nil)
	var wg sync.WaitGroup
	errs := make([]error, 60)
	for i := range errs {
		wg.Go(func() {
			errs[i] = a.Record(t.Context(), storage.AuditEvent{Type: "login.completed", UserID: "u1", Outcome: "success"})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rows, covered := checkpointRows(t, a, key)
	if len(rows) == 0 {
		t.Fatal("no checkpoint after 60 events, one every 5")
	}
	// No row is checkpointed twice, and checkpoints are at least 5 events apart.
	last := int64(0)
	for i := range rows {
		if covered[i]-last < 5 {
			t.Errorf("checkpoint row %d covers row %d, %d after the last checkpoint", rows[i], covered[i], covered[i]-last)
		}
		last = rows[i]
	}
	// From here on, one after every 5 events.
	for range 5 {
		if err := a.Record(t.Context(), storage.AuditEvent{Type: "login.completed", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	rows2, covered2 := checkpointRows(t, a, key)
	if len(rows2) != len(rows)+1 || covered2[len(rows)] != last+5 {
		t.Errorf("checkpoints %v covering %v; want one more, covering row %d", rows2, covered2, last+5)
	}
}

// A checkpoint that cannot be signed does not fail the event that was due
// for it; the next event tries again.
func TestCheckpointFailureKeepsTheEventAndRetries(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	a, key := newAuditor(t, &fail)
	for range 6 {
		if err := a.Record(t.Context(), storage.AuditEvent{Type: "login.completed", Outcome: "success"}); err != nil {
			t.Fatalf("Record with a failing signer: %v", err)
		}
	}
	if rows, _ := checkpointRows(t, a, key); len(rows) != 0 {
		t.Fatalf("checkpoints %v written without a signature", rows)
	}
	fail.Store(false)
	if err := a.Record(t.Context(), storage.AuditEvent{Type: "login.completed", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	if rows, covered := checkpointRows(t, a, key); len(rows) != 1 || rows[0] != 8 || covered[0] != 7 {
		t.Errorf("checkpoints %v covering %v, want row 8 covering row 7", rows, covered)
	}
	// An empty log has nothing to checkpoint.
	b, _ := newAuditor(t, nil)
	if err := b.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	if events, _ := b.Store.ListAudit(t.Context(), storage.AuditFilter{}); len(events) != 0 {
		t.Errorf("Checkpoint on an empty log wrote %d rows", len(events))
	}
}
