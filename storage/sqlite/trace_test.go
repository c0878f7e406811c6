package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/keystep/keystep/storage"
)

// statements records what a storage.StatementTracer is told.
type statements struct {
	mu    sync.Mutex
	seen  []string // "system operation"
	ended int
	errs  int
}

func (s *statements) Statement(_ context.Context, system, operation string) func(error) {
	s.mu.Lock()
	s.seen = append(s.seen, system+" "+operation)
	s.mu.Unlock()
	return func(err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.ended++
		if err != nil {
			s.errs++
		}
	}
}

// Every statement of a traced store is reported with its system and
// operation and ended once, for a write, a one-row read, a list and a
// missing row (not an error of the statement); untraced, none is.
func TestTraceStatements(t *testing.T) {
	st := open(t, filepath.Join(t.TempDir(), "k.db"))
	ctx := t.Context()
	rec := &statements{}
	var traced storage.Traced = st
	traced.TraceStatements(rec)
	if err := st.CreateUser(ctx, storage.User{ID: "u1", Username: "alice", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UserByID(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UserByID(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := st.ListUsers(ctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	if !slices.Contains(rec.seen, "sqlite INSERT") || !slices.Contains(rec.seen, "sqlite SELECT") {
		t.Errorf("statements %v, want an INSERT and SELECTs on sqlite", rec.seen)
	}
	if rec.ended != len(rec.seen) || rec.errs != 0 {
		t.Errorf("%d statements, %d ended, %d with an error; want all ended, none failed", len(rec.seen), rec.ended, rec.errs)
	}
	n := len(rec.seen)
	rec.mu.Unlock()

	traced.TraceStatements(nil)
	if _, err := st.ListUsers(ctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) != n {
		t.Errorf("untraced store still reports: %v", rec.seen[n:])
	}
}
