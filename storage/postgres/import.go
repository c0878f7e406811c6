package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrNotEmpty is returned, wrapped, by Import when the schema already holds
// data: an import never merges.
var ErrNotEmpty = errors.New("the database is not empty")

// migrationsTable is the schema's own bookkeeping (sqlstore.Migrate): Open
// fills it, and Import and CountRows leave it out.
const migrationsTable = "schema_migrations"

// ReadTable gives one table of the source to Import: its column names and
// its rows, each value as database/sql reads it from SQLite (int64, float64,
// string, []byte or nil).
type ReadTable func(ctx context.Context, table string) ([]string, iter.Seq2[[]any, error], error)

// Import copies a whole database into this schema, which must be empty:
// tables names every table of the source, read reads one. The schema's
// tables and the source's must be the same set, and every source column
// must exist here; each value is converted to its column's type (an
// integer to BOOLEAN, text to JSONB, …). Everything happens in one
// transaction that locks every table first, so a failure leaves the schema
// empty and nothing writes beside it. It returns the rows copied per table.
func (s *Store) Import(ctx context.Context, tables []string, read ReadTable) (map[string]int64, error) {
	counts := map[string]int64{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		clear(counts)
		schema, err := schemaColumns(ctx, tx)
		if err != nil {
			return err
		}
		have := slices.Sorted(maps.Keys(schema))
		want := slices.Sorted(slices.Values(tables))
		if !slices.Equal(have, want) {
			return fmt.Errorf("the tables differ: the source has %s, PostgreSQL has %s (are both at the same schema version?)",
				strings.Join(want, ", "), strings.Join(have, ", "))
		}
		ids := make([]string, len(have))
		for i, t := range have {
			ids[i] = pgx.Identifier{t}.Sanitize()
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(ids, ", ")+` IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		for _, t := range have {
			var has bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{t}.Sanitize()+`)`).Scan(&has); err != nil {
				return err
			}
			if has {
				return fmt.Errorf("%w: table %s has rows; import into a new database or schema", ErrNotEmpty, t)
			}
		}
		order, err := referencedFirst(ctx, tx, have)
		if err != nil {
			return err
		}
		for _, t := range order {
			n, err := copyTable(ctx, tx, t, schema[t], read)
			if err != nil {
				return fmt.Errorf("table %s: %w", t, err)
			}
			counts[t] = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: import: %w", err)
	}
	return counts, nil
}

// copyTable copies one table with COPY, converting each value to its
// column's type (types maps a column to its data_type).
func copyTable(ctx context.Context, tx pgx.Tx, table string, types map[string]string, read ReadTable) (int64, error) {
	cols, rows, err := read(ctx, table)
	if err != nil {
		return 0, err
	}
	conv := make([]func(any) (any, error), len(cols))
	for i, c := range cols {
		typ, ok := types[c]
		if !ok {
			return 0, fmt.Errorf("PostgreSQL has no column %s", c)
		}
		conv[i] = converter(typ)
	}
	var rowErr error
	src := func(yield func([]any, error) bool) {
		for row, err := range rows {
			if err == nil && len(row) != len(cols) {
				err = fmt.Errorf("a row of %d values for %d columns", len(row), len(cols))
			}
			if err == nil {
				for i, v := range row {
					if row[i], err = conv[i](v); err != nil {
						err = fmt.Errorf("column %s: %w", cols[i], err)
						break
					}
				}
			}
			if err != nil {
				rowErr = err
				yield(nil, err)
				return
			}
			if !yield(row, nil) {
				return
			}
		}
	}
	next, stop := iter.Pull2(iter.Seq2[[]any, error](src))
	defer stop()
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, &copySource{next: next})
	if rowErr != nil {
		return 0, rowErr
	}
	return n, err
}

// copySource adapts a pulled iterator to pgx.CopyFromSource.
type copySource struct {
	next func() ([]any, error, bool)
	row  []any
	err  error
}

func (c *copySource) Next() bool {
	row, err, ok := c.next()
	if !ok || err != nil {
		c.err = err
		return false
	}
	c.row = row
	return true
}

func (c *copySource) Values() ([]any, error) { return c.row, nil }
func (c *copySource) Err() error             { return c.err }

// converter turns a value read from SQLite into one for a PostgreSQL column
// of data_type typ. SQLite keeps booleans as integers and JSON as text.
func converter(typ string) func(any) (any, error) {
	switch typ {
	case "boolean":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil:
				return nil, nil
			case int64:
				return v != 0, nil
			case bool:
				return v, nil
			}
			return nil, fmt.Errorf("%T for a boolean", v)
		}
	case "double precision", "real":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case int64:
				return float64(v), nil
			case nil, float64:
				return v, nil
			}
			return nil, fmt.Errorf("%T for a number", v)
		}
	case "jsonb", "json", "text":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case []byte:
				return string(v), nil
			case nil, string:
				return v, nil
			}
			return nil, fmt.Errorf("%T for %s", v, typ)
		}
	case "bytea":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case string:
				return []byte(v), nil
			case nil, []byte:
				return v, nil
			}
			return nil, fmt.Errorf("%T for bytes", v)
		}
	case "bigint", "integer", "smallint":
		return func(v any) (any, error) {
			switch v.(type) {
			case nil, int64:
				return v, nil
			}
			return nil, fmt.Errorf("%T for an integer", v)
		}
	}
	return func(v any) (any, error) { return nil, fmt.Errorf("no conversion to %s", typ) }
}

// schemaColumns maps each table of the current schema (but the migrations
// table) to its columns' data types.
func schemaColumns(ctx context.Context, q conn) (map[string]map[string]string, error) {
	rows, err := q.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			return nil, err
		}
		if t == migrationsTable {
			continue
		}
		if out[t] == nil {
			out[t] = map[string]string{}
		}
		out[t][c] = typ
	}
	return out, rows.Err()
}

// referencedFirst orders tables so that a table comes after every table its
// foreign keys reference.
func referencedFirst(ctx context.Context, q conn, tables []string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT cl.relname, ref.relname
		FROM pg_constraint co
		JOIN pg_class cl ON cl.oid = co.conrelid
		JOIN pg_class ref ON ref.oid = co.confrelid
		WHERE co.contype = 'f' AND cl.relnamespace = current_schema()::regnamespace`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	deps := map[string][]string{}
	for rows.Next() {
		var t, ref string
		if err := rows.Scan(&t, &ref); err != nil {
			return nil, err
		}
		if t != ref {
			deps[t] = append(deps[t], ref)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(t string) error
	visit = func(t string) error {
		switch state[t] {
		case 1:
			return fmt.Errorf("foreign keys form a cycle through %s", t)
		case 2:
			return nil
		}
		state[t] = 1
		for _, d := range slices.SortedFunc(slices.Values(deps[t]), cmp.Compare) {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[t] = 2
		order = append(order, t)
		return nil
	}
	for _, t := range tables {
		if err := visit(t); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// CountRows counts the rows of every table of the schema but the
// migrations table.
func (s *Store) CountRows(ctx context.Context) (map[string]int64, error) {
	schema, err := schemaColumns(ctx, s.pool)
	if err != nil {
		return nil, fmt.Errorf("postgres: count rows: %w", err)
	}
	counts := make(map[string]int64, len(schema))
	for t := range schema {
		var n int64
		if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM `+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("postgres: count %s: %w", t, err)
		}
		counts[t] = n
	}
	return counts, nil
}

// SchemaVersion is the latest migration applied to the schema.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+migrationsTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// CheckImportTarget reports whether dsn's schema may receive an import,
// before Open creates Keystep's tables in it: it must hold no table, or
// only Keystep's own (a schema Open made earlier; Import still refuses
// rows). Another application's tables are ErrNotEmpty, and nothing is
// created beside them.
func CheckImportTarget(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return errors.New("postgres: the connection string does not parse")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() ORDER BY 1`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(tables) > 0 && !slices.Contains(tables, migrationsTable) {
		return fmt.Errorf("%w: it holds tables that are not Keystep's (%s); import into a new database or schema", ErrNotEmpty, strings.Join(tables, ", "))
	}
	return nil
}
