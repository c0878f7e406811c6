package sqlstore

import (
	"context"
	"strconv"
)

// SweepBatch is how many rows one statement of a sweep deletes (issue 17).
// Expired rows pile up by the million (a day of refresh grants at 1,000/s
// is 86 million rows); one DELETE of them all held SQLite's only writer,
// and every sign-in and grant queued behind it, for as long as it took,
// and on PostgreSQL made one huge transaction. Each batch is a write
// transaction of its own, so writers queued meanwhile go first (the SQLite
// group commit serves them in order) and a sweep costs them at most one
// batch's wait.
const SweepBatch = 1000

// sweep deletes the rows of table where cond holds, SweepBatch at a time,
// until a batch finds fewer, and returns how many it deleted. The table's
// key is id. Rows that come to match while it runs may be left for the
// next sweep; an error or the end of ctx stops it with the count so far.
func (s *Store) sweep(ctx context.Context, table, cond string, args ...any) (int, error) {
	return s.sweepBy(ctx, table, "id", cond, args...)
}

// sweepBy is sweep for a table whose rows key names.
func (s *Store) sweepBy(ctx context.Context, table, key, cond string, args ...any) (int, error) {
	q := `DELETE FROM ` + table + ` WHERE ` + key + ` IN (SELECT ` + key + ` FROM ` + table + ` WHERE ` + cond +
		` LIMIT ` + strconv.Itoa(SweepBatch) + `)`
	total := 0
	for {
		n, err := affected(s.exec(ctx, q, args...))
		total += n
		if err != nil || n < SweepBatch {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
