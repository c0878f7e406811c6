package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/storage/sqlite"
)

// pgBackupHint is what backup and restore say on PostgreSQL, whose own
// tools make a consistent copy.
const pgBackupHint = "on PostgreSQL use its own tools: pg_dump --format=custom --file keystep.dump DBNAME, and pg_restore --clean --if-exists --dbname DBNAME keystep.dump (see the README: Backups and the master key); keep the master key apart from the dump"

// backup is `keystep backup --to FILE`: a consistent copy of the SQLite
// database, taken while the server runs.
func backup(ctx context.Context, args []string, stdout io.Writer) error {
	var to string
	fs, c, err := sub("backup", args, func(fs *flag.FlagSet) {
		fs.StringVar(&to, "to", "", "the backup file to write (must not exist)")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "backup"); err != nil {
		return err
	}
	if c.database != "" {
		return errors.New("backup: " + pgBackupHint)
	}
	if to == "" {
		return usageError{"backup: --to FILE is required"}
	}
	db := filepath.Join(c.data, "keystep.db")
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("backup: no database: %w", err)
	}
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer st.Close()
	if err := st.Backup(ctx, to); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Backed up %s to %s.\nKeep the master key (%s) safe and apart from it: the backup is useless without the key, and whoever has both has every secret.\n",
		db, to, masterKeyPath(c))
	return nil
}

// restore is `keystep restore --from FILE [--force]`: it puts a backup in
// place of the data folder's database, once the master key is shown to fit.
func restore(ctx context.Context, args []string, stdout io.Writer) error {
	var from string
	var force bool
	fs, c, err := sub("restore", args, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "the backup file to restore")
		fs.BoolVar(&force, "force", false, "replace an existing database (the server must be stopped)")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "restore"); err != nil {
		return err
	}
	if c.database != "" {
		return errors.New("restore: " + pgBackupHint)
	}
	if from == "" {
		return usageError{"restore: --from FILE is required"}
	}
	// The key is never generated here: a new one fits no backup.
	keyPath := masterKeyPath(c)
	key, err := masterKey(keyPath, "", "")
	if err != nil {
		return fmt.Errorf("restore: the backup needs the master key it was taken with: %w", err)
	}
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return fmt.Errorf("restore: data folder: %w", err)
	}
	db := filepath.Join(c.data, "keystep.db")
	err = sqlite.Restore(ctx, from, db, force, func(st *sqlite.Store) error {
		return idp.CheckMasterKey(ctx, st, key)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Restored %s from %s; the master key %s fits it.\n", db, from, keyPath)
	return nil
}

// masterKeyPath is the key file the commands read: --master-key-file or
// DATA/master.key.
func masterKeyPath(c *common) string {
	if c.masterKeyFile != "" {
		return c.masterKeyFile
	}
	return filepath.Join(c.data, "master.key")
}
