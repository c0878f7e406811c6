package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/storage"
)

// SaveConsent replaces the scopes remembered for the user and client.
func (s *Store) SaveConsent(ctx context.Context, userID, clientID string, scopes []string, now time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO consents (user_id, client_id, scopes, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`,
		userID, clientID, jsonOf(scopes), nanos(now))
	if err != nil {
		return fmt.Errorf("sqlite: save consent: %w", err)
	}
	return nil
}

func (s *Store) ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error) {
	var scopes []string
	err := s.r.QueryRowContext(ctx, `SELECT scopes FROM consents WHERE user_id = ? AND client_id = ?`,
		userID, clientID).Scan(js(&scopes))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: consented scopes: %w", err)
	}
	return scopes, nil
}

func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	if err := s.execOne(ctx, `DELETE FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID); err != nil {
		return fmt.Errorf("sqlite: delete consent: %w", err)
	}
	return nil
}

func (s *Store) CreateOneTimeToken(ctx context.Context, kind, hash string, expiresAt time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO one_time_tokens (kind, hash, expires_at, used_at) VALUES (?, ?, ?, 0)`,
		kind, hash, nanos(expiresAt))
	if err != nil {
		return fmt.Errorf("sqlite: create one-time token: %w", insertErr(err))
	}
	return nil
}

func (s *Store) ConsumeOneTimeToken(ctx context.Context, kind, hash string, now time.Time) error {
	err := s.tx(ctx, func(tx *txn) error {
		var expiresAt, spentAt time.Time
		err := tx.QueryRowContext(ctx, `SELECT expires_at, used_at FROM one_time_tokens WHERE kind = ? AND hash = ?`,
			kind, hash).Scan(at(&expiresAt), at(&spentAt))
		switch {
		case err != nil:
			return noRows(err)
		case !spentAt.IsZero():
			return storage.ErrReplayed
		case now.After(expiresAt):
			return storage.ErrExpired
		}
		_, err = tx.ExecContext(ctx, `UPDATE one_time_tokens SET used_at = ? WHERE kind = ? AND hash = ?`, usedAt(now), kind, hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: consume one-time token: %w", err)
	}
	return nil
}
