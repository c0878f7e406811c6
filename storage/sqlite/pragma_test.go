package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// Every connection, in both pools, must carry the DSN's settings.
func TestConnectionSettings(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	for _, tc := range []struct {
		pool   string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "busy_timeout", "5000"},
		{"writer", "foreign_keys", "1"},
		{"writer", "synchronous", "1"}, // NORMAL
		{"writer", "query_only", "0"},
		{"reader", "journal_mode", "wal"},
		{"reader", "busy_timeout", "5000"},
		{"reader", "query_only", "1"},
	} {
		db := s.w
		if tc.pool == "reader" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: PRAGMA %s = %s, want %s", tc.pool, tc.pragma, got, tc.want)
		}
	}
	if _, err := s.r.ExecContext(t.Context(), `DELETE FROM users`); err == nil {
		t.Error("a reader connection accepted a write")
	}
}

// The checkpointer copies the WAL back without waiting for the writer's
// automatic checkpoint, which is only a backstop.
func TestBackgroundCheckpoint(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var pages int
	if err := s.w.QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != backstopPages {
		t.Errorf("wal_autocheckpoint = %d, want the backstop %d", pages, backstopPages)
	}
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO one_time_tokens (kind, hash, expires_at, used_at) VALUES ('t', 'h', 1, 0)`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.checkpoints.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint within 10 s of a write")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // twice is harmless
		t.Fatal(err)
	}
}

// After a load the WAL file goes back to a small size (issue 17): SQLite
// reuses it at its largest otherwise, even once it has restarted and holds
// a few frames.
func TestIdleWALIsTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size := func() int64 {
		db, wal, err := s.Size(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// The rows count in the database whether or not their pages
		// have left the WAL.
		if db < 8<<20 || db%4096 != 0 {
			t.Errorf("database size %d, want at least 8 MiB of whole pages", db)
		}
		return wal
	}
	write := func(query string) {
		if _, err := s.w.ExecContext(t.Context(), query); err != nil {
			t.Fatal(err)
		}
	}
	// About 8 MiB of WAL in one write, then small writes for a few ticks:
	// once the checkpointer has copied the big one, the next write
	// restarts the WAL, which then has a few frames in a large file.
	write(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
		INSERT INTO one_time_tokens (kind, hash, expires_at, used_at) SELECT 't', hex(randomblob(2000)) || i, 1, 0 FROM n`)
	if n := size(); n <= walKeepBytes {
		t.Fatalf("the load left a WAL of %d bytes; the test needs more than %d", n, walKeepBytes)
	}
	for i := range 15 {
		write(fmt.Sprintf(`INSERT INTO one_time_tokens (kind, hash, expires_at, used_at) VALUES ('t', 'small-%d', 1, 0)`, i))
		time.Sleep(checkpointEvery / 4)
	}
	deadline := time.Now().Add(10 * time.Second)
	for size() > walKeepBytes {
		if time.Now().After(deadline) {
			t.Fatalf("the idle WAL still has %d bytes after 10 s, want at most %d", size(), walKeepBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
