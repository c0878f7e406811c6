// Package postgres is the PostgreSQL backend of storage.Store, built on
// github.com/jackc/pgx/v5. Several Keystep instances may share one database.
//
// Every transaction runs at READ COMMITTED (pinned per connection, whatever
// the server's default), and the single-use operations take locks rather than
// relying on serializable snapshots, so that of N concurrent callers one wins
// and the rest see its commit, deterministically:
//
//   - ConsumeAuthCode, SaveAuthCode and ConsumeOneTimeToken read their
//     row with SELECT … FOR UPDATE. A waiter wakes up to the winner's
//     committed row and takes the replay path. RotateFamily and the
//     revocations of families update the family's one row: a waiter
//     re-checks the row (generation, revoked) once the winner commits.
//   - RotateSession deletes the old row and UseRecoveryCode updates it
//     conditionally; a waiter re-checks the row after the winner commits and
//     finds nothing to do. UseTOTPStep is an upsert whose update re-checks
//     the user's row once a concurrent writer has committed.
//   - AppendAudit and RecordFailure have no single row to lock (the next audit
//     row, a key's next failure), so they take transaction-level advisory
//     locks: one per schema for the audit chain, one per throttle key.
//   - RevokeUserClientTokens must also catch the family an upgrade of a
//     refresh token from before families inserts, which its UPDATE's
//     snapshot cannot see: upgrades take the token subject's advisory lock
//     shared, the revocation takes it exclusive before its UPDATEs, so it
//     waits for upgrades under way and later ones find their token revoked.
//
// Transactions that fail with a serialization failure (40001) or a deadlock
// (40P01) are retried from the start.
//
// The statements, row scanning and transaction shapes are storage/sqlstore's,
// shared with the SQLite backend; this package adds the row locks (its
// Dialect's FOR UPDATE), the advisory locks (locks) and the retries. Times
// are stored as BIGINT unix nanoseconds (the zero time as 0) like the SQLite
// backend, since timestamptz keeps microseconds only; lists and maps as
// JSONB.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlstore"
)

// Store implements storage.Store on one PostgreSQL schema.
type Store struct {
	*shared // every method but Ping and Close

	pool *pgxpool.Pool
}

var _ storage.Store = (*Store)(nil)

type shared = sqlstore.Store

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value connection string, as pgx parses it) and brings its schema up to
// date. The tables live in the first schema of the search_path, which a
// search_path parameter in dsn can set; pool settings (pool_max_conns, …)
// can go there too. It refuses a schema written by a newer Keystep.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// Not err: its text quotes the string, password included when pgx
		// cannot make out where it is.
		return nil, errors.New("postgres: open: the connection string does not parse")
	}
	// The locking in this package assumes READ COMMITTED: a statement waiting
	// on a row lock re-reads the row the winner committed.
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "keystep" // for pg_stat_activity
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool}
	s.shared = sqlstore.New(sqlstore.Config{
		Name: "postgres",
		Read: querier{pool},
		Exec: querier{pool}.Exec,
		Tx: func(ctx context.Context, fn func(sqlstore.Querier) error) error {
			return s.tx(ctx, func(tx pgx.Tx) error { return fn(querier{tx}) })
		},
		Dialect: dialect,
		Locks:   locks{},
	})
	return s, nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// maxAttempts bounds the retries of a transaction that lost a
// serialization or deadlock race.
const maxAttempts = 10

// tx runs fn in one READ COMMITTED transaction and commits when fn returns
// nil. A serialization failure or deadlock, in fn or at commit, reruns fn
// from the start, so fn must set everything it hands back on every run.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		// Jittered backoff, so the racers do not collide again in step.
		wait := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", // serialization_failure
		"40P01": // deadlock_detected
		return true
	}
	return false
}

var dialect = sqlstore.Dialect{
	System:    "postgresql",
	Numbered:  true,
	ForUpdate: ` FOR UPDATE`,
	RowID:     "ctid",
	MigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		applied_at BIGINT NOT NULL
	)`,
	IsUnique: isUnique,
	IsBadKey: badText,
	Text:     text,
}

// conn is *pgxpool.Pool or pgx.Tx.
type conn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querier is a conn as a sqlstore.Querier. pgx.ErrNoRows is sql.ErrNoRows
// to errors.Is.
type querier struct{ c conn }

func (q querier) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (q querier) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	return q.c.Query(ctx, sql, args...)
}

func (q querier) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	return q.c.QueryRow(ctx, sql, args...)
}

// isUnique reports a unique violation. Its message names the constraint,
// never the key (that is in the error's Detail, which Error does not print).
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
}

// badText reports PostgreSQL refusing a string parameter as text. A lookup
// by such a key finds no row: no row has it, and SQLite, which stores any
// bytes, would find none either.
func badText(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) &&
		(pe.Code == "22021" || // character_not_in_repertoire: invalid UTF-8 or NUL in text
			pe.Code == "22P05") // untranslatable_character: \u0000 in JSONB
}

// text makes s storable as TEXT and inside JSONB, which refuse invalid
// UTF-8 and NUL: each run of invalid bytes and each NUL becomes U+FFFD.
func text(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
