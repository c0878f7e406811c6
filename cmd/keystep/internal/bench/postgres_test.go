package bench

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage/postgres"
)

// postgresDSN returns a DSN for a new, empty schema on the server named by
// KEYSTEP_TEST_POSTGRES, dropped when the test ends. Without that server
// the test skips locally and fails under CI (.ci/run starts one).
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("KEYSTEP_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KEYSTEP_TEST_POSTGRES is not set; CI must run the PostgreSQL benchmark")
		}
		t.Skip("KEYSTEP_TEST_POSTGRES is not set")
	}
	schema := "keystep_bench_" + strings.ToLower(rand.Text())
	exec := func(sql string) {
		// Not t.Context: it is cancelled before cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE SCHEMA " + schema)
	t.Cleanup(func() { exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("KEYSTEP_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema) // pgx sends it as a run-time setting
	u.RawQuery = q.Encode()
	return u.String()
}

// Issue 10: the benchmark runs against PostgreSQL. Bench provisions into
// the database and its child server keeps every piece of state there; the
// child's data folder holds only the master key.
func TestBenchRunsAgainstPostgreSQL(t *testing.T) {
	db := postgresDSN(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	rep := reportOf(t, "--database", db, "--count", "8", "--workers", "2", "--scenario", "refresh_es256,code_sso")
	wantScenarios(t, rep, "refresh_es256", "code_sso")
	if !rep.Server.Child || rep.Server.Database != "postgresql" {
		t.Errorf("server %+v, want a child on PostgreSQL", rep.Server)
	}
	for _, s := range rep.Scenarios {
		if s.DBGrowthBytes == nil {
			t.Errorf("%s: no database growth from PostgreSQL", s.Name)
		}
		// Known only with PostgreSQL on this machine, in this PID namespace.
		if s.DatabaseCPUSeconds != nil {
			t.Logf("%s: PostgreSQL used %.2f CPU-s", s.Name, *s.DatabaseCPUSeconds)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "keystep-bench-*")); len(left) > 0 {
		t.Errorf("data folder left behind: %v", left)
	}

	// The bench clients, users and the child's signing keys are in the
	// schema: the server ran on it, not on SQLite.
	st, err := postgres.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clients, err := st.ListClients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var bench int
	for _, c := range clients {
		if strings.HasPrefix(c.ID, "bench-") {
			bench++
		}
	}
	keys, err := st.ListSigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if bench != 4 || len(keys) == 0 {
		t.Errorf("the schema holds %d bench clients and %d signing keys, want 4 (rs256, es256, dpop, service) and some", bench, len(keys))
	}

	// A second run on the same database is refused: the server it would
	// start has a new master key and would take the database over.
	r := keystep(t, "bench", "--database", db, "--count", "1", "--scenario", "jwks")
	wantExit(t, r, 1, "already holds Keystep state", "empty database or schema")
}

// --url with --database: a running server on PostgreSQL, whose data folder
// holds only its master key; bench provisions into its database.
func TestBenchProvisionsIntoARunningServersPostgreSQL(t *testing.T) {
	db := postgresDSN(t)
	data := t.TempDir()
	config, err := writeServerConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startChild(t.Context(), childConfig{keystep: keystepCommand(t), data: data, config: config, database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.stop() })

	// stepup proves the authenticator apps were sealed with the server's
	// master key.
	rep := reportOf(t, "--url", srv.url, "--data", data, "--database", db, "--count", "4", "--workers", "2", "--scenario", "refresh_es256,stepup")
	wantScenarios(t, rep, "refresh_es256", "stepup")
	if rep.Server.Child || rep.Server.Database != "postgresql" {
		t.Errorf("server %+v, want the given URL on PostgreSQL", rep.Server)
	}
	if _, err := os.Stat(filepath.Join(data, "keystep.db")); err == nil {
		t.Error("bench created a SQLite database next to --database")
	}
}
