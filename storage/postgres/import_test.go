package postgres_test

import (
	"context"
	"errors"
	"iter"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/postgres"
	"github.com/keystep/keystep/storage/sqlite"
	"github.com/keystep/keystep/storage/storagetest"
)

// Import copies a SQLite store table by table, all or nothing: a failure in
// any table, a value that does not fit its column, or a table set that
// differs leaves the schema empty; it never merges into a schema with rows.
func TestImportFromSQLite(t *testing.T) {
	dst := open(t, newSchema(t))
	ctx := t.Context()
	src, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	key, err := storage.NewAuditKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Fill(t, src, key)
	tables, err := src.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	empty := func(when string) {
		t.Helper()
		counts, err := dst.CountRows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for table, n := range counts {
			if n != 0 {
				t.Fatalf("%s: %d rows left in %s", when, n, table)
			}
		}
	}

	failing := func(ctx context.Context, table string) ([]string, iter.Seq2[[]any, error], error) {
		if table == "sessions" {
			return nil, nil, errors.New("disk on fire")
		}
		return src.ReadTable(ctx, table)
	}
	if _, err := dst.Import(ctx, tables, failing); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("a failing read: %v", err)
	}
	empty("after a failing read")

	misfit := func(ctx context.Context, table string) ([]string, iter.Seq2[[]any, error], error) {
		cols, rows, err := src.ReadTable(ctx, table)
		if table != "users" || err != nil {
			return cols, rows, err
		}
		return cols, func(yield func([]any, error) bool) {
			for row, err := range rows {
				for i, c := range cols {
					if c == "admin" {
						row[i] = "yes"
					}
				}
				if !yield(row, err) {
					return
				}
			}
		}, nil
	}
	if _, err := dst.Import(ctx, tables, misfit); err == nil || !strings.Contains(err.Error(), "column admin") {
		t.Fatalf("text for a boolean: %v", err)
	}
	empty("after a value that does not fit")

	if _, err := dst.Import(ctx, append(tables[:len(tables):len(tables)], "extra"), src.ReadTable); err == nil || !strings.Contains(err.Error(), "tables differ") {
		t.Fatalf("a table PostgreSQL lacks: %v", err)
	}
	empty("after a table set that differs")

	counts, err := dst.Import(ctx, tables, src.ReadTable)
	if err != nil {
		t.Fatal(err)
	}
	want, err := src.CountRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, counts); d != "" {
		t.Errorf("rows copied (-sqlite +postgres):\n%s", d)
	}
	if d := cmp.Diff(storagetest.ReadDataset(t, src), storagetest.ReadDataset(t, dst), cmpopts.EquateEmpty()); d != "" {
		t.Errorf("reads back differently (-sqlite +postgres):\n%s", d)
	}
	if _, err := dst.Import(ctx, tables, src.ReadTable); !errors.Is(err, postgres.ErrNotEmpty) {
		t.Fatalf("into a schema with rows: %v", err)
	}
}
