package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage"
)

const authRequestCols = `id, client_id, redirect_uri, scopes, response_type, response_mode, state, nonce,
	code_challenge, code_challenge_method, prompt, max_age, acr_values, requirement, login_hint,
	id_token_hint_subject, ui_locales, browser_binding, created_at, expires_at,
	done, subject, acr, amr, auth_time, session_id, coalesce(code_hash, ''), code_expires_at, failed_attempts`

// scanAuthRequest scans authRequestCols, then extra.
func scanAuthRequest(sc scanner, extra ...any) (storage.AuthRequest, error) {
	var r storage.AuthRequest
	err := sc.Scan(append([]any{&r.ID, &r.ClientID, &r.RedirectURI, &r.Scopes, &r.ResponseType, &r.ResponseMode,
		&r.State, &r.Nonce, &r.CodeChallenge, &r.CodeChallengeMethod, &r.Prompt, &r.MaxAge,
		&r.ACRValues, &r.Requirement, &r.LoginHint, &r.IDTokenHintSubject, &r.UILocales,
		&r.BrowserBinding, at(&r.CreatedAt), at(&r.ExpiresAt),
		&r.Done, &r.Subject, &r.ACR, &r.AMR, at(&r.AuthTime), &r.SessionID,
		&r.CodeHash, at(&r.CodeExpiresAt), &r.FailedAttempts}, extra...)...)
	return r, err
}

