package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/postgres"
	"github.com/keystep/keystep/storage/storagetest"
)

// serverEnv names the server the tests use, e.g.
// postgres://keystep@127.0.0.1:5432/keystep?sslmode=disable. The role needs
// to create schemas in the database. .ci/run starts one and sets it.
const serverEnv = "KEYSTEP_TEST_POSTGRES"

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// server returns the DSN from serverEnv. Without one the tests skip, except
// under CI, where a missing server must not pass as a green run.
func server(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(serverEnv)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; CI must run the PostgreSQL tests (.ci/run starts a server)", serverEnv)
		}
		t.Skipf("%s is not set; skipping the PostgreSQL tests", serverEnv)
	}
	return dsn
}

// newSchema creates an empty schema, dropped when the test ends, and returns
// a DSN whose search_path points at it: every test gets a database of its own.
func newSchema(t *testing.T) string {
	t.Helper()
	dsn := server(t)
	name := "keystep_test_" + strings.ToLower(rand.Text())
	admin(t, dsn, `CREATE SCHEMA `+name)
	t.Cleanup(func() { admin(t, dsn, `DROP SCHEMA `+name+` CASCADE`) })
	return withSearchPath(t, dsn, name)
}

// admin runs one statement on its own connection. It does not use
// t.Context, which is already cancelled when cleanups run.
func admin(t *testing.T, dsn, sql string) {
	t.Helper()
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

// withSearchPath adds search_path=schema to a URL or key=value DSN; pgx
// sends unknown parameters to the server as run-time settings.
func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: %v", serverEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// open opens a store on dsn and closes it when the test ends (before the
// schema is dropped: cleanups run last registered first).
func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	server(t) // skip or fail once, not in every subtest
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, newSchema(t))
	})
}

// Two stores on one schema are two Keystep instances behind a load balancer:
// two pools, no state shared but the database.
func TestInstancesShareSingleUseAndTheAuditChain(t *testing.T) {
	ctx := t.Context()
	dsn := newSchema(t)
	a, b := open(t, dsn), open(t, dsn)
	instances := []*postgres.Store{a, b}

	t.Run("a code redeemed on both instances at once is redeemed once", func(t *testing.T) {
		r := storage.AuthRequest{ID: "ar1", ClientID: "rp", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		must(t, a.CreateAuthRequest(ctx, r))
		must(t, b.CompleteAuthRequest(ctx, "ar1", storage.AuthResult{Subject: "u1", AuthTime: t0}))
		must(t, a.SaveAuthCode(ctx, "ar1", "code-hash-1", t0.Add(time.Minute)))
		g := storage.Grant{GrantID: "ar1", ClientID: "rp", Subject: "u1"}
		must(t, b.CreateAccessToken(ctx, storage.AccessToken{ID: "at1", Grant: g, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))

		errs := race(40, func(i int) error {
			_, err := instances[i%2].ConsumeAuthCode(ctx, "code-hash-1", t0)
			return err
		})
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, storage.ErrReplayed):
				t.Errorf("call %d: err = %v, want %v", i, err, storage.ErrReplayed)
			}
		}
		if wins != 1 {
			t.Errorf("%d redemptions succeeded, want 1", wins)
		}
		// The replays revoked the grant, seen from either instance.
		for _, s := range instances {
			if _, err := s.AccessTokenByID(ctx, "at1", t0); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("access token after replays: err = %v, want %v", err, storage.ErrNotFound)
			}
		}
	})

	t.Run("appends from both instances at once keep one chain", func(t *testing.T) {
		const n = 60
		errs := race(n, func(i int) error {
			_, err := instances[i%2].AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{
				Time: t0.Add(time.Duration(i)), Type: storage.EventType(fmt.Sprintf("event.%d", i)), Details: map[string]string{"i": fmt.Sprint(i)},
			})
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		for _, s := range instances {
			events, err := s.ListAudit(ctx, storage.AuditFilter{})
			must(t, err)
			if len(events) != n {
				t.Fatalf("listed %d events, want %d", len(events), n)
			}
			_, err = storage.VerifyAuditChain(storagetest.AuditKey, events)
			must(t, err)
		}
	})

	t.Run("failures recorded on both instances at once respect one limit", func(t *testing.T) {
		key := storage.ThrottleKey{Scope: storage.ScopeAccount, Key: "u1"}
		rules := map[string]storage.ThrottleRule{
			storage.ScopeAccount: {Limit: 5, Window: time.Hour, Base: time.Minute, Max: time.Minute},
		}
		errs := race(40, func(i int) error {
			_, err := instances[i%2].RecordFailure(ctx, []storage.ThrottleKey{key}, rules, t0)
			return err
		})
		recorded := 0
		for i, err := range errs {
			switch {
			case err == nil:
				recorded++
			case !errors.Is(err, storage.ErrThrottled):
				t.Errorf("call %d: err = %v, want %v", i, err, storage.ErrThrottled)
			}
		}
		if recorded != 5 {
			t.Errorf("%d failures recorded, want 5", recorded)
		}
	})
}

