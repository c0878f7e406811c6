package conformance

// Issue 15, "the audit chain can't be rewritten or cut without notice"
// (DESIGN §7): the server writes signed checkpoints of the keyed chain's
// head into the log and its structured log. The CLI side (keyed chain,
// truncation against a kept checkpoint, forged checkpoints, unkeyed rows
// from before) is tested in cmd/keystep/audit_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage"
)

// logBuffer collects the server's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the lines whose msg is msg.
func (l *logBuffer) lines(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// auditLog is the whole log; it fails the test unless the chain verifies
// under the server's key.
func (e *env) auditLog() []storage.AuditEvent {
	e.t.Helper()
	events, err := e.store.ListAudit(context.Background(), storage.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := storage.NewAuditKey(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := storage.VerifyAuditChain(key, events); err != nil {
		e.t.Fatal(err)
	}
	return events
}

// checkpoints are the log's checkpoint events, each checked: it covers an
// earlier row by that row's hash, and its signed form verifies under the
// server's keys and says the same.
func (e *env) checkpoints(events []storage.AuditEvent) map[int64]int64 {
	e.t.Helper()
	covers := map[int64]int64{} // checkpoint row → row covered
	for _, ev := range events {
		if ev.Type != storage.EventAuditCheckpoint {
			continue
		}
		seq, err := strconv.ParseInt(ev.Details["seq"], 10, 64)
		if err != nil || seq < 1 || seq >= ev.Seq || ev.Details["hash"] != events[seq-1].Hash {
			e.t.Fatalf("checkpoint row %d: details %v do not name an earlier row by its hash", ev.Seq, ev.Details)
		}
		cp, err := idp.VerifyCheckpoint(context.Background(), e.store, e.key, ev.Details["checkpoint"])
		if err != nil || cp.Seq != seq || cp.Hash != ev.Details["hash"] || !cp.IssuedAt.Equal(ev.Time.Truncate(time.Second)) {
			e.t.Fatalf("checkpoint row %d: %+v, %v; want row %d signed at %s", ev.Seq, cp, err, seq, ev.Time)
		}
		covers[ev.Seq] = seq
	}
	return covers
}

func TestReview2AuditCheckpointEveryNEventsAndMinutes(t *testing.T) {
	logs := &logBuffer{}
	e := newEnv(t, func(c *idp.Config) {
		c.AuditCheckpointEvery = 4
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	r := e.rp(rpClient, e.rpSecret)
	for len(e.auditLog()) < 11 {
		r.login(e.browser(), nil)
	}
	events := e.auditLog()
	covers := e.checkpoints(events)
	// None before: the first after 4 events (row 5 covering row 4), the
	// next 4 events after that one (row 10 covering row 9).
	if covers[5] != 4 || covers[10] != 9 || len(covers) != 2 {
		t.Fatalf("checkpoints (row → row covered) %v, want {5: 4, 10: 9}", covers)
	}
	// Each also went to the structured log, for operators to ship.
	lines := logs.lines("audit checkpoint")
	if len(lines) != 2 {
		t.Fatalf("%d checkpoint log lines, want 2", len(lines))
	}
	for i, row := range []int64{5, 10} {
		if l := lines[i]; l["checkpoint"] != events[row-1].Details["checkpoint"] || l["seq"] != float64(covers[row]) || l["hash"] != events[covers[row]-1].Hash {
			t.Errorf("log line %v, want checkpoint row %d", l, row)
		}
	}

	// Ten minutes later the first event is followed by a checkpoint,
	// however few events came since the last one.
	head := int64(len(events))
	e.clock.Advance(10 * time.Minute)
	r.login(e.browser(), nil)
	events = e.auditLog()
	if covers := e.checkpoints(events); covers[head+2] != head+1 {
		t.Fatalf("after 10 minutes: checkpoints %v, want row %d covering row %d", covers, head+2, head+1)
	}

	// A quiet server writes one from its maintenance loop once the
	// interval has passed with events unchecked.
	r.login(e.browser(), nil)
	head = int64(len(e.auditLog()))
	e.clock.Advance(10 * time.Minute)
	srv, err := idp.NewServer(context.Background(), idp.Config{ // a second instance, or a restart
		Issuer: e.issuer, Store: e.store, MasterKey: e.key, Policy: stepup.DefaultPolicy(), Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(len(e.auditLog())); got != head+1 {
		t.Fatalf("a start with an overdue checkpoint left %d rows, want %d (one checkpoint)", got, head+1)
	}
	events = e.auditLog()
	if covers := e.checkpoints(events); covers[head+1] != head {
		t.Fatalf("checkpoints %v, want row %d covering the head, row %d", covers, head+1, head)
	}
	r.login(e.browser(), nil)
	head = int64(len(e.auditLog()))
	e.clock.Advance(10 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Maintain(ctx, time.Hour) }()
	// Maintain's first pass runs at once; the next is an hour away.
	deadline := time.Now().Add(5 * time.Second)
	for int64(len(e.auditLog())) == head {
		if time.Now().After(deadline) {
			t.Fatal("Maintain wrote nothing within 5 s of starting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if covers := e.checkpoints(e.auditLog()); covers[head+1] != head {
		t.Fatalf("after Maintain: checkpoints %v, want row %d covering row %d", covers, head+1, head)
	}
	// Nothing new since: no checkpoint of a checkpoint.
	e.clock.Advance(time.Hour)
	if _, err := idp.NewServer(context.Background(), idp.Config{
		Issuer: e.issuer, Store: e.store, MasterKey: e.key, Policy: stepup.DefaultPolicy(), Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}); err != nil {
		t.Fatal(err)
	}
	if got := int64(len(e.auditLog())); got != head+1 {
		t.Errorf("a quiet hour added %d rows", got-head-1)
	}
}

// A checkpoint is signed with the key that also signs JWT access tokens;
// its own type keeps it from passing as one.
func TestReview2AuditCheckpointIsNoAccessToken(t *testing.T) {
	e := newEnv(t, func(c *idp.Config) { c.AuditCheckpointEvery = 1 })
	e.rp(rpClient, e.rpSecret).login(e.browser(), nil)
	var cp string
	for _, ev := range e.auditLog() {
		if ev.Type == storage.EventAuditCheckpoint {
			cp = ev.Details["checkpoint"]
		}
	}
	if cp == "" {
		t.Fatal("no checkpoint written")
	}
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+cp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo with a checkpoint as the token: %d, want 401", resp.StatusCode)
	}
}
