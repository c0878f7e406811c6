package sqlite_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
	"github.com/keystep/keystep/storage/storagetest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "k.db"))
	})
}

// open opens path and closes it when the test ends.
func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
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

// raw opens a second, plain connection to path, standing in for someone
// with access to the file.
func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "k.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u := storage.User{ID: "u1", Username: "alice", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{Time: t0, Type: "user.created"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	got, err := s.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "u1" || !got.CreatedAt.Equal(t0) {
		t.Errorf("after reopen: %+v", got)
	}
	e, err := s.AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{Time: t0, Type: "user.updated"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 2 {
		t.Errorf("first append after reopen got seq %d, want 2", e.Seq)
	}
}

func TestMigrationsRunOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	versions := func() (n, max int64) {
		t.Helper()
		if err := raw(t, path).QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		return n, max
	}
	files, latest := migrationFiles(t)
	for i := range 3 {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if n, max := versions(); n != files || max != latest {
			t.Fatalf("after open #%d: %d migrations recorded, latest %d; want %d, latest %d", i+1, n, max, files, latest)
		}
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

// Migration 0006 (issue 15): passkeys and security keys added before it
// keep counting as phishing-resistant, trusted since they were added;
// authenticator apps have no trust time.
func TestMigrationTrustsEarlierPasskeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := raw(t, path)
	// The database as it was before 0006, with one factor of each kind.
	exec(t, db, `ALTER TABLE factors DROP COLUMN trusted_at`)
	exec(t, db, `ALTER TABLE factors DROP COLUMN added_in_session_at`)
	exec(t, db, `DELETE FROM schema_migrations WHERE version = 6`)
	created := t0.UnixNano()
	exec(t, db, `INSERT INTO factors (id, user_id, kind, name, secret, created_at, last_used_at) VALUES ('f1', 'u1', 'webauthn', 'Key', x'7b7d', ?, 0), ('f2', 'u1', 'totp', 'Phone', x'00', ?, 0)`, created, created)
	db.Close()

	s = open(t, path)
	fs, err := s.ListFactors(t.Context(), "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || !fs[0].TrustedAt.Equal(t0) || !fs[1].TrustedAt.IsZero() {
		t.Fatalf("after migrating: %+v", fs)
	}
}

