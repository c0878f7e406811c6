package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Tx runs fn in s.tx, for the tests of its retries.
func (s *Store) Tx(ctx context.Context, fn func() error) error {
	return s.tx(ctx, func(pgx.Tx) error { return fn() })
}

const MaxAttempts = maxAttempts
