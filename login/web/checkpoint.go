package web

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/keystep/keystep/storage"
)

// Checkpoints (DESIGN §7): the keyed chain shows an edited row, but not the
// newest rows deleted, since what is left still chains up. So the server
// signs the head (its row and hash) regularly and writes that checkpoint to
// the log and to the structured log, from where operators ship it elsewhere;
// `keystep audit verify --checkpoint` then shows whether the log still
// reaches it.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Minute
)

// checkpointState is when the last checkpoint was written. It is refreshed
// from the log before each write, so instances sharing one log (and a
// restarted server) count from the newest checkpoint any of them wrote.
type checkpointState struct {
	mu     sync.Mutex
	loaded bool
	seq    int64     // the newest checkpoint event's row; 0 for none
	at     time.Time // its time; with none, when this process first looked
}

// checkpointAfter writes a checkpoint of e, just appended, when one is due.
// A failure is logged, not returned: e itself is in the log.
func (a *Auditor) checkpointAfter(ctx context.Context, e storage.AuditEvent) {
	if a.SignCheckpoint == nil {
		return
	}
	a.cp.mu.Lock()
	defer a.cp.mu.Unlock()
	if a.cp.loaded && !a.due(e.Seq) {
		return
	}
	if err := a.checkpointLocked(ctx, e, false); err != nil {
		a.Log.ErrorContext(ctx, "audit checkpoint failed", "seq", e.Seq, "err", err)
	}
}

// Checkpoint writes a checkpoint of the log's head when the interval has
// passed with events since the last one, so a quiet server does not leave
// its last events unchecked. A head from before the chain was keyed gets
// one at once: that checkpoint is the first keyed row, and it seals the
// unkeyed rows (their hash is under its key). The server calls Checkpoint
// at start and from its maintenance loop.
func (a *Auditor) Checkpoint(ctx context.Context) error {
	if a.SignCheckpoint == nil {
		return nil
	}
	a.cp.mu.Lock()
	defer a.cp.mu.Unlock()
	heads, err := a.Store.ListAudit(ctx, storage.AuditFilter{Newest: true, Limit: 1})
	if err != nil || len(heads) == 0 {
		return err
	}
	return a.checkpointLocked(ctx, heads[0], !heads[0].Keyed())
}

// checkpointLocked writes a checkpoint of head if it is due (or force) and
// no checkpoint covers it yet. a.cp.mu is held.
func (a *Auditor) checkpointLocked(ctx context.Context, head storage.AuditEvent, force bool) error {
	last, err := a.Store.ListAudit(ctx, storage.AuditFilter{Type: storage.EventAuditCheckpoint, Newest: true, Limit: 1})
	if err != nil {
		return err
	}
	switch {
	case len(last) == 1 && last[0].Seq > a.cp.seq:
		a.cp.seq, a.cp.at = last[0].Seq, last[0].Time
	case !a.cp.loaded:
		a.cp.at = a.Now()
	}
	a.cp.loaded = true
	if head.Seq <= a.cp.seq || !force && !a.due(head.Seq) {
		return nil
	}
	reason := "first keyed row after rows written before the chain was keyed"
	if !force {
		reason = fmt.Sprintf("%d events or %s since the last checkpoint", a.every(), a.interval())
	}
	signed, err := a.SignCheckpoint(ctx, storage.AuditCheckpoint{Seq: head.Seq, Hash: head.Hash})
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	saved, err := a.Store.AppendAudit(ctx, a.Key, storage.AuditEvent{
		Time: a.Now(), Type: storage.EventAuditCheckpoint, Outcome: "success", Reason: reason,
		Details: map[string]string{"seq": strconv.FormatInt(head.Seq, 10), "hash": head.Hash, "checkpoint": signed},
	})
	if err != nil {
		return err
	}
	a.cp.seq, a.cp.at = saved.Seq, saved.Time
	if force {
		// Nothing in the database tells a log from before the keyed chain
		// from one rewritten whole without the master key; say so once.
		a.Log.WarnContext(ctx, "audit log continues keyed after unkeyed rows: expected once, after upgrading from a Keystep before the keyed chain; otherwise the log was rewritten",
			"unkeyed_rows", head.Seq)
	}
	if a.OnEvent != nil {
		a.OnEvent(saved)
	}
	// The line operators ship elsewhere: "checkpoint" is what
	// `keystep audit verify --checkpoint` takes.
	a.Log.InfoContext(ctx, "audit checkpoint", "seq", head.Seq, "hash", head.Hash, "checkpoint", signed, "event_seq", saved.Seq)
	return nil
}

// due reports whether a checkpoint of row head is due: enough events or
// enough time since the last one. a.cp.mu is held.
func (a *Auditor) due(head int64) bool {
	return head-a.cp.seq >= int64(a.every()) || !a.Now().Before(a.cp.at.Add(a.interval()))
}

func (a *Auditor) every() int {
	if a.CheckpointEvery > 0 {
		return a.CheckpointEvery
	}
	return DefaultCheckpointEvery
}

func (a *Auditor) interval() time.Duration {
	if a.CheckpointInterval > 0 {
		return a.CheckpointInterval
	}
	return DefaultCheckpointInterval
}
