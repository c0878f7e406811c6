package sqlite_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystep/keystep/storage/sqlite"
)

// OpenExclusive is the only user of the database while it is open: it
// refuses while another Store has the file, every Open refuses while it
// holds it, and it never creates a database.
func TestOpenExclusive(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keystep.db")
	if _, err := sqlite.OpenExclusive(ctx, path); err == nil {
		t.Fatal("opened a database that does not exist")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a database was created: %v", err)
	}
	shared, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.OpenExclusive(ctx, path); !errors.Is(err, sqlite.ErrInUse) {
		t.Fatalf("while a Store has it open: %v", err)
	}
	shared.Close()

	ex, err := sqlite.OpenExclusive(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(ctx, path); !errors.Is(err, sqlite.ErrInUse) {
		t.Fatalf("Open while it is held: %v", err)
	}
	tables, err := ex.Tables(ctx)
	if err != nil || len(tables) == 0 {
		t.Fatalf("tables %v, %v", tables, err)
	}
	for _, name := range tables {
		if name == "schema_migrations" || strings.HasPrefix(name, "sqlite_") {
			t.Errorf("Tables lists %s", name)
		}
	}
	if _, _, err := ex.ReadTable(ctx, "schema_migrations"); err == nil {
		t.Error("ReadTable read a table Tables does not list")
	}
	ex.Close()
	again, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("after it closed: %v", err)
	}
	again.Close()
}
