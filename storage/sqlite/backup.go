package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrInUse is returned, wrapped, by Restore when a Store (a server, or a
// command) has the target database open, and by Open while a restore
// replaces it.
var ErrInUse = errors.New("database in use")

// Backup writes a consistent copy of the database, as of one moment, to
// path with VACUUM INTO, while the store goes on serving: it reads in one
// transaction, which WAL lets run beside the writer. It refuses a path
// that exists. The copy holds what the master key sealed, not the key.
func (s *Store) Backup(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	// Claim the name first: VACUUM INTO accepts an empty file, and no
	// concurrent backup can then pick the same one.
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	f.Close()
	if _, err := s.ck.ExecContext(ctx, `VACUUM INTO ?`, abs); err != nil {
		os.Remove(abs)
		return fmt.Errorf("sqlite: backup to %s: %w", path, err)
	}
	return syncFile(abs)
}

// Restore replaces the database at to with a copy of the backup from,
// after check has accepted the copy opened as a Store (the caller checks
// the master key fits). It refuses while any Store has to open
// (ErrInUse), and refuses an existing database unless force is set. The
// backup file itself is not changed; a stale WAL of the replaced database
// is removed so that it cannot be replayed over the restored one.
func Restore(ctx context.Context, from, to string, force bool, check func(*Store) error) error {
	to, err := filepath.Abs(to)
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	lock, err := lockFile(to, true)
	if err != nil {
		return fmt.Errorf("sqlite: restore %s: %w", to, err)
	}
	defer lock.Close()
	if _, err := os.Stat(to); err == nil && !force {
		return fmt.Errorf("sqlite: restore: %s exists; stop the server and pass --force to replace it", to)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	tmp, err := copyToTemp(from, filepath.Dir(to))
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	defer removeDB(tmp)
	st, err := Open(ctx, tmp) // also brings an older backup's schema up to date
	if err != nil {
		return fmt.Errorf("sqlite: restore: %s is not a Keystep database: %w", from, err)
	}
	cerr := check(st)
	if err := errors.Join(cerr, st.Close()); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if _, err := os.Stat(tmp + "-wal"); err == nil {
		return fmt.Errorf("sqlite: restore: the copy kept a WAL after closing; nothing was replaced")
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		if err := os.Remove(to + side); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sqlite: restore: %w", err)
		}
	}
	if err := os.Rename(tmp, to); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	return syncFile(filepath.Dir(to))
}

// copyToTemp copies the file from into a new file in dir.
func copyToTemp(from, dir string) (string, error) {
	src, err := os.Open(from)
	if err != nil {
		return "", err
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil {
		return "", err
	} else if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return "", fmt.Errorf("%s is not a database file", from)
	}
	dst, err := os.CreateTemp(dir, ".keystep-restore-*.db")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(dst, src)
	if err := errors.Join(err, dst.Close()); err != nil {
		os.Remove(dst.Name())
		return "", err
	}
	return dst.Name(), nil
}

// removeDB removes a database file and its side files, if still there.
func removeDB(path string) {
	for _, side := range []string{"", "-wal", "-shm", "-lock"} {
		os.Remove(path + side)
	}
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
