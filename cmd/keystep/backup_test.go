package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// keystep backup, taken from a serving data folder while another writer
// adds users and audit events, restores to a database with every row
// committed before the backup began and an audit chain that verifies.
func TestBackupWhileServingThenRestore(t *testing.T) {
	d := t.TempDir()
	startLive(t, "--data", d)
	keyFile := filepath.Join(d, "master.key")
	key, err := masterKey(keyFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := storage.NewAuditKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Another writer on the same database, as a second process would be.
	w, err := sqlite.Open(t.Context(), filepath.Join(d, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprint("load-", i)
			if err := w.CreateUser(t.Context(), storage.User{ID: id, Username: id, CreatedAt: clock()}); err != nil {
				t.Error(err)
				return
			}
			if _, err := w.AppendAudit(t.Context(), auditKey, storage.AuditEvent{Time: clock(), Type: storage.EventAdminUserCreated, UserID: id, ActorID: "cli", Outcome: "success"}); err != nil {
				t.Error(err)
				return
			}
			committed.Store(i)
		}
	})
	for committed.Load() < 10 {
		time.Sleep(time.Millisecond)
	}
	before := committed.Load()
	backupFile := filepath.Join(t.TempDir(), "keystep-backup.db")
	r := keystep(t, "", "backup", "--data", d, "--to", backupFile)
	close(stop)
	wg.Wait()
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, keyFile) {
		t.Errorf("backup does not say where the master key is:\n%s", r.stdout)
	}
	wantExit(t, keystep(t, "", "backup", "--data", d, "--to", backupFile), 1, "exists")

	// Not over the database being served, even forced.
	wantExit(t, keystep(t, "", "restore", "--data", d, "--from", backupFile, "--force"), 1, "in use")
	// Not with another master key: nothing is written.
	other := t.TempDir()
	wrongKey := filepath.Join(other, "other.key")
	os.WriteFile(wrongKey, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	wantExit(t, keystep(t, "", "restore", "--data", other, "--master-key-file", wrongKey, "--from", backupFile), 1, "master key does not fit")
	noFile(t, filepath.Join(other, "keystep.db"))
	// Not without the key.
	wantExit(t, keystep(t, "", "restore", "--data", t.TempDir(), "--from", backupFile), 1, "master key")

	d2 := t.TempDir()
	mustKeystep(t, "", "restore", "--data", d2, "--master-key-file", keyFile, "--from", backupFile)
	wantExit(t, keystep(t, "", "restore", "--data", d2, "--master-key-file", keyFile, "--from", backupFile), 1, "--force")
	mustKeystep(t, "", "restore", "--data", d2, "--master-key-file", keyFile, "--from", backupFile, "--force")
	mustKeystep(t, "", "audit", "verify", "--data", d2, "--master-key-file", keyFile)

	st, err := sqlite.Open(t.Context(), filepath.Join(d2, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := int64(1); i <= before; i++ {
		if _, err := st.UserByID(t.Context(), fmt.Sprint("load-", i)); err != nil {
			t.Fatalf("load-%d, committed before the backup: %v", i, err)
		}
	}
	events, err := st.ListAudit(t.Context(), storage.AuditFilter{Type: storage.EventAdminUserCreated})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(events)) < before {
		t.Errorf("%d audit events restored, want at least %d", len(events), before)
	}
	// A served database restored elsewhere serves.
	restored := startLive(t, "--data", d2, "--master-key-file", keyFile)
	if code, _ := fetch(t, http.DefaultClient, restored.url+"/keys"); code != 200 {
		t.Errorf("restored server /keys: %d", code)
	}
}

func TestBackupOnPostgresPointsToPgDump(t *testing.T) {
	for _, args := range [][]string{{"backup", "--to", "x"}, {"restore", "--from", "x"}} {
		wantExit(t, keystep(t, "", append(args, "--data", t.TempDir(), "--database", "postgres://keystep@db/keystep")...), 1, "pg_dump", "pg_restore")
	}
	wantExit(t, keystep(t, "", "backup", "--data", t.TempDir()), 2, "--to")
	wantExit(t, keystep(t, "", "backup", "--data", t.TempDir(), "--to", filepath.Join(t.TempDir(), "b.db")), 1, "no database")
}
