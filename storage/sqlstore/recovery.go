package sqlstore

import (
	"context"
	"time"

	"github.com/keystep/keystep/storage"
)

func (s *Store) UsersByEmail(ctx context.Context, email string) ([]storage.User, error) {
	rows, err := s.read.query(ctx, `SELECT `+userCols+` FROM users WHERE lower(email) = lower(?) ORDER BY username`, email)
	us, err := list(rows, err, scanUser)
	if err != nil {
		return nil, s.fail("users by email", err)
	}
	return us, nil
}

const resetCols = `id, user_id, browser_hash, created_at, expires_at, factor_at, used_at`

func scanReset(sc Row) (storage.PasswordReset, error) {
	var r storage.PasswordReset
	err := sc.Scan(&r.ID, &r.UserID, &r.BrowserHash, at(&r.CreatedAt), at(&r.ExpiresAt), at(&r.FactorAt), at(&r.UsedAt))
	return r, err
}

func (s *Store) CreatePasswordReset(ctx context.Context, r storage.PasswordReset, msgs []storage.OutboxMessage) error {
	err := s.tx(ctx, func(tx db) error {
		if _, err := tx.exec(ctx, `INSERT INTO password_resets (`+resetCols+`) VALUES (?, ?, ?, ?, ?, 0, 0)`,
			r.ID, r.UserID, r.BrowserHash, nanos(r.CreatedAt), nanos(r.ExpiresAt)); err != nil {
			return err
		}
		return queueOutbox(ctx, tx, msgs)
	})
	if err != nil {
		return s.fail("create password reset", s.insertErr(err))
	}
	return nil
}

// resetState is PasswordReset's answer for a row read at now.
func resetState(r storage.PasswordReset, now time.Time) error {
	switch {
	case !r.UsedAt.IsZero():
		return storage.ErrReplayed
	case now.After(r.ExpiresAt):
		return storage.ErrExpired
	}
	return nil
}

func (s *Store) PasswordReset(ctx context.Context, id string, now time.Time) (storage.PasswordReset, error) {
	r, err := scanReset(s.read.queryRow(ctx, `SELECT `+resetCols+` FROM password_resets WHERE id = ?`, id))
	if err != nil {
		return storage.PasswordReset{}, s.fail("password reset", s.noRows(err))
	}
	if err := resetState(r, now); err != nil {
		return storage.PasswordReset{}, s.fail("password reset", err)
	}
	return r, nil
}

func (s *Store) ProvePasswordReset(ctx context.Context, id string, at time.Time) error {
	if err := s.execOne(ctx, `UPDATE password_resets SET factor_at = ? WHERE id = ?`, usedAt(at), id); err != nil {
		return s.fail("prove password reset", err)
	}
	return nil
}

// UsePasswordReset reads the row with the dialect's row lock, so a
// concurrent spend waits and then finds it used.
func (s *Store) UsePasswordReset(ctx context.Context, id string, now time.Time) error {
	err := s.tx(ctx, func(tx db) error {
		r, err := scanReset(tx.queryRow(ctx, `SELECT `+resetCols+` FROM password_resets WHERE id = ?`+s.d.ForUpdate, id))
		if err != nil {
			return s.noRows(err)
		}
		if err := resetState(r, now); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `UPDATE password_resets SET used_at = ? WHERE id = ?`, usedAt(now), id)
		return err
	})
	if err != nil {
		return s.fail("use password reset", err)
	}
	return nil
}

func (s *Store) DeleteExpiredPasswordResets(ctx context.Context, now time.Time) (int, error) {
	n, err := s.sweep(ctx, "password_resets", `expires_at < ?`, nanos(now))
	if err != nil {
		return n, s.fail("delete expired password resets", err)
	}
	return n, nil
}

const recoveryCols = `id, user_id, created_at, eligible_at, status, decided_by, reason, decided_at`

func scanRecovery(sc Row) (storage.RecoveryRequest, error) {
	var r storage.RecoveryRequest
	var status string
	err := sc.Scan(&r.ID, &r.UserID, at(&r.CreatedAt), at(&r.EligibleAt), &status, &r.DecidedBy, &r.Reason, at(&r.DecidedAt))
	r.Status = storage.RecoveryStatus(status)
	return r, err
}

func (s *Store) CreateRecoveryRequest(ctx context.Context, r storage.RecoveryRequest) error {
	_, err := s.exec(ctx, `INSERT INTO recovery_requests (`+recoveryCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.UserID, nanos(r.CreatedAt), nanos(r.EligibleAt), string(r.Status), r.DecidedBy, r.Reason, nanos(r.DecidedAt))
	if err != nil {
		return s.fail("create recovery request", s.insertErr(err))
	}
	return nil
}

func (s *Store) RecoveryRequestByID(ctx context.Context, id string) (storage.RecoveryRequest, error) {
	r, err := scanRecovery(s.read.queryRow(ctx, `SELECT `+recoveryCols+` FROM recovery_requests WHERE id = ?`, id))
	if err != nil {
		return storage.RecoveryRequest{}, s.fail("recovery request by id", s.noRows(err))
	}
	return r, nil
}

func (s *Store) LatestRecoveryRequest(ctx context.Context, userID string) (storage.RecoveryRequest, error) {
	r, err := scanRecovery(s.read.queryRow(ctx, `SELECT `+recoveryCols+` FROM recovery_requests WHERE user_id = ?
		ORDER BY created_at DESC, id DESC LIMIT 1`, userID))
	if err != nil {
		return storage.RecoveryRequest{}, s.fail("latest recovery request", s.noRows(err))
	}
	return r, nil
}

func (s *Store) ListRecoveryRequests(ctx context.Context, status storage.RecoveryStatus, limit int) ([]storage.RecoveryRequest, error) {
	q, args := `SELECT `+recoveryCols+` FROM recovery_requests`, []any{}
	if status != "" {
		q, args = q+` WHERE status = ?`, append(args, string(status))
	}
	rows, err := s.read.query(ctx, q+` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, limit)...)
	rs, err := list(rows, err, scanRecovery)
	if err != nil {
		return nil, s.fail("list recovery requests", err)
	}
	return rs, nil
}

func (s *Store) DecideRecoveryRequest(ctx context.Context, id string, from, to storage.RecoveryStatus, by, reason string, at time.Time) error {
	err := s.tx(ctx, func(tx db) error {
		n, err := tx.exec(ctx, `UPDATE recovery_requests SET status = ?, decided_by = ?, reason = ?, decided_at = ?
			WHERE id = ? AND status = ?`, string(to), by, reason, nanos(at), id, string(from))
		if err != nil || n == 1 {
			return err
		}
		var status string
		if err := tx.queryRow(ctx, `SELECT status FROM recovery_requests WHERE id = ?`, id).Scan(&status); err != nil {
			return s.noRows(err)
		}
		return storage.ErrConflict
	})
	if err != nil {
		return s.fail("decide recovery request", err)
	}
	return nil
}
