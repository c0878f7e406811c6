package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// auditOutWait is how long the audit log holds an event back while an
// earlier sequence number, written at the same time by another request,
// has not reached it yet. Numbers that never come this way (written by
// another process: a CLI command, another instance) are then read from
// the store.
var auditOutWait = 500 * time.Millisecond

// auditOut is --audit-log: every audit event the server writes, once
// committed, as one JSON line with the fields `audit export` gives
// (sequence and hashes included), in sequence order. SIGHUP reopens the
// file, for logrotate's create mode.
type auditOut struct {
	path   string // "-" is stdout
	stdout io.Writer
	log    *slog.Logger
	store  storage.Audit // where a gap's events are read from

	mu      sync.Mutex
	f       *os.File // nil for stdout
	w       io.Writer
	next    int64 // the sequence number due next
	pending map[int64]storage.AuditEvent
	timer   *time.Timer
}

// openAuditOut opens path for appending; the first event due is the one
// after the store's last.
func openAuditOut(ctx context.Context, path string, stdout io.Writer, st storage.Audit, log *slog.Logger) (*auditOut, error) {
	last, err := st.ListAudit(ctx, storage.AuditFilter{Newest: true, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	a := &auditOut{path: path, stdout: stdout, log: log, store: st, next: 1, pending: map[int64]storage.AuditEvent{}}
	if len(last) > 0 {
		a.next = last[0].Seq + 1
	}
	if err := a.reopen(); err != nil {
		return nil, err
	}
	return a, nil
}

// reopen opens the file anew (after logrotate moved it away) and closes
// the old one.
func (a *auditOut) reopen() error {
	if a.path == "-" {
		a.mu.Lock()
		a.w = a.stdout
		a.mu.Unlock()
		return nil
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("--audit-log: %w", err)
	}
	a.mu.Lock()
	old := a.f
	a.f, a.w = f, f
	a.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// event is the server's AuditSink.
func (a *auditOut) event(e storage.AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case e.Seq < a.next: // late, after its gap was given up on
		a.write(e)
	case e.Seq == a.next:
		a.write(e)
		a.next++
		for {
			p, ok := a.pending[a.next]
			if !ok {
				break
			}
			delete(a.pending, a.next)
			a.write(p)
			a.next++
		}
	default:
		a.pending[e.Seq] = e
		if a.timer == nil {
			a.timer = time.AfterFunc(auditOutWait, a.flush)
		}
	}
	if len(a.pending) == 0 && a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

// flush writes what is held back, in order. A gap before a held event
// was written by another process (its sequence number is taken, and the
// chain commits in order, so it is in the store): it is read from there.
func (a *auditOut) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.timer = nil
	seqs := slices.Sorted(maps.Keys(a.pending))
	for _, s := range seqs {
		if s > a.next {
			a.fill(s)
		}
		a.write(a.pending[s])
		delete(a.pending, s)
		a.next = s + 1
	}
}

// fill writes the stored events from a.next up to before seq; a.mu is held.
// One that cannot be read is logged as missing.
func (a *auditOut) fill(seq int64) {
	if a.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	evs, err := a.store.ListAudit(ctx, storage.AuditFilter{AfterSeq: a.next - 1, Limit: int(seq - a.next)})
	if err != nil {
		a.log.Error("audit log: events written elsewhere could not be read", "from", a.next, "to", seq-1, "err", err)
		return
	}
	for _, e := range evs {
		if e.Seq < seq {
			a.write(e)
		}
	}
}

// write writes one line; a.mu is held. The event is already committed:
// a failure here is logged, never the request's.
func (a *auditOut) write(e storage.AuditEvent) {
	line, err := json.Marshal(admin.AuditJSONOf(e))
	if err == nil {
		_, err = a.w.Write(append(line, '\n'))
	}
	if err != nil {
		a.log.Error("audit log write failed", "seq", e.Seq, "err", err)
	}
}

// Close writes what is held back and closes the file.
func (a *auditOut) Close() error {
	a.flush()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.timer != nil {
		a.timer.Stop()
	}
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f, a.w = nil, io.Discard
	return err
}
