// Package postgres is the PostgreSQL backend of storage.Store, built on
// github.com/jackc/pgx/v5. Several Keystep instances may share one database.
//
// Every transaction runs at READ COMMITTED (pinned per connection, whatever
// the server's default), and the single-use operations take locks rather than
// relying on serializable snapshots, so that of N concurrent callers one wins
// and the rest see its commit, deterministically:
//
//   - ConsumeAuthCode, RotateRefreshToken, SaveAuthCode and
//     ConsumeOneTimeToken read their row with SELECT … FOR UPDATE. A waiter
//     wakes up to the winner's committed row and takes the replay path.
//   - RotateSession deletes the old row and UseRecoveryCode updates it
//     conditionally; a waiter re-checks the row after the winner commits and
//     finds nothing to do. UseTOTPStep is an upsert whose update re-checks
//     the user's row once a concurrent writer has committed.
//   - AppendAudit and RecordFailure have no single row to lock (the next audit
//     row, a key's next failure), so they take transaction-level advisory
//     locks: one per schema for the audit chain, one per throttle key.
//   - RevokeUserClientTokens must also catch the token a rotation in flight
//     inserts, which its UPDATE's snapshot cannot see: rotations take the
//     token subject's advisory lock shared, the revocation takes it
//     exclusive before its UPDATEs, so it waits for rotations under way and
//     later ones find their token revoked.
//
// Transactions that fail with a serialization failure (40001) or a deadlock
// (40P01) are retried from the start.
//
// Times are stored as BIGINT unix nanoseconds (the zero time as 0) like the
// SQLite backend, since timestamptz keeps microseconds only; lists and maps as
// JSONB.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keystep/keystep/storage"
)

// Store implements storage.Store on one PostgreSQL schema.
type Store struct {
	pool *pgxpool.Pool
}

var _ storage.Store = (*Store)(nil)

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
	return &Store{pool: pool}, nil
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

// Advisory lock classes, the first key of pg_advisory_xact_lock(int, int).
// The second key says which lock of the class.
const (
	lockMigrate  int32 = 0x6b730001 // per schema
	lockAudit    int32 = 0x6b730002 // per schema
	lockThrottle int32 = 0x6b730003 // per throttle key
	lockSubject  int32 = 0x6b730004 // per token subject
)

// lockSchema takes the transaction-level advisory lock of class for the
// schema the tables live in, so Keystep deployments in different schemas of
// one database do not wait for each other.
func lockSchema(ctx context.Context, tx pgx.Tx, class int32) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`, class)
	return err
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

// querier is *pgxpool.Pool or pgx.Tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// execOne runs a write that must touch a row; none touched is ErrNotFound.
func execOne(ctx context.Context, q querier, sql string, args ...any) error {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	return oneRow(tag)
}

func oneRow(tag pgconn.CommandTag) error {
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func affected(tag pgconn.CommandTag, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// insertErr maps a unique violation to storage.ErrAlreadyExists. The
// message names the constraint, never the key (that is in the error's
// Detail, which Error does not print).
func insertErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return fmt.Errorf("%w (%v)", storage.ErrAlreadyExists, err)
	}
	return err
}

// noRows maps pgx.ErrNoRows to storage.ErrNotFound, and so a lookup by a
// key PostgreSQL cannot hold (invalid UTF-8, NUL): no row has such a key,
// and SQLite, which stores any bytes, would find none either.
func noRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) || badText(err) {
		return storage.ErrNotFound
	}
	return err
}

// badText reports PostgreSQL refusing a string parameter as text.
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

// scanner is pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

// list collects rows with scan.
func list[T any](rows pgx.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func nanos(t time.Time) int64 { return storage.UnixNanos(t) }

// timeCol scans unix nanoseconds into a UTC time; 0 gives the zero time.
type timeCol struct{ t *time.Time }

func at(t *time.Time) timeCol { return timeCol{t} }

func (c timeCol) Scan(src any) error {
	n, ok := src.(int64)
	if !ok {
		return fmt.Errorf("time column holds %T, want unix nanoseconds", src)
	}
	*c.t = fromNanos(n)
	return nil
}

func fromNanos(n int64) time.Time { return storage.FromUnixNanos(n) }

// jsonOf is v as JSON text for a JSONB parameter (pgx passes strings to
// JSONB as they are). nil slices and maps are stored as null and scan back
// nil, so a value round-trips exactly (the audit hash depends on it).
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only strings, string slices and maps, and factorRow go in.
		panic(err)
	}
	return string(b)
}

// blob binds b as BYTEA; nil is stored as empty, not NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// usedAt is the stamp for a single-use secret spent at now. Zero means
// unused, so a caller's zero now still marks it spent.
func usedAt(now time.Time) int64 {
	if n := nanos(now); n != 0 {
		return n
	}
	return 1
}

// keyLock is the second advisory-lock key for a throttle key.
func keyLock(k storage.ThrottleKey) int32 {
	h := fnv.New32a()
	h.Write([]byte(k.Scope))
	h.Write([]byte{0})
	h.Write([]byte(k.Key))
	return int32(h.Sum32())
}
