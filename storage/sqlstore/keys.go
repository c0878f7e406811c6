package sqlstore

import (
	"context"
	"time"

	"github.com/keystep/keystep/storage"
)

const keyCols = `id, algorithm, private, public, created_at, active_at, retired_at, expires_at`

func scanKey(sc Row) (storage.SigningKey, error) {
	var k storage.SigningKey
	err := sc.Scan(&k.ID, &k.Algorithm, &k.Private, &k.Public,
		at(&k.CreatedAt), at(&k.ActiveAt), at(&k.RetiredAt), at(&k.ExpiresAt))
	return k, err
}

func (s *Store) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	_, err := s.exec(ctx, `INSERT INTO signing_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, blob(k.Private), blob(k.Public),
		nanos(k.CreatedAt), nanos(k.ActiveAt), nanos(k.RetiredAt), nanos(k.ExpiresAt))
	if err != nil {
		return s.fail("create signing key", s.insertErr(err))
	}
	return nil
}

// ListSigningKeys returns every key, oldest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	rows, err := s.read.query(ctx, `SELECT `+keyCols+` FROM signing_keys ORDER BY created_at, id`)
	ks, err := list(rows, err, scanKey)
	if err != nil {
		return nil, s.fail("list signing keys", err)
	}
	return ks, nil
}

func (s *Store) RetireSigningKeys(ctx context.Context, alg, keepID string, retiredAt, expires time.Time) error {
	_, err := s.exec(ctx, `UPDATE signing_keys SET retired_at = ?, expires_at = ?
		WHERE algorithm = ? AND id != ? AND retired_at = 0`, nanos(retiredAt), nanos(expires), alg, keepID)
	if err != nil {
		return s.fail("retire signing keys", err)
	}
	return nil
}

// DeleteExpiredSigningKeys leaves keys with no expiry (still signing) alone.
func (s *Store) DeleteExpiredSigningKeys(ctx context.Context, now time.Time) (int, error) {
	n, err := s.sweep(ctx, "signing_keys", `expires_at != 0 AND expires_at < ?`, nanos(now))
	if err != nil {
		return n, s.fail("delete expired signing keys", err)
	}
	return n, nil
}
