package main

import (
	"os"
	"strings"
	"testing"
)

// --database postgres://… keeps every piece of state in PostgreSQL; the data
// folder then holds only the master key.
func TestDatabaseFlagUsesPostgreSQL(t *testing.T) {
	db := testPostgres(t)

	data := t.TempDir()
	mustKeystep(t, testPassword, "users", "create", "--username", "alice", "--password-stdin", "--data", data, "--database", db)
	r := mustKeystep(t, "", "users", "list", "--json", "--data", data, "--database", db)
	if !strings.Contains(r.stdout, `"alice"`) {
		t.Fatalf("users list: %s", r.stdout)
	}
	if _, err := os.Stat(data + "/keystep.db"); err == nil {
		t.Fatal("a SQLite database was created next to --database")
	}
	// Another data folder with the same database sees the same users.
	r = mustKeystep(t, "", "users", "list", "--json", "--data", t.TempDir(), "--database", db)
	if !strings.Contains(r.stdout, `"alice"`) {
		t.Fatal("state is not in PostgreSQL")
	}
	if r := keystep(t, "", "users", "list", "--data", data, "--database", "mysql://x"); r.code != 2 {
		t.Fatalf("a non-postgres URL: exit %d", r.code)
	}
}
