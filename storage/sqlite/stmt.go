package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// db is a connection pool that prepares each statement once and reuses it.
// modernc.org/sqlite parses the SQL text again on every call that is not a
// prepared statement; in a refresh grant that parsing was a sixth of the
// server's CPU (issue 9). A statement that cannot be prepared runs
// unprepared, so its error comes from where it always did.
type db struct {
	*sql.DB
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

// maxStmts bounds the cache. Every query is a constant but for ListAudit's
// filter combinations, so this is never reached in practice.
const maxStmts = 512

func newDB(d *sql.DB) *db { return &db{DB: d, stmts: map[string]*sql.Stmt{}} }

func (d *db) cached(query string) *sql.Stmt {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.stmts[query]
}

// stmt returns the prepared statement for query, preparing it if need be,
// or nil. Preparing takes a connection of the pool: it must not be called
// by whoever holds the writer's only connection (a transaction; see txn).
func (d *db) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := d.cached(query); st != nil {
		return st
	}
	d.mu.RLock()
	full := len(d.stmts) >= maxStmts
	d.mu.RUnlock()
	if full {
		return nil
	}
	st, err := d.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	d.mu.Lock()
	prev, ok := d.stmts[query]
	if !ok {
		d.stmts[query] = st
	}
	d.mu.Unlock()
	if ok { // prepared concurrently
		st.Close()
		return prev
	}
	return st
}

func (d *db) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := d.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return d.DB.ExecContext(ctx, query, args...)
}

func (d *db) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := d.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return d.DB.QueryContext(ctx, query, args...)
}

func (d *db) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := d.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return d.DB.QueryRowContext(ctx, query, args...)
}

// Close closes the statements, then the pool.
func (d *db) Close() error {
	d.mu.Lock()
	var errs []error
	for q, st := range d.stmts {
		errs = append(errs, st.Close())
		delete(d.stmts, q)
	}
	d.mu.Unlock()
	return errors.Join(append(errs, d.DB.Close())...)
}

// txn is a write transaction that uses the writer's prepared statements.
// It holds the writer's only connection, so it cannot prepare a statement
// through the pool: one not prepared yet runs unprepared, and Store.txNow
// prepares it once the transaction has ended.
//
// Its statements ignore the cancellation of the context they are given:
// the transaction is shared (batch.go), and SQLite answers an interrupted
// write by rolling back the whole transaction, everyone's parts with it.
// A caller's context is checked before its part starts instead.
type txn struct {
	*sql.Tx
	w      *db
	missed []string
}

func (t *txn) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.w.cached(query); st != nil {
		return t.Tx.StmtContext(ctx, st)
	}
	t.missed = append(t.missed, query)
	return nil
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = context.WithoutCancel(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = context.WithoutCancel(ctx)
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}
