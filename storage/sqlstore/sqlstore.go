// Package sqlstore is the part of storage.Store that the SQL backends share:
// the statements, row scanning, JSON and time columns, the transaction
// shapes of the single-use operations and the migration runner. It is
// written once, so a fix lands in every backend.
//
// A backend (storage/sqlite, storage/postgres) hands it a Config: the
// connections as Queriers, how it runs a transaction, its Dialect and its
// Locks. What really differs stays in the backend: SQLite's group commit
// and single writer, PostgreSQL's row locks, advisory locks and retries.
//
// Statements are written with ? placeholders; a Dialect with Numbered set
// gets them as $1, $2, … Times are int64 unix nanoseconds (the zero time
// as 0), lists and maps JSON. It imports only the standard library and
// storage.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystep/keystep/storage"
)

// Querier is a pool, a connection or a transaction of a backend.
type Querier interface {
	// Exec runs a statement and returns the number of rows it touched.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow returns a Row whose Scan reports no row with an error that
	// errors.Is sql.ErrNoRows.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Row is one result row.
type Row interface{ Scan(dest ...any) error }

// Rows is a result set.
type Rows interface {
	Row
	Next() bool
	Err() error
	Close()
}

// TxFunc runs fn in one write transaction and commits when fn returns nil.
// It may run fn more than once (PostgreSQL retries a serialization failure),
// so fn sets everything it hands back on every run.
type TxFunc func(ctx context.Context, fn func(tx Querier) error) error

// Config is what a backend gives New.
type Config struct {
	Name string // the prefix of every error, e.g. "sqlite"
	// Read runs plain reads.
	Read Querier
	// Exec runs one write statement as a transaction of its own and
	// returns the number of rows it touched.
	Exec func(ctx context.Context, query string, args ...any) (int64, error)
	Tx   TxFunc
	Dialect
	// Locks is nil for a backend that runs one write transaction at a time.
	Locks Locks
}

// Dialect is how a backend's SQL and errors differ.
type Dialect struct {
	// System is the database as OpenTelemetry names it (db.system.name):
	// "sqlite", "postgresql".
	System    string
	Numbered  bool   // placeholders are $1, $2, … rather than ?
	ForUpdate string // appended to the reads of the single-use operations: " FOR UPDATE" locks the row
	RowID     string // the column that tells apart rows equal in every other (rowid, ctid)
	// MigrationsTable creates schema_migrations (version, applied_at) if it
	// does not exist.
	MigrationsTable string
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
	// IsBadKey reports a key the database cannot hold (PostgreSQL refuses
	// invalid UTF-8 and NUL in text): no row has it. Nil for none.
	IsBadKey func(error) bool
	// Text makes a string storable, for the audit log, whose hash must
	// cover what is stored. Nil stores any string as it is.
	Text func(string) string
}

// Locks are the locks a backend takes where the statements alone do not
// order concurrent writers (PostgreSQL's advisory locks). Each is taken
// inside the transaction q and held until it ends.
type Locks interface {
	// Migrate orders the migration of one schema.
	Migrate(ctx context.Context, q Querier) error
	// Audit orders the appends to the audit chain.
	Audit(ctx context.Context, q Querier) error
	// Throttle orders the writes of failures for keys.
	Throttle(ctx context.Context, q Querier, keys []storage.ThrottleKey) error
	// RotationOf is held by the upgrade of refresh token refreshID (from
	// before families) into a family; upgrades do not wait for each
	// other, only for a revocation.
	RotationOf(ctx context.Context, q Querier, refreshID string) error
	// RevocationOf is held by a revocation of the tokens of subject, or,
	// with subject "", of the subjects of the refresh tokens whose column
	// (id or grant_id) is value. It waits for rotations under way.
	RevocationOf(ctx context.Context, q Querier, subject, column, value string) error
}

// Store implements storage.Store but for Ping and Close, which are the
// backend's.
type Store struct {
	name  string
	read  db
	write func(ctx context.Context, query string, args ...any) (int64, error)
	begin TxFunc
	d     Dialect
	locks Locks
	rb    *rebinder
	tr    *tracer
}

// New returns the shared store over c.
func New(c Config) *Store {
	rb := &rebinder{numbered: c.Numbered}
	tr := &tracer{system: c.System}
	return &Store{name: c.Name, read: db{c.Read, rb, tr}, write: c.Exec, begin: c.Tx, d: c.Dialect, locks: c.Locks, rb: rb, tr: tr}
}

// TraceStatements reports every later statement to t (storage.Traced);
// nil stops the reports.
func (s *Store) TraceStatements(t storage.StatementTracer) {
	if t == nil {
		s.tr.t.Store(nil)
		return
	}
	s.tr.t.Store(&t)
}

// fail wraps err as the error of op.
func (s *Store) fail(op string, err error) error { return fmt.Errorf("%s: %s: %w", s.name, op, err) }

// exec runs one write statement as a transaction of its own.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	end := s.tr.start(ctx, query)
	n, err := s.write(ctx, s.rb.rebind(query), args...)
	end.done(err)
	return n, err
}

// execOne runs a write that must touch a row; none touched is ErrNotFound.
func (s *Store) execOne(ctx context.Context, query string, args ...any) error {
	return oneRow(s.exec(ctx, query, args...))
}

