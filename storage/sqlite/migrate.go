package sqlite

import (
	"context"
	"database/sql"
	"embed"

	"github.com/keystep/keystep/storage/sqlstore"
)

// Migrations are forward-only: migrations/NNNN_description.sql, numbered as
// PostgreSQL's (sqlstore.Migrate).
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate applies the missing migrations in one BEGIN IMMEDIATE
// transaction, which re-reads the version once it holds the write lock, so
// two processes opening the same file at once apply each migration once.
func migrate(ctx context.Context, w *sql.DB) error {
	return sqlstore.Migrate(ctx, migrationFS, func(ctx context.Context, fn func(sqlstore.Querier) error) error {
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := fn(querier{tx}); err != nil {
			return err
		}
		return tx.Commit()
	}, dialect, nil)
}
