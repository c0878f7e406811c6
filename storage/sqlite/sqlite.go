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
// The statements, row scanning and transaction shapes are storage/sqlstore's,
// shared with the PostgreSQL backend; this package runs them on its writer
// and readers. Times are stored as INTEGER unix nanoseconds (the zero time
// as 0), lists and maps as JSON text.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlstore"
)

// Store implements storage.Store on one SQLite database file.
type Store struct {
	*shared // every method but Ping and Close

	w    *db // one connection: every write and transaction
	r    *db // query-only pool for plain reads
	path string
	lock *os.File // shared lock: Restore refuses while it is held

	ck          *sql.DB // the checkpointer's own connection
	stop, done  chan struct{}
	stopOnce    sync.Once
	checkpoints atomic.Int64 // checkpoints that copied frames back

	batchq    chan *batchOp // group commit (batch.go)
	batchDone chan struct{}
	batches   atomic.Int64 // transactions the group commit ran
}

var _ storage.Store = (*Store)(nil)

type shared = sqlstore.Store

const readers = 4

// Open opens (creating if needed) the database at path and brings its schema
// up to date. It refuses a database written by a newer Keystep. A database
// it creates is readable by its owner only (0600), and so are the -wal and
// -shm files SQLite makes beside it, which take the database's mode; an
// existing database keeps the mode it has.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	lock, err := lockFile(abs, false)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// SQLite would create the file with its default mode (0644 under the
	// usual umask): the password hashes and the audit log must not be
	// readable by every user of the host.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	f.Close()
	st, err := open(ctx, abs, path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	st.lock = lock
	return st, nil
}

func open(ctx context.Context, abs, path string) (*Store, error) {
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
	// The checkpointer never waits: a TRUNCATE checkpoint holds the write
	// lock while it waits for readers, and a writer would wait behind it.
	// Busy, it tries again at the next tick.
	ck, err := sql.Open("sqlite", dsn(abs, url.Values{"_pragma": {"busy_timeout(0)"}}))
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	s := &Store{w: newDB(w), r: newDB(r), path: abs, ck: ck, stop: make(chan struct{}), done: make(chan struct{}),
		batchq: make(chan *batchOp), batchDone: make(chan struct{})}
	s.shared = sqlstore.New(sqlstore.Config{
		Name: "sqlite",
		Read: querier{s.r},
		Exec: s.exec,
		Tx: func(ctx context.Context, fn func(sqlstore.Querier) error) error {
			return s.tx(ctx, func(tx *txn) error { return fn(querier{tx}) })
		},
		Dialect: dialect,
	})
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
//
// SQLite reuses the WAL file rather than shrink it, so after a load it kept
// its largest size (issue 17), whatever few frames it holds since its last
// restart. Once a WAL file larger than walKeepBytes has been idle for a
// tick with every frame copied, the checkpointer empties it
// (TRUNCATE): it takes the write lock only when no writer has come for a
// whole tick, and then for a moment. Under load the WAL keeps its size:
// journal_size_limit, which cuts it back at every restart, made the writer
// grow the file again each time and cost about 8 % of the refresh grants
// per CPU-second (keystep bench, three interleaved rounds).
const (
	checkpointEvery = 200 * time.Millisecond
	backstopPages   = 16000
	walKeepBytes    = 4 << 20
)

func (s *Store) checkpointLoop() {
	defer close(s.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var last int64 = -1 // the WAL's frames at the last tick
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		var busy, frames, copied int64
		err := s.ck.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		if err != nil {
			last = -1
			continue
		}
		if copied > 0 {
			s.checkpoints.Add(1)
		}
		if copied == frames && frames == last && s.walBytes() > walKeepBytes {
			// Busy, it is tried again at the next idle tick.
			_ = s.ck.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied)
		}
		last = frames
	}
}

// walBytes is the WAL file's size; 0 when there is none.
func (s *Store) walBytes() int64 {
	fi, err := os.Stat(s.path + "-wal")
	if err != nil {
		return 0
	}
	return fi.Size()
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

// Size is how large the database is: dbBytes as SQLite counts it
// (page_count × page_size as of the latest commit, whether those pages are
// in the file yet or still in the WAL; free pages included), walBytes the
// WAL file (0 when there is none), which is apart.
func (s *Store) Size(ctx context.Context) (dbBytes, walBytes int64, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT c.page_count * z.page_size FROM pragma_page_count() c, pragma_page_size() z`).Scan(&dbBytes)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: size: %w", err)
	}
	return dbBytes, s.walBytes(), nil
}

// Close stops the checkpointer and the group commit, and closes the pools.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	<-s.batchDone
	err := errors.Join(s.ck.Close(), s.r.Close(), s.w.Close())
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// tx runs fn as one write transaction: a part of a group commit (batch.go),
// which commits only if fn returns nil. fn must not use s.w or s.r: the
// writer has one connection.
func (s *Store) tx(ctx context.Context, fn func(tx *txn) error) error {
	return s.batched(ctx, fn)
}

// exec runs one write statement, as a part of a group commit, and returns
// the number of rows it touched.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.batched(ctx, func(tx *txn) error {
		var err error
		n, err = querier{tx}.Exec(ctx, query, args...)
		return err
	})
	return n, err
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

// isUnique reports a unique-constraint violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}

var dialect = sqlstore.Dialect{
	System: "sqlite",
	RowID:  "rowid",
	MigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`,
	IsUnique: isUnique,
}

// conn is *db, *sql.Tx or *txn.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// querier is a conn as a sqlstore.Querier.
type querier struct{ c conn }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.c.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.c.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return q.c.QueryRowContext(ctx, query, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
