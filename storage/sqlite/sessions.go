package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/keystep/keystep/storage"
)

const sessionCols = `id, user_id, factors, ip, user_agent, created_at, last_seen, expires_at`

// factorRow is a FactorEvent as stored in sessions.factors. The JSON names are
// the schema, independent of Go field names; At is unix nanoseconds like
// every other time.
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
	err := sc.Scan(&s.ID, &s.UserID, js(&factors), &s.IP, &s.UserAgent,
		at(&s.CreatedAt), at(&s.LastSeen), at(&s.ExpiresAt))
	s.Factors = factorEvents(factors)
	return s, err
}

func insertSession(ctx context.Context, x execer, s storage.Session) error {
	_, err := x.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.UserID, jsonOf(factorRows(s.Factors)), s.IP, s.UserAgent,
		nanos(s.CreatedAt), nanos(s.LastSeen), nanos(s.ExpiresAt))
	return insertErr(err)
}

func (s *Store) CreateSession(ctx context.Context, sess storage.Session) error {
	if err := insertSession(ctx, s.w, sess); err != nil {
		return fmt.Errorf("sqlite: create session: %w", err)
	}
	return nil
}

func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (storage.Session, error) {
	sess, err := scanSession(s.r.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if err != nil {
		return storage.Session{}, fmt.Errorf("sqlite: session: %w", noRows(err))
	}
	if now.After(sess.ExpiresAt) {
		return storage.Session{}, fmt.Errorf("sqlite: session: %w", storage.ErrExpired)
	}
	return sess, nil
}

// RotateSession deletes oldID and inserts next in one transaction; the delete
// finding no row is what makes every rotation but the first fail.
func (s *Store) RotateSession(ctx context.Context, oldID string, next storage.Session) error {
	err := s.tx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, oldID)
		if err != nil {
			return err
		}
		if err := oneRow(res); err != nil {
			return err
		}
		return insertSession(ctx, tx, next)
	})
	if err != nil {
		return fmt.Errorf("sqlite: rotate session: %w", err)
	}
	return nil
}

func (s *Store) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	if err := s.execOne(ctx, `UPDATE sessions SET last_seen = ? WHERE id = ?`, nanos(lastSeen), id); err != nil {
		return fmt.Errorf("sqlite: touch session: %w", err)
	}
	return nil
}

func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if err := s.execOne(ctx, `DELETE FROM sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	return nil
}

// ListUserSessions returns the user's unexpired sessions, oldest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string, now time.Time) ([]storage.Session, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE user_id = ? AND expires_at >= ? ORDER BY created_at, id`, userID, nanos(now))
	ss, err := list(rows, err, scanSession)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list user sessions: %w", err)
	}
	return ss, nil
}

func (s *Store) DeleteUserSessions(ctx context.Context, userID, keepID string) (int, error) {
	n, err := affected(s.exec(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, keepID))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete user sessions: %w", err)
	}
	return n, nil
}
