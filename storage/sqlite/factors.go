package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/storage"
)

const factorCols = `id, user_id, kind, name, secret, created_at, last_used_at, trusted_at, added_in_session_at`

func scanFactor(sc scanner) (storage.Factor, error) {
	var f storage.Factor
	err := sc.Scan(&f.ID, &f.UserID, &f.Kind, &f.Name, &f.Secret, at(&f.CreatedAt), at(&f.LastUsedAt), at(&f.TrustedAt), at(&f.AddedInSessionAt))
	return f, err
}

func (s *Store) CreateFactor(ctx context.Context, f storage.Factor) error {
	_, err := s.exec(ctx, `INSERT INTO factors (`+factorCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.UserID, f.Kind, f.Name, blob(f.Secret), nanos(f.CreatedAt), nanos(f.LastUsedAt), nanos(f.TrustedAt), nanos(f.AddedInSessionAt))
	if err != nil {
		return fmt.Errorf("sqlite: create factor: %w", insertErr(err))
	}
	return nil
}

// ListFactors returns the user's factors, oldest first.
func (s *Store) ListFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+factorCols+` FROM factors WHERE user_id = ? ORDER BY created_at, id`, userID)
	fs, err := list(rows, err, scanFactor)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list factors: %w", err)
	}
	return fs, nil
}

func (s *Store) FactorByID(ctx context.Context, id string) (storage.Factor, error) {
	f, err := scanFactor(s.r.QueryRowContext(ctx, `SELECT `+factorCols+` FROM factors WHERE id = ?`, id))
	if err != nil {
		return storage.Factor{}, fmt.Errorf("sqlite: factor by id: %w", noRows(err))
	}
	return f, nil
}

func (s *Store) UpdateFactor(ctx context.Context, f storage.Factor) error {
	err := s.execOne(ctx, `UPDATE factors SET name = ?, secret = ?, last_used_at = ? WHERE id = ?`,
		f.Name, blob(f.Secret), nanos(f.LastUsedAt), f.ID)
	if err != nil {
		return fmt.Errorf("sqlite: update factor: %w", err)
	}
	return nil
}

// TrustFactor sets trusted_at with a conditional update: of concurrent calls
// only the first finds it 0.
func (s *Store) TrustFactor(ctx context.Context, userID, id string, at time.Time) error {
	if at.IsZero() {
		return errors.New("sqlite: trust factor: zero time")
	}
	err := s.tx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE factors SET trusted_at = ? WHERE user_id = ? AND id = ? AND trusted_at = 0`, nanos(at), userID, id)
		if err != nil {
			return err
		}
		if oneRow(res) == nil {
			return nil
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM factors WHERE user_id = ? AND id = ?)`, userID, id).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return storage.ErrConflict
		}
		return storage.ErrNotFound
	})
	if err != nil {
		return fmt.Errorf("sqlite: trust factor: %w", err)
	}
	return nil
}

// DeleteFactor deletes the factor only if it belongs to userID.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	if err := s.execOne(ctx, `DELETE FROM factors WHERE user_id = ? AND id = ?`, userID, id); err != nil {
		return fmt.Errorf("sqlite: delete factor: %w", err)
	}
	return nil
}

func (s *Store) DeleteUserFactors(ctx context.Context, userID string) error {
	err := s.tx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM factors WHERE user_id = ?`, userID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete user factors: %w", err)
	}
	return nil
}

// UseTOTPStep is one upsert that moves the user's last step forward only:
// the single writer runs it whole, so a concurrent call with the same or an
// older step finds the row already there and changes nothing.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64, now time.Time) error {
	n, err := affected(s.exec(ctx, `INSERT INTO totp_last_steps (user_id, step, used_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET step = excluded.step, used_at = excluded.used_at
		WHERE excluded.step > totp_last_steps.step`, userID, step, nanos(now)))
	if err == nil && n == 0 {
		err = storage.ErrReplayed
	}
	if err != nil {
		return fmt.Errorf("sqlite: use TOTP step: %w", err)
	}
	return nil
}

func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	err := s.tx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			_, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user_id, hash, created_at, used_at) VALUES (?, ?, ?, 0)`,
				userID, h, nanos(now))
			if err != nil {
				return insertErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: replace recovery codes: %w", err)
	}
	return nil
}

// UseRecoveryCode spends the code with a conditional update; of concurrent
// calls only the first finds used_at = 0.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, now time.Time) (int, error) {
	var remaining int
	err := s.tx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at = 0`,
			usedAt(now), userID, hash)
		if err != nil {
			return err
		}
		if err := oneRow(res); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at = 0`, userID).Scan(&remaining)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: use recovery code: %w", err)
	}
	return remaining, nil
}

func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at = 0`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count recovery codes: %w", err)
	}
	return n, nil
}
