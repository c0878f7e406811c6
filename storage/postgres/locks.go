package postgres

import (
	"context"
	"hash/fnv"
	"slices"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlstore"
)

// Advisory lock classes, the first key of pg_advisory_xact_lock(int, int).
// The second key says which lock of the class.
const (
	lockMigrate  int32 = 0x6b730001 // per schema
	lockAudit    int32 = 0x6b730002 // per schema
	lockThrottle int32 = 0x6b730003 // per throttle key
	lockSubject  int32 = 0x6b730004 // per token subject
)

// locks are the transaction-level advisory locks taken where no row can be
// locked: the next audit row, a key's next failure, the token a rotation in
// flight inserts (see the package doc).
type locks struct{}

var _ sqlstore.Locks = locks{}

func (locks) Migrate(ctx context.Context, q sqlstore.Querier) error {
	return lockSchema(ctx, q, lockMigrate)
}

func (locks) Audit(ctx context.Context, q sqlstore.Querier) error {
	return lockSchema(ctx, q, lockAudit)
}

// lockSchema takes the lock of class for the schema the tables live in, so
// Keystep deployments in different schemas of one database do not wait for
// each other.
func lockSchema(ctx context.Context, q sqlstore.Querier, class int32) error {
	_, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`, class)
	return err
}

// Throttle takes the locks of keys, each once, in ascending order, so two
// calls sharing several keys cannot deadlock.
func (locks) Throttle(ctx context.Context, q sqlstore.Querier, keys []storage.ThrottleKey) error {
	ids := make([]int32, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, keyLock(k))
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockThrottle, id); err != nil {
			return err
		}
	}
	return nil
}

// keyLock is the second advisory-lock key for a throttle key.
func keyLock(k storage.ThrottleKey) int32 {
	h := fnv.New32a()
	h.Write([]byte(k.Scope))
	h.Write([]byte{0})
	h.Write([]byte(k.Key))
	return int32(h.Sum32())
}

// RotationOf takes the lock of the token's subject shared: upgrades of
// refresh tokens from before families into a family do not wait for each
// other, only for a revocation of the user's tokens. (Rotating a family
// needs no such lock: it updates the family's row, which a revocation
// updates too.)
func (locks) RotationOf(ctx context.Context, q sqlstore.Querier, refreshID string) error {
	_, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1, hashtext(subject)) FROM refresh_tokens WHERE id = $2`, lockSubject, refreshID)
	return err
}

// RevocationOf takes the lock of subject exclusive, or of every subject of
// the refresh tokens whose column is value, in order. Upgrades hold it
// shared, so a revocation that takes it first waits for the upgrades under
// way and its UPDATEs (each with a snapshot taken after the lock) see the
// families they wrote: at READ COMMITTED an UPDATE never sees a row inserted
// after its snapshot.
func (locks) RevocationOf(ctx context.Context, q sqlstore.Querier, subject, column, value string) error {
	if subject != "" {
		_, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockSubject, subject)
		return err
	}
	_, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(subject))
		FROM (SELECT DISTINCT subject FROM refresh_tokens WHERE `+column+` = $2) AS s ORDER BY subject`, lockSubject, value)
	return err
}
