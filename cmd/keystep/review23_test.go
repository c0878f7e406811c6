package main

import (
	"context"
	"encoding/json"

	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// Attacker's review of issue 23's operations pieces. Every test here
// names a hole and fails on the code as it was reviewed (h/review23).

// Hole: --audit-log, the stream a SIEM reads, silently drops every audit
// event another process commits while the server runs: `keystep users
// create --admin` (or any CLI change, or a second instance) takes a
// sequence number the server never hands to auditOut, which gives the
// gap up after auditOutWait and moves on. Whoever has a shell on the host
// makes an administrator and the SIEM never hears of it. Fix: when a gap
// is given up on, read the missing rows from the store
// (ListAudit{AfterSeq}) and write them, instead of skipping them.
func TestReview23AuditLogMissesCLIChanges(t *testing.T) {
	d := t.TempDir()
	createUser(t, d, "alice")
	rp := createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")
	logFile := filepath.Join(t.TempDir(), "audit.jsonl")
	s := startLive(t, "--data", d, "--audit-log", logFile)

	// While serving: an administrator made from the command line.
	createUser(t, d, "mallory", "--admin")
	// Then the server writes events of its own, after the CLI's.
	signInRP(t, s.url, http.DefaultClient, rp.ID, rp.Secret)

	var cliSeq int64
	for l := range strings.Lines(mustKeystep(t, "", "audit", "export", "--data", d).stdout) {
		var e auditJSON
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(l, "mallory") && e.ActorID == "cli" {
			cliSeq = e.Seq
		}
	}
	if cliSeq == 0 {
		t.Fatal("no audit event for the CLI's users create")
	}
	// Past auditOutWait, the server has written what it will.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		_, seqs := auditLines(t, b)
		if len(seqs) > 0 && seqs[len(seqs)-1] > cliSeq {
			for _, n := range seqs {
				if n == cliSeq {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("--audit-log has events %v but not %d, the CLI's admin.user_created for mallory: the SIEM never learns of the new administrator", seqs, cliSeq)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("--audit-log got no event after %d: %v", cliSeq, seqs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Hole: the database is created with SQLite's default mode, 0644, so in a
// data folder that already exists and is not private (mkdir /srv/keystep,
// 0755 with the usual umask; only a folder keystep creates itself is
// 0700), every local user reads the password hashes, the hashed recovery
// codes and tokens, and the whole audit log (its -wal and -shm files
// follow the database's mode). The master key beside it is 0600, the
// backups are 0600, restore writes 0600: only the live database is not.
// Fix: create keystep.db with 0600 before sqlite opens it (sqlite.Open:
// os.OpenFile(O_CREATE, 0o600)), as Backup does.
func TestReview23DatabaseIsWorldReadable(t *testing.T) {
	d := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	createUser(t, d, "alice")
	for _, name := range []string{"keystep.db", "master.key"} {
		fi, err := os.Stat(filepath.Join(d, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by other users of the host", name, fi.Mode().Perm())
		}
	}
}

// Hole: `keystep users show` prints the reasons of a user's recent audit
// events as they are stored, control characters included. A reason is
// free text from the admin API's JSON (or the console's form) and may
// hold "\x1b]…" and "\x1b[…" sequences and newlines: whoever holds a
// write token rewrites the operator's terminal (title, cleared screen,
// forged activity lines) when the operator looks at the account. Fix:
// print reasons through one quoting helper (strconv.Quote, or oneLine
// dropping unicode.IsControl runes) in every text output, and refuse
// control characters in a reason at the API.
func TestReview23UsersShowPrintsControlCharacters(t *testing.T) {
	d := t.TempDir()
	u := createUser(t, d, "alice")
	key := readMasterKey(t, d)
	auditKey, err := storage.NewAuditKey(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(d, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	// What an admin API call with this reason records (ActorID client:…).
	reason := "ticket-1\x1b]0;pwned\x07\x1b[2J\n  2026-01-01T00:00:00Z  admin.user_unlock  success"
	if _, err := st.AppendAudit(t.Context(), auditKey, storage.AuditEvent{Time: clock(), Type: storage.EventAdminUserSignout,
		UserID: u.ID, ActorID: "client:robot", Outcome: "success", Reason: reason}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out := mustKeystep(t, "", "users", "show", "alice", "--data", d).stdout
	if strings.ContainsAny(out, "\x1b\x07") || strings.Contains(out, "\n  2026-01-01T00:00:00Z  admin.user_unlock") {
		t.Fatalf("users show wrote the reason's control characters to the terminal:\n%q", out)
	}
}

// Hole: migrate changes a target it then refuses. It opens the
// PostgreSQL database with postgres.Open, which runs Keystep's migrations,
// before it checks that the database is empty and Keystep's: pointed at
// another application's database (a typo in --to, the wrong search_path)
// it creates Keystep's tables there, then fails with "the tables differ"
// and leaves them behind. Bad input must change nothing (DESIGN §6). Fix:
// check the target first (no tables in the schema, or Keystep's own at
// the same version, all empty) and only then migrate it, in one
// transaction with the import.
func TestReview23MigrateCreatesTablesInAForeignDatabase(t *testing.T) {
	dsn := testPostgres(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Another application's database: one table of its own.
	if _, err := conn.Exec(t.Context(), `CREATE TABLE invoices (id bigint PRIMARY KEY, total numeric)`); err != nil {
		t.Fatal(err)
	}
	data, _ := filledDataFolder(t)
	r := keystep(t, "", "migrate", "--data", data, "--to", dsn)
	var tables []string
	rows, err := conn.Query(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if r.code == 0 {
		t.Fatalf("migrate into another application's database succeeded:\n%s", r.stdout)
	}
	if len(tables) != 1 {
		t.Fatalf("a refused migrate (exit %d: %s) left %d tables in the target, want only invoices: %v", r.code, strings.TrimSpace(r.stderr), len(tables), tables)
	}
}
