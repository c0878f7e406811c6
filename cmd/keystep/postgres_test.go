package main

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// --database postgres://… keeps every piece of state in PostgreSQL; the data
// folder then holds only the master key.
func TestDatabaseFlagUsesPostgreSQL(t *testing.T) {
	dsn := os.Getenv("KEYSTEP_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KEYSTEP_TEST_POSTGRES is not set under CI")
		}
		t.Skip("KEYSTEP_TEST_POSTGRES is not set")
	}
	schema := "keystep_cli_" + strings.ToLower(rand.Text())
	exec := func(sql string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE SCHEMA " + schema)
	t.Cleanup(func() { exec("DROP SCHEMA " + schema + " CASCADE") })
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db := dsn + sep + "search_path=" + schema

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
