package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keystep/keystep/storage"
)

const authRequestCols = `id, client_id, redirect_uri, scopes, response_type, response_mode, state, nonce,
	code_challenge, code_challenge_method, prompt, max_age, acr_values, requirement, login_hint,
	id_token_hint_subject, ui_locales, browser_binding, dpop_jkt, authorization_details, policy_version, created_at, expires_at,
	done, subject, acr, amr, auth_time, session_id, coalesce(code_hash, ''), code_expires_at, failed_attempts`

// scanAuthRequest scans authRequestCols, then extra.
func scanAuthRequest(sc Row, extra ...any) (storage.AuthRequest, error) {
	var r storage.AuthRequest
	err := sc.Scan(append([]any{&r.ID, &r.ClientID, &r.RedirectURI, js(&r.Scopes), &r.ResponseType, &r.ResponseMode,
		&r.State, &r.Nonce, &r.CodeChallenge, &r.CodeChallengeMethod, js(&r.Prompt), &r.MaxAge,
		js(&r.ACRValues), js(&r.Requirement), &r.LoginHint, &r.IDTokenHintSubject, js(&r.UILocales),
		&r.BrowserBinding, &r.DPoPJKT, &r.AuthorizationDetails, &r.PolicyVersion, at(&r.CreatedAt), at(&r.ExpiresAt),
		&r.Done, &r.Subject, &r.ACR, js(&r.AMR), at(&r.AuthTime), &r.SessionID,
		&r.CodeHash, at(&r.CodeExpiresAt), &r.FailedAttempts}, extra...)...)
	return r, err
}

