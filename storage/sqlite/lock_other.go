//go:build !unix

package sqlite

import "os"

// lockFile is a no-op where flock(2) is not available: Restore then
// relies on the operator having stopped the server.
func lockFile(db string, exclusive bool) (*os.File, error) {
	return os.OpenFile(db+"-lock", os.O_RDWR|os.O_CREATE, 0o600)
}
