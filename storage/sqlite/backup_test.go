package sqlite_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// A backup taken while users are created holds every user whose creation
// returned before the backup started, and a restore brings them back.
func TestBackupUnderWritesThenRestore(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "k.db"))
	key, err := storage.NewAuditKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	var committed atomic.Int64 // users created so far
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.CreateUser(ctx, storage.User{ID: fmt.Sprint("u", i), Username: fmt.Sprint("user", i), CreatedAt: t0}); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.AppendAudit(ctx, key, storage.AuditEvent{Time: t0, Type: storage.EventAdminUserCreated, UserID: fmt.Sprint("u", i), Outcome: "success"}); err != nil {
				t.Error(err)
				return
			}
			committed.Store(i)
		}
	})
	for committed.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	before := committed.Load()
	backup := filepath.Join(dir, "backup.db")
	err = s.Backup(ctx, backup)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(ctx, backup); err == nil {
		t.Error("a backup over an existing file was allowed")
	}

	// The database is open: a restore over it is refused, even forced.
	target := filepath.Join(dir, "k.db")
	accept := func(*sqlite.Store) error { return nil }
	if err := sqlite.Restore(ctx, backup, target, true, accept); !errors.Is(err, sqlite.ErrInUse) {
		t.Fatalf("restore over an open database: %v, want ErrInUse", err)
	}
	// A check that refuses (the wrong master key) replaces nothing.
	fresh := filepath.Join(t.TempDir(), "r.db")
	if err := sqlite.Restore(ctx, backup, fresh, false, func(*sqlite.Store) error { return errors.New("no") }); err == nil {
		t.Fatal("a refused check restored")
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left %s: %v", fresh, err)
	}
	if err := sqlite.Restore(ctx, backup, fresh, false, accept); err != nil {
		t.Fatal(err)
	}
	if err := sqlite.Restore(ctx, backup, fresh, false, accept); err == nil {
		t.Error("a restore over an existing database without force was allowed")
	}
	r := open(t, fresh)
	for i := int64(1); i <= before; i++ {
		if _, err := r.UserByID(ctx, fmt.Sprint("u", i)); err != nil {
			t.Fatalf("user u%d, committed before the backup: %v", i, err)
		}
	}
	events, err := r.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(events)) < before {
		t.Errorf("%d audit events restored, want at least %d", len(events), before)
	}
	if _, err := storage.VerifyAuditChain(key, events); err != nil {
		t.Errorf("restored chain: %v", err)
	}
}