func (s *Store) CreateAuthRequest(ctx context.Context, r storage.AuthRequest) error {
	var codeHash *string // NULL keeps the unique index out of the way
	if r.CodeHash != "" {
		codeHash = &r.CodeHash
	}
	_, err := s.exec(ctx, `INSERT INTO auth_requests (id, client_id, redirect_uri, scopes,
		response_type, response_mode, state, nonce, code_challenge, code_challenge_method, prompt,
		max_age, acr_values, requirement, login_hint, id_token_hint_subject, ui_locales, browser_binding, dpop_jkt, authorization_details, policy_version,
		created_at, expires_at, done, subject, acr, amr, auth_time, session_id, code_hash,
		code_expires_at, code_used_at, failed_attempts)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
		r.ID, r.ClientID, r.RedirectURI, jsonOf(r.Scopes), r.ResponseType, r.ResponseMode, r.State,
		r.Nonce, r.CodeChallenge, r.CodeChallengeMethod, jsonOf(r.Prompt), r.MaxAge, jsonOf(r.ACRValues),
		jsonOf(r.Requirement), r.LoginHint, r.IDTokenHintSubject, jsonOf(r.UILocales), r.BrowserBinding, r.DPoPJKT, r.AuthorizationDetails, r.PolicyVersion,
		nanos(r.CreatedAt), nanos(r.ExpiresAt), r.Done, r.Subject, r.ACR, jsonOf(r.AMR),
		nanos(r.AuthTime), r.SessionID, codeHash, nanos(r.CodeExpiresAt), r.FailedAttempts)
	if err != nil {
		return s.fail("create auth request", s.insertErr(err))
	}
	return nil
}

func (s *Store) AuthRequestByID(ctx context.Context, id string, now time.Time) (storage.AuthRequest, error) {
	r, err := scanAuthRequest(s.read.queryRow(ctx, `SELECT `+authRequestCols+` FROM auth_requests WHERE id = ?`, id))
	if err != nil {
		return storage.AuthRequest{}, s.fail("auth request", s.noRows(err))
	}
	if now.After(r.ExpiresAt) {
		return storage.AuthRequest{}, s.fail("auth request", storage.ErrExpired)
	}
	return r, nil
}

func (s *Store) CompleteAuthRequest(ctx context.Context, id string, res storage.AuthResult) error {
	err := s.execOne(ctx, `UPDATE auth_requests SET done = TRUE, subject = ?, acr = ?, amr = ?, auth_time = ?, session_id = ?
		WHERE id = ?`,
		res.Subject, res.ACR, jsonOf(res.AMR), nanos(res.AuthTime), res.SessionID, id)
	if err != nil {
		return s.fail("complete auth request", err)
	}
	return nil
}

// SaveAuthCode refuses a request that is not done (ErrConflict) or whose
// code was already redeemed (ErrReplayed): a request yields one code. The
// row lock (ForUpdate) orders it against a concurrent ConsumeAuthCode of the
// old code.
func (s *Store) SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error {
	err := s.tx(ctx, func(tx db) error {
		var done bool
		var codeUsed int64
		err := tx.queryRow(ctx, `SELECT done, code_used_at FROM auth_requests WHERE id = ?`+s.d.ForUpdate, id).Scan(&done, &codeUsed)
		switch {
		case err != nil:
			return s.noRows(err)
		case !done:
			return fmt.Errorf("%w: request is not done", storage.ErrConflict)
		case codeUsed != 0:
			return storage.ErrReplayed
		}
		_, err = tx.exec(ctx, `UPDATE auth_requests SET code_hash = ?, code_expires_at = ? WHERE id = ?`,
			codeHash, nanos(expiresAt), id)
		return s.insertErr(err)
	})
	if err != nil {
		return s.fail("save auth code", err)
	}
	return nil
}

// ConsumeAuthCode reads the request (with the row lock, so concurrent
// redemptions queue: the first marks the code used, and each later one
// wakes up to that commit and takes the replay path). It checks for a
// replay before expiry: a code presented twice is an attack signal even
// once it has expired.
func (s *Store) ConsumeAuthCode(ctx context.Context, codeHash string, now time.Time) (storage.AuthRequest, error) {
	var r storage.AuthRequest
	var replayed bool
	err := s.tx(ctx, func(tx db) error {
		var codeUsed int64
		var err error
		replayed = false
		r, err = scanAuthRequest(tx.queryRow(ctx,
			`SELECT `+authRequestCols+`, code_used_at FROM auth_requests WHERE code_hash = ?`+s.d.ForUpdate, codeHash), &codeUsed)
		switch {
		case err != nil:
			return s.noRows(err)
		case codeUsed != 0:
			// RFC 6749 §4.1.2: revoke what the code issued, and commit that.
			replayed = true
			return revokeGrant(ctx, tx, r.ID)
		case now.After(r.CodeExpiresAt):
			return storage.ErrExpired
		}
		_, err = tx.exec(ctx, `UPDATE auth_requests SET code_used_at = ? WHERE id = ?`, usedAt(now), r.ID)
		return err
	})
	if err == nil && replayed {
		err = storage.ErrReplayed
	}
	if err != nil {
		return storage.AuthRequest{}, s.fail("consume auth code", err)
	}
	return r, nil
}

func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if err := s.execOne(ctx, `DELETE FROM auth_requests WHERE id = ?`, id); err != nil {
		return s.fail("delete auth request", err)
	}
	return nil
}

// RecordAuthRequestFailure is one UPDATE: concurrent calls queue on the row
// and each adds to the count the one before it committed.
func (s *Store) RecordAuthRequestFailure(ctx context.Context, id string) (int, error) {
	var n int
	err := s.tx(ctx, func(tx db) error {
		return tx.queryRow(ctx, `UPDATE auth_requests SET failed_attempts = failed_attempts + 1
			WHERE id = ? RETURNING failed_attempts`, id).Scan(&n)
	})
	if err != nil {
		return 0, s.fail("record auth request failure", s.noRows(err))
	}
	return n, nil
}

func (s *Store) DeleteExpiredAuthRequests(ctx context.Context, now time.Time) (int, error) {
	n, err := s.sweep(ctx, "auth_requests", `expires_at < ?`, nanos(now))
	if err == nil {
		var m int
		m, err = s.sweep(ctx, "pushed_requests", `expires_at < ?`, nanos(now))
		n += m
	}
	if err != nil {
		return n, s.fail("delete expired auth requests", err)
	}
	return n, nil
}

func (s *Store) DeleteUserAuthRequests(ctx context.Context, subject string) (int, error) {
	if subject == "" {
		return 0, nil // requests not yet completed have no subject
	}
	n, err := affected(s.exec(ctx, `DELETE FROM auth_requests WHERE subject = ?`, subject))
	if err != nil {
		return 0, s.fail("delete user auth requests", err)
	}
	return n, nil
}

func (s *Store) CreatePushedRequest(ctx context.Context, p storage.PushedRequest) error {
	_, err := s.exec(ctx, `INSERT INTO pushed_requests (id, client_id, params, expires_at, used_at) VALUES (?, ?, ?, ?, 0)`,
		p.ID, p.ClientID, p.Params, nanos(p.ExpiresAt))
	if err != nil {
		return s.fail("create pushed request", s.insertErr(err))
	}
	return nil
}

// ConsumePushedRequest reads the row with the dialect's row lock, so a
// concurrent spend waits, and marks it used.
func (s *Store) ConsumePushedRequest(ctx context.Context, id, clientID string, now time.Time) (storage.PushedRequest, error) {
	var p storage.PushedRequest
	err := s.tx(ctx, func(tx db) error {
		var used time.Time
		err := tx.queryRow(ctx, `SELECT id, client_id, params, expires_at, used_at FROM pushed_requests WHERE id = ?`+s.d.ForUpdate, id).
			Scan(&p.ID, &p.ClientID, &p.Params, at(&p.ExpiresAt), at(&used))
		switch {
		case err != nil:
			return s.noRows(err)
		case p.ClientID != clientID:
			p = storage.PushedRequest{}
			return storage.ErrNotFound
		case !used.IsZero():
			return storage.ErrReplayed
		case now.After(p.ExpiresAt):
			return storage.ErrExpired
		}
		_, err = tx.exec(ctx, `UPDATE pushed_requests SET used_at = ? WHERE id = ?`, usedAt(now), id)
		return err
	})
	if err != nil {
		return storage.PushedRequest{}, s.fail("consume pushed request", err)
	}
	return p, nil
}
