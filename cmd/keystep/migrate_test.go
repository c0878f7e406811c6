package main

import (
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/postgres"
	"github.com/keystep/keystep/storage/sqlite"
	"github.com/keystep/keystep/storage/storagetest"
)

// testPostgres returns a DSN for a new, empty schema on the server named by
// KEYSTEP_TEST_POSTGRES, dropped when the test ends. Without a server the
// test is skipped, except under CI, where that is a failure.
func testPostgres(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("KEYSTEP_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KEYSTEP_TEST_POSTGRES is not set under CI")
		}
		t.Skip("KEYSTEP_TEST_POSTGRES is not set")
	}
	schema := "keystep_migrate_" + strings.ToLower(rand.Text())
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
	return dsn + sep + "search_path=" + schema
}

// filledDataFolder makes a data folder whose SQLite database holds the
// contract data set, real signing keys sealed with its master key, and an
// audit chain keyed with it.
func filledDataFolder(t *testing.T) (data string, key []byte) {
	t.Helper()
	fixClock(t, storagetest.DatasetNow)
	data = t.TempDir()
	mustKeystep(t, "", "keys", "rotate", "--data", data) // the master key, signing keys, an audit row
	key, err := masterKey(filepath.Join(data, "master.key"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := storage.NewAuditKey(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Fill(t, st, auditKey)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return data, key
}

// keystep migrate copies every table of a SQLite deployment into an empty
// PostgreSQL database: read back through the storage API, the copy equals
// the original, the audit chain verifies there against a checkpoint signed
// before the move, and a second migrate refuses the now non-empty database.
func TestMigrateToPostgres(t *testing.T) {
	dsn := testPostgres(t)
	data, _ := filledDataFolder(t)
	checkpoint := strings.TrimSpace(mustKeystep(t, "", "audit", "checkpoint", "--data", data).stdout)

	// Not while something has the database open: a server would go on
	// writing what the copy misses. Nothing is copied.
	held, err := sqlite.Open(t.Context(), filepath.Join(data, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	wantExit(t, keystep(t, "", "migrate", "--data", data, "--to", dsn), 1, "in use", "stop it first")
	held.Close()
	dst, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if counts, err := dst.CountRows(t.Context()); err != nil {
		t.Fatal(err)
	} else {
		for table, n := range counts {
			if n != 0 {
				t.Fatalf("a refused migrate wrote %d rows into %s", n, table)
			}
		}
	}

	r := mustKeystep(t, "", "migrate", "--data", data, "--to", dsn)
	migrated := r.stdout
	for _, want := range []string{"audit chain is intact", "KEYSTEP_DATABASE=", "keystep serve --data " + data} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, r.stdout)
		}
	}

	// Every table was copied, and none is empty: a table the data set
	// leaves empty could be copied wrong unnoticed (extend storagetest.Fill).
	counts, err := dst.CountRows(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	src, err := sqlite.Open(t.Context(), filepath.Join(data, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tables, err := src.Tables(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != len(tables) {
		t.Errorf("PostgreSQL has %d tables, SQLite %d", len(counts), len(tables))
	}
	for _, table := range tables {
		if counts[table] == 0 {
			t.Errorf("table %s is empty after the copy", table)
		}
	}

	want := storagetest.ReadDataset(t, src)
	got := storagetest.ReadDataset(t, dst)
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("PostgreSQL reads back differently (-sqlite +postgres):\n%s", d)
	}
	if n := len(want["audit"].([]storage.AuditEvent)); n < 4 {
		t.Errorf("the data set has %d audit rows", n)
	}

	// The commands work on the copy: the chain and the checkpoint signed
	// on SQLite verify in PostgreSQL.
	r = mustKeystep(t, "", "audit", "verify", "--checkpoint", checkpoint, "--data", data, "--database", dsn)
	if !strings.Contains(r.stdout, "still reaches it unchanged") {
		t.Errorf("audit verify on PostgreSQL:\n%s", r.stdout)
	}

	// The command migrate prints starts a server on the copy, which
	// publishes the signing keys it had on SQLite.
	var serveDB string
	for _, line := range strings.Split(migrated, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "KEYSTEP_DATABASE="); ok {
			v, _, _ = strings.Cut(v, " keystep serve")
			serveDB = strings.Trim(v, "'")
		}
	}
	if serveDB == "" {
		t.Fatalf("no command to start on PostgreSQL:\n%s", migrated)
	}
	src.Close()
	t.Setenv("KEYSTEP_DATABASE", serveDB)
	live := startLive(t, "--data", data)
	code, jwks := fetch(t, http.DefaultClient, live.url+"/keys")
	keys := want["signing_keys"].([]storage.SigningKey)
	if code != http.StatusOK || len(keys) == 0 || !strings.Contains(jwks, keys[0].ID) {
		t.Errorf("the server on PostgreSQL: %d %s, want key %v", code, jwks, keys)
	}
	live.stop()
	os.Unsetenv("KEYSTEP_DATABASE")

	// Never into a database with data.
	counts, err = dst.CountRows(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantExit(t, keystep(t, "", "migrate", "--data", data, "--to", dsn), 1, "not empty")
	if again, err := dst.CountRows(t.Context()); err != nil {
		t.Fatal(err)
	} else if d := cmp.Diff(counts, again); d != "" {
		t.Errorf("a refused migrate changed the rows:\n%s", d)
	}
}

// migrate refuses, changing nothing, without a database, without its
// master key, with a master key that does not fit, and with bad flags.
func TestMigrateRefuses(t *testing.T) {
	dsn := testPostgres(t)
	wantExit(t, keystep(t, "", "migrate", "--data", t.TempDir()), 2, "--to postgres://")
	wantExit(t, keystep(t, "", "migrate", "--data", t.TempDir(), "--to", "mysql://x"), 2, "--to postgres://")
	wantExit(t, keystep(t, "", "migrate", "--data", t.TempDir(), "--database", dsn, "--to", dsn), 2, "not --database")

	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "master.key"), []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	wantExit(t, keystep(t, "", "migrate", "--data", empty, "--to", dsn), 1, "keystep.db")
	if _, err := os.Stat(filepath.Join(empty, "keystep.db")); err == nil {
		t.Error("migrate created a SQLite database")
	}

	data, _ := filledDataFolder(t)
	wrong := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(wrong, []byte(strings.Repeat("cd", 32)+"\n"), 0o600)
	wantExit(t, keystep(t, "", "migrate", "--data", data, "--master-key-file", wrong, "--to", dsn), 1, "master key does not fit")
	os.Remove(filepath.Join(data, "master.key"))
	wantExit(t, keystep(t, "", "migrate", "--data", data, "--to", dsn), 1, "master key")

	dst, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	counts, err := dst.CountRows(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range counts {
		if n != 0 {
			t.Errorf("a refused migrate wrote %d rows into %s", n, table)
		}
	}
}