// Instances starting together against an empty schema migrate it once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := newSchema(t)
	stores := make([]*postgres.Store, 6)
	errs := race(len(stores), func(i int) error {
		var err error
		stores[i], err = postgres.Open(t.Context(), dsn)
		return err
	})
	for i, err := range errs {
		must(t, err)
		t.Cleanup(func() { stores[i].Close() })
	}
	var n, max int64
	conn, err := pgx.Connect(t.Context(), dsn)
	must(t, err)
	defer conn.Close(context.Background())
	must(t, conn.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max))
	if files, latest := migrationFiles(t); n != files || max != latest {
		t.Errorf("%d migrations recorded, latest %d; want %d, latest %d", n, max, files, latest)
	}
}

// migrationFiles counts the migration files and returns the highest
// version among them: numbers may have gaps (each change takes its own).
func migrationFiles(t *testing.T) (n, highest int64) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for _, name := range names {
		num, _, _ := strings.Cut(filepath.Base(name), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", name, err)
		}
		n, highest = n+1, max(highest, v)
	}
	return n, highest
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	dsn := newSchema(t)
	s, err := postgres.Open(ctx, dsn)
	must(t, err)
	must(t, s.CreateUser(ctx, storage.User{ID: "u1", Username: "alice", CreatedAt: t0, UpdatedAt: t0}))
	_, err = s.AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{Time: t0, Type: "user.created"})
	must(t, err)
	must(t, s.Close())

	s = open(t, dsn)
	got, err := s.UserByUsername(ctx, "alice")
	must(t, err)
	if got.ID != "u1" || !got.CreatedAt.Equal(t0) {
		t.Errorf("after reopen: %+v", got)
	}
	e, err := s.AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{Time: t0, Type: "user.updated"})
	must(t, err)
	if e.Seq != 2 {
		t.Errorf("first append after reopen got seq %d, want 2", e.Seq)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dsn := newSchema(t)
	s, err := postgres.Open(t.Context(), dsn)
	must(t, err)
	s.Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	must(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`)
	must(t, err)

	s, err = postgres.Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("opened a schema with version 9999")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("err = %v, want it to say the schema is newer", err)
	}
}

// A sort by username or a range over throttle keys must not depend on the
// database's collation: SQLite compares bytes, and so must this backend.
func TestOrderIsBytewise(t *testing.T) {
	ctx := t.Context()
	s := open(t, newSchema(t))
	for i, name := range []string{"b", "a", "B", "_c", "Z"} {
		must(t, s.CreateUser(ctx, storage.User{ID: fmt.Sprint(i), Username: name}))
	}
	users, err := s.ListUsers(ctx)
	must(t, err)
	var got []string
	for _, u := range users {
		got = append(got, u.Username)
	}
	if want := []string{"B", "Z", "_c", "a", "b"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ListUsers order = %q, want %q", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// race runs fn n times at once and returns each call's error.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func TestTransactionsRetrySerializationFailuresAndDeadlocks(t *testing.T) {
	s := open(t, newSchema(t))
	for _, tc := range []struct {
		name     string
		errs     []error // what the attempts return, in order; nil after the list
		want     error
		attempts int
	}{
		{"a serialization failure is retried", []error{&pgconn.PgError{Code: "40001"}, &pgconn.PgError{Code: "40001"}}, nil, 3},
		{"a deadlock is retried", []error{&pgconn.PgError{Code: "40P01"}}, nil, 2},
		{"other errors are not", []error{&pgconn.PgError{Code: "23505"}}, &pgconn.PgError{Code: "23505"}, 1},
		{"sentinels are not", []error{storage.ErrReplayed}, storage.ErrReplayed, 1},
		{"retries stop after MaxAttempts", slices.Repeat([]error{&pgconn.PgError{Code: "40001"}}, 100),
			&pgconn.PgError{Code: "40001"}, postgres.MaxAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attempts := 0
			err := s.Tx(t.Context(), func() error {
				attempts++
				if attempts <= len(tc.errs) {
					return tc.errs[attempts-1]
				}
				return nil
			})
			var pe, wantPE *pgconn.PgError
			switch {
			case errors.As(tc.want, &wantPE):
				if !errors.As(err, &pe) || pe.Code != wantPE.Code {
					t.Errorf("err = %v, want SQLSTATE %s", err, wantPE.Code)
				}
			case !errors.Is(err, tc.want):
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if attempts != tc.attempts {
				t.Errorf("%d attempts, want %d", attempts, tc.attempts)
			}
		})
	}
}

// PostgreSQL refuses invalid UTF-8 and NUL in text, which SQLite stores. An
// audit event must still be written (the chain covering what was stored),
// and a lookup by such a key finds nothing, as it would in SQLite.
func TestTextPostgreSQLCannotHold(t *testing.T) {
	ctx := t.Context()
	s := open(t, newSchema(t))
	e, err := s.AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{
		Time: t0, Type: "login.failure", UserAgent: "Mozilla\xff\xfe/5.0\x00", Details: map[string]string{"user\x00": "bob\xff"},
	})
	must(t, err)
	if e.UserAgent != "Mozilla\uFFFD/5.0\uFFFD" || e.Details["user\uFFFD"] != "bob\uFFFD" {
		t.Errorf("appended %q, %q", e.UserAgent, e.Details)
	}
	got, err := s.ListAudit(ctx, storage.AuditFilter{})
	must(t, err)
	_, err = storage.VerifyAuditChain(storagetest.AuditKey, got)
	must(t, err)
	if len(got) != 1 || got[0].Hash != e.Hash || got[0].UserAgent != e.UserAgent {
		t.Errorf("listed %+v, want what AppendAudit returned, %+v", got, e)
	}

	for _, key := range []string{"alice\xff", "alice\x00"} {
		if _, err := s.UserByUsername(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByUsername(%q): err = %v, want %v", key, err, storage.ErrNotFound)
		}
	}
}

func TestOpenDoesNotRepeatTheConnectionString(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://keystep:hunter2@127.0.0.1:notaport/keystep")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v, want an error without the password", err)
	}
}

// A database from before the keyed chain: its unkeyed rows stay, and the
// next append continues the chain keyed from their head.
func TestAuditAppendContinuesUnkeyedRows(t *testing.T) {
	ctx := t.Context()
	dsn := newSchema(t)
	s := open(t, dsn)
	conn, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer conn.Close(context.Background())
	prev := ""
	for i := range 2 {
		e := storage.AuditEvent{Seq: int64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Type: "login.success", UserID: "u1"}
		e.PrevHash, e.Hash = prev, storage.UnkeyedAuditHash(prev, e)
		_, err := conn.Exec(ctx, `INSERT INTO audit_events (seq, time, type, user_id, actor_id, client_id, ip, user_agent, outcome, reason, details, prev_hash, hash)
			VALUES ($1, $2, $3, $4, '', '', '', '', '', '', 'null', $5, $6)`, e.Seq, e.Time.UnixNano(), e.Type, e.UserID, e.PrevHash, e.Hash)
		must(t, err)
		prev = e.Hash
	}
	e, err := s.AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{Time: t0.Add(time.Minute), Type: "login.success", UserID: "u1"})
	must(t, err)
	if e.Seq != 3 || e.PrevHash != prev || e.Hash != storagetest.AuditKey.Hash(prev, e) {
		t.Errorf("appended %+v, want row 3 keyed after the unkeyed head %s", e, prev)
	}
	events, err := s.ListAudit(ctx, storage.AuditFilter{})
	must(t, err)
	head, err := storage.VerifyAuditChain(storagetest.AuditKey, events)
	if err != nil || head.Seq != 3 || head.Unkeyed != 2 {
		t.Errorf("VerifyAuditChain = %+v, %v; want 3 rows, 2 of them unkeyed", head, err)
	}
}

// A request whose stored requirement cannot be read (none, from before
// migration 0007, or not the JSON of one) fails closed: an error, never a
// request that asked for nothing.
func TestUnreadableRequirementIsAnError(t *testing.T) {
	ctx := t.Context()
	dsn := newSchema(t)
	s := open(t, dsn)
	must(t, s.CreateClient(ctx, storage.Client{ID: "rp", RedirectURIs: []string{"https://rp.example/cb"}}))
	for _, id := range []string{"ar-null", "ar-scalar"} {
		must(t, s.CreateAuthRequest(ctx, storage.AuthRequest{ID: id, ClientID: "rp", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	}
	admin(t, dsn, `UPDATE auth_requests SET requirement = NULL WHERE id = 'ar-null'`)
	admin(t, dsn, `UPDATE auth_requests SET requirement = '"phr"' WHERE id = 'ar-scalar'`)
	for _, id := range []string{"ar-null", "ar-scalar"} {
		if _, err := s.AuthRequestByID(ctx, id, t0); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("AuthRequestByID(%s): err = %v, want an error", id, err)
		}
	}
}
