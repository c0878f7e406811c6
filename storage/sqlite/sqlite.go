// Package sqlite is the SQLite backend of storage.Store, built on the pure-Go
// modernc.org/sqlite driver.
//
// The database runs in WAL mode. Every write and every transaction goes through
// one connection whose transactions begin IMMEDIATE, so writers queue in the
// connection pool instead of failing with SQLITE_BUSY when a read lock would be
// upgraded, and the compare-and-swap methods (consume a code, rotate a token,
// spend a recovery code) are serialised. Reads use a separate pool of
// query-only connections, which WAL lets run alongside the writer.
//
// Times are stored as INTEGER unix nanoseconds (the zero time as 0), lists and
// maps as JSON text.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keystep/keystep/storage"
)

// Store implements storage.Store on one SQLite database file.
type Store struct {
	w *db // one connection: every write and transaction
	r *db // query-only pool for plain reads

	ck          *sql.DB // the checkpointer's own connection
	stop, done  chan struct{}
	stopOnce    sync.Once
	checkpoints atomic.Int64 // checkpoints that copied frames back

	batchq    chan *batchOp // group commit (batch.go)
	batchDone chan struct{}
	batches   atomic.Int64 // transactions the group commit ran
}

var _ storage.Store = (*Store)(nil)

const readers = 4

// Open opens (creating if needed) the database at path and brings its schema
// up to date. It refuses a database written by a newer Keystep.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// The pragmas go in the DSN so that every pooled connection gets them.
	// busy_timeout covers other processes using the same file.
	w, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {"busy_timeout(5000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)", fmt.Sprintf("wal_autocheckpoint(%d)", backstopPages)},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {"busy_timeout(5000)", "foreign_keys(1)", "query_only(1)"},
	}))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	ck, err := sql.Open("sqlite", dsn(abs, url.Values{"_pragma": {"busy_timeout(5000)"}}))
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	s := &Store{w: newDB(w), r: newDB(r), ck: ck, stop: make(chan struct{}), done: make(chan struct{}),
		batchq: make(chan *batchOp), batchDone: make(chan struct{})}
	go s.checkpointLoop()
	go s.batchLoop()
	return s, nil
}

// SQLite's automatic checkpoint runs in the commit that takes the WAL past
// wal_autocheckpoint pages, on the writer's only connection: every queued
// write waits while it copies the WAL into the database and fsyncs. Under a
// token-grant load that was every few dozen commits (issue 9). Instead a
// goroutine on a connection of its own checkpoints PASSIVE every
// checkpointEvery, copying frames while writers carry on. SQLite restarts
// the WAL at the first write after a checkpoint that copied every frame;
// under a steady write load new frames keep arriving, so that is mostly the
// automatic checkpoint's, kept as a backstop at backstopPages (4 KiB each):
// the WAL file can reach about 64 MiB, and the backstop finds almost every
// frame already copied.
const (
	checkpointEvery = 200 * time.Millisecond
	backstopPages   = 16000
)

func (s *Store) checkpointLoop() {
	defer close(s.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		var busy, frames, copied int64
		err := s.ck.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		if err == nil && copied > 0 {
			s.checkpoints.Add(1)
		}
	}
}

// dsn is a file: URI for the absolute path abs, so that SQLite decodes the
// path itself and no character in it can be taken for a parameter.
func dsn(abs string, q url.Values) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows: file:///C:/...
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// Ping reports whether the database answers on both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close stops the checkpointer and the group commit, and closes the pools.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	<-s.batchDone
	return errors.Join(s.ck.Close(), s.r.Close(), s.w.Close())
}

// tx runs fn as one write transaction: a part of a group commit (batch.go),
// which commits only if fn returns nil. fn must not use s.w or s.r: the
// writer has one connection.
func (s *Store) tx(ctx context.Context, fn func(tx *txn) error) error {
	return s.batched(ctx, fn)
}

// exec runs one write statement, as a part of a group commit.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := s.batched(ctx, func(tx *txn) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// txNow runs fn in a write transaction of its own (BEGIN IMMEDIATE) and
// commits when fn returns nil. Statements fn ran unprepared are prepared
// once the connection is free. Only the group commit calls it.
func (s *Store) txNow(ctx context.Context, fn func(tx *txn) error) error {
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	tx := &txn{Tx: sqlTx, w: s.w}
	if err = fn(tx); err != nil {
		sqlTx.Rollback()
	} else {
		err = sqlTx.Commit()
	}
	for _, q := range tx.missed {
		s.w.stmt(ctx, q)
	}
	return err
}

// execOne runs a write that must touch a row; none touched is ErrNotFound.
func (s *Store) execOne(ctx context.Context, query string, args ...any) error {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	return oneRow(res)
}

func oneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func affected(res sql.Result, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// insertErr maps a unique-constraint violation to storage.ErrAlreadyExists.
func insertErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w (%v)", storage.ErrAlreadyExists, err)
		}
	}
	return err
}

// noRows maps sql.ErrNoRows to storage.ErrNotFound.
func noRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// execer is *sql.DB or *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// list collects rows with scan.
func list[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
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

// jsonVal binds v as JSON text. nil slices and maps are stored as null and
// come back nil, so a value round-trips exactly (the audit hash depends on it).
type jsonVal struct{ v any }

func (j jsonVal) Value() (driver.Value, error) {
	b, err := json.Marshal(j.v)
	return string(b), err
}

func jsonOf(v any) jsonVal { return jsonVal{v} }

// blob binds b as a BLOB; nil is stored as an empty blob, not NULL.
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