// tx runs fn as one write transaction.
func (s *Store) tx(ctx context.Context, fn func(tx db) error) error {
	return s.begin(ctx, func(q Querier) error { return fn(db{q, s.rb, s.tr}) })
}

// db is a Querier that takes statements with ? placeholders.
type db struct {
	q  Querier
	rb *rebinder
	tr *tracer
}

func (x db) exec(ctx context.Context, query string, args ...any) (int64, error) {
	end := x.tr.start(ctx, query)
	n, err := x.q.Exec(ctx, x.rb.rebind(query), args...)
	end.done(err)
	return n, err
}

// execOne runs a write that must touch a row; none touched is ErrNotFound.
func (x db) execOne(ctx context.Context, query string, args ...any) error {
	return oneRow(x.exec(ctx, query, args...))
}

func (x db) query(ctx context.Context, query string, args ...any) (Rows, error) {
	end := x.tr.start(ctx, query)
	rows, err := x.q.Query(ctx, x.rb.rebind(query), args...)
	if err != nil || end == nil {
		end.done(err)
		return rows, err
	}
	return &tracedRows{Rows: rows, end: end}, nil
}

func (x db) queryRow(ctx context.Context, query string, args ...any) Row {
	end := x.tr.start(ctx, query)
	row := x.q.QueryRow(ctx, x.rb.rebind(query), args...)
	if end == nil {
		return row
	}
	return tracedRow{row, end}
}

// tracer reports statements to the storage.StatementTracer set with
// TraceStatements, if any: their operation only, never their text or
// arguments.
type tracer struct {
	system string
	t      atomic.Pointer[storage.StatementTracer]
}

// start starts the span of query, ended by the function it returns; nil
// when no tracer is set.
func (t *tracer) start(ctx context.Context, query string) endFunc {
	p := t.t.Load()
	if p == nil {
		return nil
	}
	return (*p).Statement(ctx, t.system, operation(query))
}

// endFunc ends a statement's span; nil is none.
type endFunc func(error)

func (e endFunc) done(err error) {
	if e != nil {
		e(err)
	}
}

// operation is the statement's first keyword (SELECT, INSERT, …), or ""
// when it does not start with one.
func operation(query string) string {
	word, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	word, _, _ = strings.Cut(word, "\n")
	word, _, _ = strings.Cut(word, "\t")
	for _, c := range word {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return ""
		}
	}
	return strings.ToUpper(word)
}

// tracedRow ends the statement's span when it is scanned; no row is not
// an error of the statement.
type tracedRow struct {
	Row
	end endFunc
}

func (r tracedRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		r.end(nil)
	} else {
		r.end(err)
	}
	return err
}

// tracedRows ends the statement's span when the rows are closed.
type tracedRows struct {
	Rows
	end  endFunc
	done bool
}

func (r *tracedRows) Close() {
	r.Rows.Close()
	if !r.done {
		r.done = true
		r.end(r.Rows.Err())
	}
}

func oneRow(n int64, err error) error {
	if err == nil && n == 0 {
		return storage.ErrNotFound
	}
	return err
}

func affected(n int64, err error) (int, error) { return int(n), err }

// rebinder rewrites ? placeholders to $1, $2, … when numbered, once per
// statement text.
type rebinder struct {
	numbered bool
	done     sync.Map // query → rewritten
}

func (r *rebinder) rebind(query string) string {
	if !r.numbered {
		return query
	}
	if q, ok := r.done.Load(query); ok {
		return q.(string)
	}
	q := numbered(query)
	r.done.Store(query, q)
	return q
}

// numbered replaces each ? outside a quoted string with $n.
func numbered(query string) string {
	var b strings.Builder
	n, quoted := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// insertErr maps a unique-constraint violation to storage.ErrAlreadyExists.
func (s *Store) insertErr(err error) error {
	if err != nil && s.d.IsUnique(err) {
		return fmt.Errorf("%w (%v)", storage.ErrAlreadyExists, err)
	}
	return err
}

// noRows maps no row, and a key the database cannot hold, to
// storage.ErrNotFound.
func (s *Store) noRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) || s.d.IsBadKey != nil && s.d.IsBadKey(err) {
		return storage.ErrNotFound
	}
	return err
}

// list collects rows with scan.
func list[T any](rows Rows, err error, scan func(Row) (T, error)) ([]T, error) {
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

func fromNanos(n int64) time.Time { return storage.FromUnixNanos(n) }

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

// jsonCol scans JSON text into v. A corrupt value is an error, never a panic.
type jsonCol struct{ v any }

func js(v any) jsonCol { return jsonCol{v} }

func (c jsonCol) Scan(src any) error {
	var b []byte
	switch s := src.(type) {
	case string:
		b = []byte(s)
	case []byte:
		b = s
	default:
		return fmt.Errorf("JSON column holds %T, want text", src)
	}
	if err := json.Unmarshal(b, c.v); err != nil {
		return fmt.Errorf("corrupt JSON: %w", err)
	}
	return nil
}

// jsonOf is v as JSON text (PostgreSQL takes text for JSONB). nil slices and
// maps are stored as null and come back nil, so a value round-trips exactly
// (the audit hash depends on it).
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only strings, string slices and maps, factorRow and
		// storage.Requirement go in.
		panic(err)
	}
	return string(b)
}

// blob binds b as a BLOB or BYTEA; nil is stored as empty, not NULL.
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
