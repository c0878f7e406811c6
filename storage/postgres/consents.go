package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage"
)

// SaveConsent replaces the scopes remembered for the user and client.
func (s *Store) SaveConsent(ctx context.Context, userID, clientID string, scopes []string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO consents (user_id, client_id, scopes, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`,
		userID, clientID, jsonOf(scopes), nanos(now))
	if err != nil {
		return fmt.Errorf("postgres: save consent: %w", err)
	}
	return nil
}

func (s *Store) ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error) {
	var scopes []string
	err := s.pool.QueryRow(ctx, `SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2`,
		userID, clientID).Scan(&scopes)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: consented scopes: %w", err)
	}
	return scopes, nil
}

func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	if err := execOne(ctx, s.pool, `DELETE FROM consents WHERE user_id = $1 AND client_id = $2`, userID, clientID); err != nil {
		return fmt.Errorf("postgres: delete consent: %w", err)
	}
	return nil
}

func (s *Store) CreateOneTimeToken(ctx context.Context, kind, hash string, expiresAt time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO one_time_tokens (kind, hash, expires_at, used_at) VALUES ($1, $2, $3, 0)`,
		kind, hash, nanos(expiresAt))
	if err != nil {
		return fmt.Errorf("postgres: create one-time token: %w", insertErr(err))
	}
	return nil
}

// ConsumeOneTimeToken locks the token's row, so a concurrent spend waits and
// then sees it spent.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, kind, hash string, now time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var expiresAt, spentAt time.Time
		err := tx.QueryRow(ctx, `SELECT expires_at, used_at FROM one_time_tokens WHERE kind = $1 AND hash = $2 FOR UPDATE`,
			kind, hash).Scan(at(&expiresAt), at(&spentAt))
		switch {
		case err != nil:
			return noRows(err)
		case !spentAt.IsZero():
			return storage.ErrReplayed
		case now.After(expiresAt):
			return storage.ErrExpired
		}
		_, err = tx.Exec(ctx, `UPDATE one_time_tokens SET used_at = $1 WHERE kind = $2 AND hash = $3`, usedAt(now), kind, hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: consume one-time token: %w", err)
	}
	return nil
}
