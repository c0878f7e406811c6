package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Migrations are forward-only: migrations/NNNN_description.sql in a
// backend's embedded files, applied in order, each version recorded in
// schema_migrations. The numbers are the same in every backend, so a schema
// version means the same in all.

type migration struct {
	version int64
	name    string
	sql     string
}

func migrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and _", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// Migrate applies the migrations in fsys whose versions the schema lacks,
// in one transaction run by begin, and refuses a schema newer than they
// know. The transaction reads the versions only once it holds the backend's lock on
// the schema (SQLite's BEGIN IMMEDIATE, PostgreSQL's migration lock), so
// instances starting together apply each migration once: the others wait,
// then find the versions recorded. DDL is transactional in both, so a
// failing migration leaves the schema as it was.
func Migrate(ctx context.Context, fsys fs.FS, begin TxFunc, d Dialect, locks Locks) error {
	ms, err := migrations(fsys)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var latest int64
	if len(ms) > 0 {
		latest = ms[len(ms)-1].version
	}
	rb := &rebinder{numbered: d.Numbered}
	err = begin(ctx, func(q Querier) error {
		if locks != nil {
			if err := locks.Migrate(ctx, q); err != nil {
				return err
			}
		}
		// Created under the lock: concurrent CREATE TABLE IF NOT EXISTS can
		// still fail on PostgreSQL's catalog.
		if _, err := q.Exec(ctx, d.MigrationsTable); err != nil {
			return err
		}
		rows, err := q.Query(ctx, `SELECT version FROM schema_migrations`)
		applied, err := list(rows, err, func(r Row) (v int64, err error) { err = r.Scan(&v); return })
		if err != nil {
			return err
		}
		if current := slices.Max(append(applied, 0)); current > latest {
			return fmt.Errorf("database schema version %d is newer than this build knows (%d); use a newer Keystep", current, latest)
		}
		for _, m := range ms {
			if slices.Contains(applied, m.version) {
				continue
			}
			// No arguments: pgx sends it by the simple protocol, which runs
			// several statements, as SQLite's Exec does.
			if _, err := q.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if _, err := q.Exec(ctx, rb.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`),
				m.version, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