func (s *Store) CreateAuthRequest(ctx context.Context, r storage.AuthRequest) error {
	var codeHash *string // NULL keeps the unique constraint out of the way
	if r.CodeHash != "" {
		codeHash = &r.CodeHash
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO auth_requests (id, client_id, redirect_uri, scopes,
		response_type, response_mode, state, nonce, code_challenge, code_challenge_method, prompt,
		max_age, acr_values, requirement, login_hint, id_token_hint_subject, ui_locales, browser_binding,
		created_at, expires_at, done, subject, acr, amr, auth_time, session_id, code_hash,
		code_expires_at, code_used_at, failed_attempts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
			$21, $22, $23, $24, $25, $26, $27, $28, 0, $29)`,
		r.ID, r.ClientID, r.RedirectURI, jsonOf(r.Scopes), r.ResponseType, r.ResponseMode, r.State,
		r.Nonce, r.CodeChallenge, r.CodeChallengeMethod, jsonOf(r.Prompt), r.MaxAge, jsonOf(r.ACRValues),
		jsonOf(r.Requirement), r.LoginHint, r.IDTokenHintSubject, jsonOf(r.UILocales), r.BrowserBinding,
		nanos(r.CreatedAt), nanos(r.ExpiresAt), r.Done, r.Subject, r.ACR, jsonOf(r.AMR),
		nanos(r.AuthTime), r.SessionID, codeHash, nanos(r.CodeExpiresAt), r.FailedAttempts)
	if err != nil {
		return fmt.Errorf("postgres: create auth request: %w", insertErr(err))
	}
	return nil
}

func (s *Store) AuthRequestByID(ctx context.Context, id string, now time.Time) (storage.AuthRequest, error) {
	r, err := scanAuthRequest(s.pool.QueryRow(ctx, `SELECT `+authRequestCols+` FROM auth_requests WHERE id = $1`, id))
	if err != nil {
		return storage.AuthRequest{}, fmt.Errorf("postgres: auth request: %w", noRows(err))
	}
	if now.After(r.ExpiresAt) {
		return storage.AuthRequest{}, fmt.Errorf("postgres: auth request: %w", storage.ErrExpired)
	}
	return r, nil
}

func (s *Store) CompleteAuthRequest(ctx context.Context, id string, res storage.AuthResult) error {
	err := execOne(ctx, s.pool, `UPDATE auth_requests SET done = true, subject = $1, acr = $2, amr = $3,
		auth_time = $4, session_id = $5
		WHERE id = $6`,
		res.Subject, res.ACR, jsonOf(res.AMR), nanos(res.AuthTime), res.SessionID, id)
	if err != nil {
		return fmt.Errorf("postgres: complete auth request: %w", err)
	}
	return nil
}

// SaveAuthCode refuses a request that is not done (ErrConflict) or whose
// code was already redeemed (ErrReplayed): a request yields one code. The row
// lock orders it against a concurrent ConsumeAuthCode of the old code.
func (s *Store) SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var done bool
		var codeUsed int64
		err := tx.QueryRow(ctx, `SELECT done, code_used_at FROM auth_requests WHERE id = $1 FOR UPDATE`, id).
			Scan(&done, &codeUsed)
		switch {
		case err != nil:
			return noRows(err)
		case !done:
			return fmt.Errorf("%w: request is not done", storage.ErrConflict)
		case codeUsed != 0:
			return storage.ErrReplayed
		}
		_, err = tx.Exec(ctx, `UPDATE auth_requests SET code_hash = $1, code_expires_at = $2 WHERE id = $3`,
			codeHash, nanos(expiresAt), id)
		return insertErr(err)
	})
	if err != nil {
		return fmt.Errorf("postgres: save auth code: %w", err)
	}
	return nil
}

// ConsumeAuthCode locks the request's row, so concurrent redemptions queue:
// the first marks the code used, and each later one wakes up to that commit
// and takes the replay path. It checks for a replay before expiry: a code
// presented twice is an attack signal even once it has expired.
func (s *Store) ConsumeAuthCode(ctx context.Context, codeHash string, now time.Time) (storage.AuthRequest, error) {
	var r storage.AuthRequest
	var replayed bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var codeUsed int64
		var err error
		replayed = false
		r, err = scanAuthRequest(tx.QueryRow(ctx,
			`SELECT `+authRequestCols+`, code_used_at FROM auth_requests WHERE code_hash = $1 FOR UPDATE`, codeHash), &codeUsed)
		switch {
		case err != nil:
			return noRows(err)
		case codeUsed != 0:
			// RFC 6749 §4.1.2: revoke what the code issued, and commit that.
			replayed = true
			return revokeGrant(ctx, tx, r.ID)
		case now.After(r.CodeExpiresAt):
			return storage.ErrExpired
		}
		_, err = tx.Exec(ctx, `UPDATE auth_requests SET code_used_at = $1 WHERE id = $2`, usedAt(now), r.ID)
		return err
	})
	if err == nil && replayed {
		err = storage.ErrReplayed
	}
	if err != nil {
		return storage.AuthRequest{}, fmt.Errorf("postgres: consume auth code: %w", err)
	}
	return r, nil
}

func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if err := execOne(ctx, s.pool, `DELETE FROM auth_requests WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete auth request: %w", err)
	}
	return nil
}

// RecordAuthRequestFailure is one UPDATE: concurrent calls wait on the row
// and each adds to the count the one before it committed.
func (s *Store) RecordAuthRequestFailure(ctx context.Context, id string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `UPDATE auth_requests SET failed_attempts = failed_attempts + 1
		WHERE id = $1 RETURNING failed_attempts`, id).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: record auth request failure: %w", noRows(err))
	}
	return n, nil
}

func (s *Store) DeleteExpiredAuthRequests(ctx context.Context, now time.Time) (int, error) {
	n, err := affected(s.pool.Exec(ctx, `DELETE FROM auth_requests WHERE expires_at < $1`, nanos(now)))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired auth requests: %w", err)
	}
	return n, nil
}

func (s *Store) DeleteUserAuthRequests(ctx context.Context, subject string) (int, error) {
	if subject == "" {
		return 0, nil // requests not yet completed have no subject
	}
	n, err := affected(s.pool.Exec(ctx, `DELETE FROM auth_requests WHERE subject = $1`, subject))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete user auth requests: %w", err)
	}
	return n, nil
}
