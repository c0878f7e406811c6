package sqlstore

import (
	"context"
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
	Request      string `json:"request,omitempty"`
}

func factorRows(fs []storage.FactorEvent) []factorRow {
	if fs == nil {
		return nil
	}
	rows := make([]factorRow, len(fs))
	for i, f := range fs {
		rows[i] = factorRow{f.Method, nanos(f.At), f.CredentialID, f.UserVerified, f.DeviceBound, f.Provisional, f.Request}
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
			UserVerified: r.UserVerified, DeviceBound: r.DeviceBound, Provisional: r.Provisional, Request: r.Request}
	}
	return fs
}

func scanSession(sc Row) (storage.Session, error) {
	var s storage.Session
	var factors []factorRow
	err := sc.Scan(&s.ID, &s.UserID, js(&factors), &s.IP, &s.UserAgent,
		at(&s.CreatedAt), at(&s.LastSeen), at(&s.ExpiresAt))
	s.Factors = factorEvents(factors)
	return s, err
}

const insertSession = `INSERT INTO sessions (` + sessionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

func sessionArgs(s storage.Session) []any {
	return []any{s.ID, s.UserID, jsonOf(factorRows(s.Factors)), s.IP, s.UserAgent,
		nanos(s.CreatedAt), nanos(s.LastSeen), nanos(s.ExpiresAt)}
}

func (s *Store) CreateSession(ctx context.Context, sess storage.Session) error {
	if _, err := s.exec(ctx, insertSession, sessionArgs(sess)...); err != nil {
		return s.fail("create session", s.insertErr(err))
	}
	return nil
}

func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (storage.Session, error) {
	sess, err := scanSession(s.read.queryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if err != nil {
		return storage.Session{}, s.fail("session", s.noRows(err))
	}
	if now.After(sess.ExpiresAt) {
		return storage.Session{}, s.fail("session", storage.ErrExpired)
	}
	return sess, nil
}

// RotateSession deletes oldID and inserts next in one transaction; the delete
// finding no row is what makes every rotation but the first fail (on
// PostgreSQL a concurrent rotation waits on the row the first deletes, then
// finds it gone).
func (s *Store) RotateSession(ctx context.Context, oldID string, next storage.Session) error {
	err := s.tx(ctx, func(tx db) error {
		if err := tx.execOne(ctx, `DELETE FROM sessions WHERE id = ?`, oldID); err != nil {
			return err
		}
		_, err := tx.exec(ctx, insertSession, sessionArgs(next)...)
		return s.insertErr(err)
	})
	if err != nil {
		return s.fail("rotate session", err)
	}
	return nil
}

func (s *Store) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	if err := s.execOne(ctx, `UPDATE sessions SET last_seen = ? WHERE id = ?`, nanos(lastSeen), id); err != nil {
		return s.fail("touch session", err)
	}
	return nil
}

func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if err := s.execOne(ctx, `DELETE FROM sessions WHERE id = ?`, id); err != nil {
		return s.fail("delete session", err)
	}
	return nil
}

// ListUserSessions returns the user's unexpired sessions, oldest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string, now time.Time) ([]storage.Session, error) {
	rows, err := s.read.query(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE user_id = ? AND expires_at >= ? ORDER BY created_at, id`, userID, nanos(now))
	ss, err := list(rows, err, scanSession)
	if err != nil {
		return nil, s.fail("list user sessions", err)
	}
	return ss, nil
}

func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	n, err := s.sweep(ctx, "sessions", "expires_at < ?", nanos(now))
	if err != nil {
		return n, s.fail("delete expired sessions", err)
	}
	return n, nil
}

func (s *Store) DeleteUserSessions(ctx context.Context, userID, keepID string) (int, error) {
	n, err := affected(s.exec(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, keepID))
	if err != nil {
		return 0, s.fail("delete user sessions", err)
	}
	return n, nil
}
