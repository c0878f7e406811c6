package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keystep/keystep/storage"
)

// SaveConsent replaces the scopes remembered for the user and client.
func (s *Store) SaveConsent(ctx context.Context, userID, clientID string, scopes []string, now time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO consents (user_id, client_id, scopes, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`,
		userID, clientID, jsonOf(scopes), nanos(now))
	if err != nil {
		return s.fail("save consent", err)
	}
	return nil
}

func (s *Store) ConsentedScopes(ctx context.Context, userID, clientID string) ([]string, error) {
	var scopes []string
	err := s.read.queryRow(ctx, `SELECT scopes FROM consents WHERE user_id = ? AND client_id = ?`,
		userID, clientID).Scan(js(&scopes))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("consented scopes", err)
	}
	return scopes, nil
}

func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	if err := s.execOne(ctx, `DELETE FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID); err != nil {
		return s.fail("delete consent", err)
	}
	return nil
}

func (s *Store) CreateOneTimeToken(ctx context.Context, kind, hash string, expiresAt time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO one_time_tokens (kind, hash, expires_at, used_at) VALUES (?, ?, ?, 0)`,
		kind, hash, nanos(expiresAt))
	if err != nil {
		return s.fail("create one-time token", s.insertErr(err))
	}
	return nil
}

// ConsumeOneTimeToken reads the token's row (with the dialect's row lock,
// so a concurrent spend waits) and marks it used.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, kind, hash string, now time.Time) error {
	err := s.tx(ctx, func(tx db) error {
		var expiresAt, spentAt time.Time
		err := tx.queryRow(ctx, `SELECT expires_at, used_at FROM one_time_tokens WHERE kind = ? AND hash = ?`+s.d.ForUpdate,
			kind, hash).Scan(at(&expiresAt), at(&spentAt))
		switch {
		case err != nil:
			return s.noRows(err)
		case !spentAt.IsZero():
			return storage.ErrReplayed
		case now.After(expiresAt):
			return storage.ErrExpired
		}
		_, err = tx.exec(ctx, `UPDATE one_time_tokens SET used_at = ? WHERE kind = ? AND hash = ?`, usedAt(now), kind, hash)
		return err
	})
	if err != nil {
		return s.fail("consume one-time token", err)
	}
	return nil
}
