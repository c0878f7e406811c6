package sqlite

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// OpenExclusive opens an existing database for a command that must be its
// only user, such as copying it elsewhere: it takes the exclusive lock that
// Restore takes, so it refuses (ErrInUse) while a server or another command
// has the database open, and every Open waits for it to close. It refuses a
// path that does not exist rather than create an empty database.
func OpenExclusive(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("sqlite: open %s: not a database file", path)
	}
	lock, err := lockFile(abs, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	st, err := open(ctx, abs, path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	st.lock = lock
	return st, nil
}

// migrationsTable is the schema's own bookkeeping (sqlstore.Migrate), which
// every backend keeps for itself: Tables leaves it out.
const migrationsTable = "schema_migrations"

// Tables lists the database's tables of Keystep data, by name: every table
// but SQLite's internal ones and the schema version table.
func (s *Store) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.r.DB.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: tables: %w", err)
		}
		if strings.HasPrefix(n, "sqlite_") || n == migrationsTable {
			continue
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: tables: %w", err)
	}
	return names, nil
}

// SchemaVersion is the latest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.r.DB.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+migrationsTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return v, nil
}

// ReadTable returns a table's columns, in their order in the schema, and its
// rows as the driver reads them: int64, float64, string, []byte or nil for
// each column. table must be one Tables named. The rows are read when
// iterated; an error ends the iteration.
func (s *Store) ReadTable(ctx context.Context, table string) ([]string, iter.Seq2[[]any, error], error) {
	cols, err := s.columns(ctx, table)
	if err != nil {
		return nil, nil, err
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = quoteIdent(c)
	}
	query := `SELECT ` + strings.Join(quoted, ", ") + ` FROM ` + quoteIdent(table)
	seq := func(yield func([]any, error) bool) {
		rows, err := s.r.DB.QueryContext(ctx, query)
		if err != nil {
			yield(nil, fmt.Errorf("sqlite: read %s: %w", table, err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				yield(nil, fmt.Errorf("sqlite: read %s: %w", table, err))
				return
			}
			if !yield(vals, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, fmt.Errorf("sqlite: read %s: %w", table, err))
		}
	}
	return cols, seq, nil
}

// CountRows counts the rows of every table Tables lists.
func (s *Store) CountRows(ctx context.Context) (map[string]int64, error) {
	tables, err := s.Tables(ctx)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(tables))
	for _, t := range tables {
		var n int64
		if err := s.r.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quoteIdent(t)).Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: count %s: %w", t, err)
		}
		counts[t] = n
	}
	return counts, nil
}

// columns lists a table's columns in schema order.
func (s *Store) columns(ctx context.Context, table string) ([]string, error) {
	tables, err := s.Tables(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(tables, table) {
		return nil, fmt.Errorf("sqlite: no table %q", table)
	}
	rows, err := s.r.DB.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		return nil, fmt.Errorf("sqlite: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("sqlite: columns of %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, errors.New("sqlite: table " + table + " has no columns")
	}
	return cols, nil
}

// quoteIdent quotes a name from the schema for use in SQL text.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
