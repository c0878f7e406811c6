package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage"
)

const factorCols = `id, user_id, kind, name, secret, created_at, last_used_at, trusted_at, added_in_session_at`

func scanFactor(sc scanner) (storage.Factor, error) {
	var f storage.Factor
	err := sc.Scan(&f.ID, &f.UserID, &f.Kind, &f.Name, &f.Secret, at(&f.CreatedAt), at(&f.LastUsedAt), at(&f.TrustedAt), at(&f.AddedInSessionAt))
	return f, err
}

func (s *Store) CreateFactor(ctx context.Context, f storage.Factor) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO factors (`+factorCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		f.ID, f.UserID, f.Kind, f.Name, blob(f.Secret), nanos(f.CreatedAt), nanos(f.LastUsedAt), nanos(f.TrustedAt), nanos(f.AddedInSessionAt))
	if err != nil {
		return fmt.Errorf("postgres: create factor: %w", insertErr(err))
	}
	return nil
}

// ListFactors returns the user's factors, oldest first.
func (s *Store) ListFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+factorCols+` FROM factors WHERE user_id = $1 ORDER BY created_at, id`, userID)
	fs, err := list(rows, err, scanFactor)
	if err != nil {
		return nil, fmt.Errorf("postgres: list factors: %w", err)
	}
	return fs, nil
}

func (s *Store) FactorByID(ctx context.Context, id string) (storage.Factor, error) {
	f, err := scanFactor(s.pool.QueryRow(ctx, `SELECT `+factorCols+` FROM factors WHERE id = $1`, id))
	if err != nil {
		return storage.Factor{}, fmt.Errorf("postgres: factor by id: %w", noRows(err))
	}
	return f, nil
}

func (s *Store) UpdateFactor(ctx context.Context, f storage.Factor) error {
	err := execOne(ctx, s.pool, `UPDATE factors SET name = $1, secret = $2, last_used_at = $3 WHERE id = $4`,
		f.Name, blob(f.Secret), nanos(f.LastUsedAt), f.ID)
	if err != nil {
		return fmt.Errorf("postgres: update factor: %w", err)
	}
	return nil
}

// TrustFactor sets trusted_at with a conditional update: a concurrent second
// update waits for the first to commit and then finds it set.
func (s *Store) TrustFactor(ctx context.Context, userID, id string, at time.Time) error {
	if at.IsZero() {
		return errors.New("postgres: trust factor: zero time")
	}
	tag, err := s.pool.Exec(ctx, `UPDATE factors SET trusted_at = $1 WHERE user_id = $2 AND id = $3 AND trusted_at = 0`, nanos(at), userID, id)
	if err != nil {
		return fmt.Errorf("postgres: trust factor: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM factors WHERE user_id = $1 AND id = $2)`, userID, id).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: trust factor: %w", err)
	}
	if exists {
		return fmt.Errorf("postgres: trust factor: %w", storage.ErrConflict)
	}
	return fmt.Errorf("postgres: trust factor: %w", storage.ErrNotFound)
}

// DeleteFactor deletes the factor only if it belongs to userID.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	if err := execOne(ctx, s.pool, `DELETE FROM factors WHERE user_id = $1 AND id = $2`, userID, id); err != nil {
		return fmt.Errorf("postgres: delete factor: %w", err)
	}
	return nil
}

func (s *Store) DeleteUserFactors(ctx context.Context, userID string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM factors WHERE user_id = $1`, userID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete user factors: %w", err)
	}
	return nil
}

// UseTOTPStep is one upsert that moves the user's last step forward only. A
// concurrent call on the same user waits for the row lock of the first and
// then re-checks the WHERE against its committed step.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO totp_last_steps (user_id, step, used_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET step = excluded.step, used_at = excluded.used_at
		WHERE excluded.step > totp_last_steps.step`, userID, step, nanos(now))
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrReplayed
	}
	if err != nil {
		return fmt.Errorf("postgres: use TOTP step: %w", err)
	}
	return nil
}

func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			_, err := tx.Exec(ctx, `INSERT INTO recovery_codes (user_id, hash, created_at, used_at) VALUES ($1, $2, $3, 0)`,
				userID, h, nanos(now))
			if err != nil {
				return insertErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: replace recovery codes: %w", err)
	}
	return nil
}

// UseRecoveryCode spends the code with a conditional update. Concurrent calls
// wait on the row and re-check used_at = 0 once the first commits, so only
// the first finds it unused.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, now time.Time) (int, error) {
	var remaining int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		err := execOne(ctx, tx, `UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND hash = $3 AND used_at = 0`,
			usedAt(now), userID, hash)
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at = 0`, userID).Scan(&remaining)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: use recovery code: %w", err)
	}
	return remaining, nil
}

func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at = 0`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: count recovery codes: %w", err)
	}
	return n, nil
}
