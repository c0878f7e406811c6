//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes a lock on the database's side file db+"-lock": shared
// for every open Store, exclusive for a restore, never waiting. SQLite's
// own locks cannot say whether another process has the file open between
// transactions; this one is held as long as the Store is open.
func lockFile(db string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(db+"-lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if exclusive {
				return nil, fmt.Errorf("%w: a server or command has it open; stop it first", ErrInUse)
			}
			return nil, fmt.Errorf("%w: it is being restored", ErrInUse)
		}
		return nil, err
	}
	return f, nil
}
