package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/keystep/keystep/storage"
)

const factorCols = `id, user_id, kind, name, secret, created_at, last_used_at, trusted_at, added_in_session_at`

func scanFactor(sc Row) (storage.Factor, error) {
	var f storage.Factor
	err := sc.Scan(&f.ID, &f.UserID, &f.Kind, &f.Name, &f.Secret, at(&f.CreatedAt), at(&f.LastUsedAt), at(&f.TrustedAt), at(&f.AddedInSessionAt))
	return f, err
}

func (s *Store) CreateFactor(ctx context.Context, f storage.Factor) error {
	_, err := s.exec(ctx, `INSERT INTO factors (`+factorCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.UserID, string(f.Kind), f.Name, blob(f.Secret), nanos(f.CreatedAt), nanos(f.LastUsedAt), nanos(f.TrustedAt), nanos(f.AddedInSessionAt))
	if err != nil {
		return s.fail("create factor", s.insertErr(err))
	}
	return nil
}

// ListFactors returns the user's factors, oldest first.
func (s *Store) ListFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	rows, err := s.read.query(ctx, `SELECT `+factorCols+` FROM factors WHERE user_id = ? ORDER BY created_at, id`, userID)
	fs, err := list(rows, err, scanFactor)
	if err != nil {
		return nil, s.fail("list factors", err)
	}
	return fs, nil
}

func (s *Store) FactorByID(ctx context.Context, id string) (storage.Factor, error) {
	f, err := scanFactor(s.read.queryRow(ctx, `SELECT `+factorCols+` FROM factors WHERE id = ?`, id))
	if err != nil {
		return storage.Factor{}, s.fail("factor by id", s.noRows(err))
	}
	return f, nil
}

func (s *Store) UpdateFactor(ctx context.Context, f storage.Factor) error {
	err := s.execOne(ctx, `UPDATE factors SET name = ?, secret = ?, last_used_at = ? WHERE id = ?`,
		f.Name, blob(f.Secret), nanos(f.LastUsedAt), f.ID)
	if err != nil {
		return s.fail("update factor", err)
	}
	return nil
}

// TrustFactor sets trusted_at with a conditional update: of concurrent calls
// only the first finds it 0 (a concurrent second update waits for the first
// to commit, then finds it set).
func (s *Store) TrustFactor(ctx context.Context, userID, id string, at time.Time) error {
	if at.IsZero() {
		return s.fail("trust factor", errors.New("zero time"))
	}
	err := s.tx(ctx, func(tx db) error {
		err := tx.execOne(ctx, `UPDATE factors SET trusted_at = ? WHERE user_id = ? AND id = ? AND trusted_at = 0`, nanos(at), userID, id)
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		var exists bool
		if err := tx.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM factors WHERE user_id = ? AND id = ?)`, userID, id).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return storage.ErrConflict
		}
		return storage.ErrNotFound
	})
	if err != nil {
		return s.fail("trust factor", err)
	}
	return nil
}

// DeleteFactor deletes the factor only if it belongs to userID.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	if err := s.execOne(ctx, `DELETE FROM factors WHERE user_id = ? AND id = ?`, userID, id); err != nil {
		return s.fail("delete factor", err)
	}
	return nil
}

func (s *Store) DeleteUserFactors(ctx context.Context, userID string) error {
	err := s.tx(ctx, func(tx db) error {
		if _, err := tx.exec(ctx, `DELETE FROM factors WHERE user_id = ?`, userID); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID)
		return err
	})
	if err != nil {
		return s.fail("delete user factors", err)
	}
	return nil
}

// UseTOTPStep is one upsert that moves the user's last step forward only. A
// concurrent call with the same or an older step finds the row there (SQLite
// runs one writer; PostgreSQL makes it wait for the first's row lock and
// re-check the WHERE against the committed step) and changes nothing.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64, now time.Time) error {
	n, err := s.exec(ctx, `INSERT INTO totp_last_steps (user_id, step, used_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET step = excluded.step, used_at = excluded.used_at
		WHERE excluded.step > totp_last_steps.step`, userID, step, nanos(now))
	if err == nil && n == 0 {
		err = storage.ErrReplayed
	}
	if err != nil {
		return s.fail("use TOTP step", err)
	}
	return nil
}

func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	err := s.tx(ctx, func(tx db) error {
		if _, err := tx.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			_, err := tx.exec(ctx, `INSERT INTO recovery_codes (user_id, hash, created_at, used_at) VALUES (?, ?, ?, 0)`,
				userID, h, nanos(now))
			if err != nil {
				return s.insertErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("replace recovery codes", err)
	}
	return nil
}

// UseRecoveryCode spends the code with a conditional update; of concurrent
// calls only the first finds used_at = 0 (on PostgreSQL the others wait on
// the row and re-check once the first commits).
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, now time.Time) (int, error) {
	var remaining int
	err := s.tx(ctx, func(tx db) error {
		err := tx.execOne(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at = 0`,
			usedAt(now), userID, hash)
		if err != nil {
			return err
		}
		return tx.queryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at = 0`, userID).Scan(&remaining)
	})
	if err != nil {
		return 0, s.fail("use recovery code", err)
	}
	return remaining, nil
}

func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.read.queryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at = 0`, userID).Scan(&n)
	if err != nil {
		return 0, s.fail("count recovery codes", err)
	}
	return n, nil
}