// Migration 0005 keeps each user's latest used TOTP step, so a code spent
// before the upgrade stays spent, and so does every older one.
func TestMigrationKeepsTheLatestTOTPStep(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "k.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Back to schema 4, with steps used under it.
	db := raw(t, path)
	exec(t, db, `DROP TABLE totp_last_steps`)
	exec(t, db, `CREATE TABLE totp_steps (user_id TEXT NOT NULL, step INTEGER NOT NULL, used_at INTEGER NOT NULL, PRIMARY KEY (user_id, step)) STRICT`)
	exec(t, db, `INSERT INTO totp_steps VALUES ('u1', 100, 1), ('u1', 102, 2), ('u2', 50, 3)`)
	exec(t, db, `DELETE FROM schema_migrations WHERE version = 5`)

	st := open(t, path)
	for _, c := range []struct {
		user string
		step int64
		want error
	}{
		{"u1", 102, storage.ErrReplayed},
		{"u1", 101, storage.ErrReplayed},
		{"u1", 103, nil},
		{"u2", 50, storage.ErrReplayed},
		{"u2", 51, nil},
	} {
		if err := st.UseTOTPStep(ctx, c.user, c.step, t0); !errors.Is(err, c.want) {
			t.Errorf("%s step %d after the migration: %v, want %v", c.user, c.step, err, c.want)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	exec(t, raw(t, path), `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`)
	s, err = sqlite.Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("opened a database with schema version 9999")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("err = %v, want it to say the schema is newer", err)
	}
}

func TestCorruptRowsAreErrors(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "k.db")
	s := open(t, path)
	db := raw(t, path)

	if err := s.CreateClient(ctx, storage.Client{ID: "rp", RedirectURIs: []string{"https://rp.example/cb"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, storage.Session{ID: "s1", UserID: "u1", ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{Time: t0, Type: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ar-corrupt", "ar-null"} {
		if err := s.CreateAuthRequest(ctx, storage.AuthRequest{ID: id, ClientID: "rp", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, db, `UPDATE clients SET redirect_uris = '["https://rp.example/cb"'`)
	exec(t, db, `UPDATE auth_requests SET requirement = '{"acr":' WHERE id = 'ar-corrupt'`)
	exec(t, db, `UPDATE auth_requests SET requirement = NULL WHERE id = 'ar-null'`) // a request from before migration 0007
	exec(t, db, `UPDATE sessions SET factors = '{"method":"pwd"}'`)
	exec(t, db, `UPDATE audit_events SET details = 'not json'`)

	check := func(name string, err error) {
		t.Helper()
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: err = %v, want a corrupt-data error", name, err)
		} else if !strings.Contains(err.Error(), "corrupt JSON") {
			t.Errorf("%s: err = %v, want it to say the JSON is corrupt", name, err)
		}
	}
	_, err := s.ClientByID(ctx, "rp")
	check("ClientByID", err)
	_, err = s.ListClients(ctx)
	check("ListClients", err)
	_, err = s.SessionByID(ctx, "s1", t0)
	check("SessionByID", err)
	_, err = s.ListAudit(ctx, storage.AuditFilter{})
	check("ListAudit", err)
	_, err = s.AuthRequestByID(ctx, "ar-corrupt", t0)
	check("AuthRequestByID", err)
	// No requirement at all is no request: it fails closed, never as a
	// request that asked for nothing.
	if _, err := s.AuthRequestByID(ctx, "ar-null", t0); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("AuthRequestByID without a requirement: err = %v, want an error", err)
	}
}

func TestAuditTamperingIsDetected(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, db *sql.DB, events []storage.AuditEvent)
		wantSeq int64
	}{
		{"an edited reason names its row", func(t *testing.T, db *sql.DB, _ []storage.AuditEvent) {
			exec(t, db, `UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3`)
		}, 3},
		{"a deleted middle row is named as missing", func(t *testing.T, db *sql.DB, _ []storage.AuditEvent) {
			exec(t, db, `DELETE FROM audit_events WHERE seq = 3`)
		}, 3},
		{"an edit with a recomputed hash breaks the next row's link", func(t *testing.T, db *sql.DB, events []storage.AuditEvent) {
			e := events[2]
			e.Reason = "nothing to see"
			exec(t, db, `UPDATE audit_events SET reason = ?, hash = ? WHERE seq = 3`, e.Reason, storagetest.AuditKey.Hash(e.PrevHash, e))
		}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "k.db")
			s := open(t, path)
			for i := range 5 {
				e := storage.AuditEvent{Time: t0.Add(time.Duration(i) * time.Second), Type: "login.success", UserID: "u1", Reason: "ok"}
				if _, err := s.AppendAudit(ctx, storagetest.AuditKey, e); err != nil {
					t.Fatal(err)
				}
			}
			events, err := s.ListAudit(ctx, storage.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := storage.VerifyAuditChain(storagetest.AuditKey, events); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			tc.tamper(t, raw(t, path), events)

			events, err = s.ListAudit(ctx, storage.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var ce *storage.ChainError
			if _, err := storage.VerifyAuditChain(storagetest.AuditKey, events); !errors.As(err, &ce) {
				t.Fatalf("VerifyAuditChain = %v, want a *storage.ChainError", err)
			}
			if ce.Seq != tc.wantSeq {
				t.Errorf("chain error names row %d, want %d: %v", ce.Seq, tc.wantSeq, ce)
			}
		})
	}
}

// A database from before the keyed chain: its unkeyed rows stay, and the
// next append continues the chain keyed from their head.
func TestAuditAppendContinuesUnkeyedRows(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "k.db")
	s := open(t, path)
	db := raw(t, path)
	prev := ""
	for i := range 2 {
		e := storage.AuditEvent{Seq: int64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Type: "login.success", UserID: "u1"}
		e.PrevHash, e.Hash = prev, storage.UnkeyedAuditHash(prev, e)
		exec(t, db, `INSERT INTO audit_events (seq, time, type, user_id, actor_id, client_id, ip, user_agent, outcome, reason, details, prev_hash, hash)
			VALUES (?, ?, ?, ?, '', '', '', '', '', '', 'null', ?, ?)`, e.Seq, e.Time.UnixNano(), e.Type, e.UserID, e.PrevHash, e.Hash)
		prev = e.Hash
	}
	e, err := s.AppendAudit(ctx, storagetest.AuditKey, storage.AuditEvent{Time: t0.Add(time.Minute), Type: "login.success", UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 3 || e.PrevHash != prev || e.Hash != storagetest.AuditKey.Hash(prev, e) {
		t.Errorf("appended %+v, want row 3 keyed after the unkeyed head %s", e, prev)
	}
	events, err := s.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	head, err := storage.VerifyAuditChain(storagetest.AuditKey, events)
	if err != nil || head.Seq != 3 || head.Unkeyed != 2 {
		t.Errorf("VerifyAuditChain = %+v, %v; want 3 rows, 2 of them unkeyed", head, err)
	}
}

// The database holds password hashes and the audit log: a new one, and
// the -wal and -shm files beside it, are the owner's alone whatever the
// folder's mode.
func TestNewDatabaseIsPrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keystep.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateUser(t.Context(), storage.User{ID: "u1", Username: "alice", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keystep.db", "keystep.db-wal", "keystep.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by other users of the host", name, fi.Mode().Perm())
		}
	}
}
