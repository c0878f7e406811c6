package postgres

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keystep/keystep/storage/sqlstore"
)

// Migrations are forward-only: migrations/NNNN_description.sql, numbered as
// SQLite's, so a schema version means the same in both (sqlstore.Migrate).
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate applies the missing migrations in one transaction that holds the
// schema's migration lock (pg_advisory_xact_lock), so instances starting
// together apply each migration once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return sqlstore.Migrate(ctx, migrationFS, func(ctx context.Context, fn func(sqlstore.Querier) error) error {
		return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error { return fn(querier{tx}) })
	}, dialect, locks{})
}
