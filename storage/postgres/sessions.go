package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage"
)

const sessionCols = `id, user_id, factors, ip, user_agent, created_at, last_seen, expires_at`

// factorRow is a FactorEvent as stored in sessions.factors. The JSON names are
// the schema, independent of Go field names, and the same as SQLite's; At is
// unix nanoseconds like every other time.
type factorRow struct {
	Method       string `json:"method"`
	At           int64  `json:"at"`
	CredentialID string `json:"credential_id,omitempty"`
	UserVerified bool   `json:"user_verified,omitempty"`
	DeviceBound  bool   `json:"device_bound,omitempty"`
	Provisional  bool   `json:"provisional,omitempty"`
}

func factorRows(fs []storage.FactorEvent) []factorRow {
	if fs == nil {
		return nil
	}
	rows := make([]factorRow, len(fs))
	for i, f := range fs {
		rows[i] = factorRow{f.Method, nanos(f.At), f.CredentialID, f.UserVerified, f.DeviceBound, f.Provisional}
	}
	return rows
}

func factorEvents(rows []factorRow) []storage.FactorEvent {
	if rows == nil {
		return nil
	}
	fs := make([]storage.FactorEvent, len(rows))
	for i, r := range rows {
		fs[i] = storage.FactorEvent{Method: r.Method, At: fromNanos(r.At), CredentialID: r.CredentialID,
			UserVerified: r.UserVerified, DeviceBound: r.DeviceBound, Provisional: r.Provisional}
	}
	return fs
}

func scanSession(sc scanner) (storage.Session, error) {
	var s storage.Session
	var factors []factorRow
	err := sc.Scan(&s.ID, &s.UserID, &factors, &s.IP, &s.UserAgent,
		at(&s.CreatedAt), at(&s.LastSeen), at(&s.ExpiresAt))
	s.Factors = factorEvents(factors)
	return s, err
}

func insertSession(ctx context.Context, q querier, s storage.Session) error {
	_, err := q.Exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		s.ID, s.UserID, jsonOf(factorRows(s.Factors)), s.IP, s.UserAgent,
		nanos(s.CreatedAt), nanos(s.LastSeen), nanos(s.ExpiresAt))
	return insertErr(err)
}

func (s *Store) CreateSession(ctx context.Context, sess storage.Session) error {
	if err := insertSession(ctx, s.pool, sess); err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	return nil
}

func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (storage.Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return storage.Session{}, fmt.Errorf("postgres: session: %w", noRows(err))
	}
	if now.After(sess.ExpiresAt) {
		return storage.Session{}, fmt.Errorf("postgres: session: %w", storage.ErrExpired)
	}
	return sess, nil
}

// RotateSession deletes oldID and inserts next in one transaction. A
// concurrent rotation waits on the row the first one deletes and then finds
// it gone: that is what makes every rotation but the first fail.
func (s *Store) RotateSession(ctx context.Context, oldID string, next storage.Session) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := execOne(ctx, tx, `DELETE FROM sessions WHERE id = $1`, oldID); err != nil {
			return err
		}
		return insertSession(ctx, tx, next)
	})
	if err != nil {
		return fmt.Errorf("postgres: rotate session: %w", err)
	}
	return nil
}

func (s *Store) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	if err := execOne(ctx, s.pool, `UPDATE sessions SET last_seen = $1 WHERE id = $2`, nanos(lastSeen), id); err != nil {
		return fmt.Errorf("postgres: touch session: %w", err)
	}
	return nil
}

func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if err := execOne(ctx, s.pool, `DELETE FROM sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	return nil
}

// ListUserSessions returns the user's unexpired sessions, oldest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string, now time.Time) ([]storage.Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE user_id = $1 AND expires_at >= $2 ORDER BY created_at, id`, userID, nanos(now))
	ss, err := list(rows, err, scanSession)
	if err != nil {
		return nil, fmt.Errorf("postgres: list user sessions: %w", err)
	}
	return ss, nil
}

func (s *Store) DeleteUserSessions(ctx context.Context, userID, keepID string) (int, error) {
	n, err := affected(s.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND id != $2`, userID, keepID))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete user sessions: %w", err)
	}
	return n, nil
}
