package sqlite

import (
	"path/filepath"
	"testing"
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
