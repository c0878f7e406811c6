package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/storage/postgres"
	"github.com/keystep/keystep/storage/sqlite"
)

// migrateJSON is `keystep migrate --json`'s report.
type migrateJSON struct {
	From      string           `json:"from"`
	To        string           `json:"to"` // password redacted
	Rows      map[string]int64 `json:"rows"`
	AuditSeq  int64            `json:"audit_seq"`
	AuditHash string           `json:"audit_hash,omitempty"`
	Serve     string           `json:"serve"`
}

// migrateCmd is `keystep migrate --to postgres://…`: it copies the data
// folder's SQLite database, every table, into an empty PostgreSQL
// database, then checks the copy: the same rows per table, the audit chain
// intact with the same head, and the master key opening the signing keys.
// The SQLite database is opened exclusively, so it refuses while a server
// uses it, and is left as it was.
func migrateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	var to string
	fs, c, err := sub("migrate", args, func(fs *flag.FlagSet) {
		fs.StringVar(&to, "to", "", "the empty PostgreSQL database to copy into (postgres://…)")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "migrate"); err != nil {
		return err
	}
	if c.database != "" {
		return usageError{"migrate: the source is the SQLite database in --data; name the PostgreSQL database with --to, not --database"}
	}
	if !strings.HasPrefix(to, "postgres://") && !strings.HasPrefix(to, "postgresql://") {
		return usageError{"migrate: --to postgres://… is required"}
	}
	db := filepath.Join(c.data, "keystep.db")
	// The key is never generated here: the database was sealed with one.
	key, err := masterKey(masterKeyPath(c), "", "")
	if err != nil {
		return fmt.Errorf("migrate: the database's master key is needed to check the copy: %w", err)
	}
	src, err := sqlite.OpenExclusive(ctx, db)
	if errors.Is(err, sqlite.ErrInUse) {
		return fmt.Errorf("migrate: %w: a copy taken while a server writes would miss what comes after", err)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer src.Close()
	if err := idp.CheckMasterKey(ctx, src, key); err != nil {
		return fmt.Errorf("migrate: the source: %w", err)
	}
	_, head, _, err := readChain(ctx, src, key)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	// Another application's database is refused before Open creates
	// Keystep's tables in it.
	if err := postgres.CheckImportTarget(ctx, to); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	dst, err := postgres.Open(ctx, to)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()
	sv, err := src.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	dv, err := dst.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if sv != dv {
		return fmt.Errorf("migrate: SQLite is at schema version %d, PostgreSQL at %d: use the Keystep that wrote the PostgreSQL schema, or a new database", sv, dv)
	}
	tables, err := src.Tables(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := dst.Import(ctx, tables, src.ReadTable); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	// Check what PostgreSQL now holds, read afresh.
	want, err := src.CountRows(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	got, err := dst.CountRows(ctx)
	if err != nil {
		return fmt.Errorf("migrate: check: %w", err)
	}
	var diffs []string
	for _, t := range slices.Sorted(maps.Keys(want)) {
		if want[t] != got[t] {
			diffs = append(diffs, fmt.Sprintf("%s: %d rows in SQLite, %d in PostgreSQL", t, want[t], got[t]))
		}
	}
	if len(diffs) > 0 || len(got) != len(want) {
		return fmt.Errorf("migrate: check: the copy differs: %s", strings.Join(diffs, "; "))
	}
	if err := idp.CheckMasterKey(ctx, dst, key); err != nil {
		return fmt.Errorf("migrate: check: %w", err)
	}
	_, dhead, chainErr, err := readChain(ctx, dst, key)
	if err != nil {
		return fmt.Errorf("migrate: check: %w", err)
	}
	if chainErr != nil || dhead != head {
		return fmt.Errorf("migrate: check: the audit chain in PostgreSQL ends at row %d (%s), SQLite's at row %d (%s): %v",
			dhead.Seq, dhead.Hash, head.Seq, head.Hash, chainErr)
	}

	redacted := redactDSN(to)
	serveCmd := fmt.Sprintf("KEYSTEP_DATABASE=%s keystep serve --data %s", shellQuote(withoutPassword(to)), shellQuote(c.data))
	if c.masterKeyFile != "" {
		serveCmd += " --master-key-file " + shellQuote(c.masterKeyFile)
	}
	if c.json {
		return printJSON(stdout, migrateJSON{From: db, To: redacted, Rows: got, AuditSeq: head.Seq, AuditHash: head.Hash, Serve: serveCmd})
	}
	fmt.Fprintf(stdout, "Copied %s into PostgreSQL (%s):\n", db, redacted)
	for _, t := range slices.Sorted(maps.Keys(got)) {
		fmt.Fprintf(stdout, "  %-24s %d rows\n", t, got[t])
	}
	fmt.Fprintf(stdout, "Checked: the same rows in every table; the audit chain is intact to row %d; the master key %s opens every signing key.\n",
		head.Seq, masterKeyPath(c))
	fmt.Fprintf(stdout, "Start on it with the same master key (a password goes in PGPASSFILE, not in the URL):\n  %s\n", serveCmd)
	fmt.Fprintf(stdout, "Then move %s aside: it is no longer current.\n", db)
	return nil
}

// redactDSN hides a password in a postgres:// URL.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}

// withoutPassword is a postgres:// URL without its password, which belongs
// in PGPASSFILE.
func withoutPassword(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
