package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage"
)

// grantCols are the Grant fields, stored on every token.
const grantCols = `grant_id, client_id, subject, scopes, audience, acr, amr, auth_time, session_id`

func grantDest(g *storage.Grant) []any {
	return []any{&g.GrantID, &g.ClientID, &g.Subject, &g.Scopes, &g.Audience,
		&g.ACR, &g.AMR, at(&g.AuthTime), &g.SessionID}
}

func grantArgs(g storage.Grant) []any {
	return []any{g.GrantID, g.ClientID, g.Subject, jsonOf(g.Scopes), jsonOf(g.Audience),
		g.ACR, jsonOf(g.AMR), nanos(g.AuthTime), g.SessionID}
}

const accessCols = `id, ` + grantCols + `, refresh_id, created_at, expires_at, revoked`

func scanAccessToken(sc scanner) (storage.AccessToken, error) {
	var t storage.AccessToken
	dest := append([]any{&t.ID}, grantDest(&t.Grant)...)
	err := sc.Scan(append(dest, &t.RefreshID, at(&t.CreatedAt), at(&t.ExpiresAt), &t.Revoked)...)
	return t, err
}

func (s *Store) CreateAccessToken(ctx context.Context, t storage.AccessToken) error {
	if err := insertAccessToken(ctx, s.pool, t); err != nil {
		return fmt.Errorf("postgres: create access token: %w", err)
	}
	return nil
}

func insertAccessToken(ctx context.Context, q querier, t storage.AccessToken) error {
	args := append([]any{t.ID}, grantArgs(t.Grant)...)
	args = append(args, t.RefreshID, nanos(t.CreatedAt), nanos(t.ExpiresAt), t.Revoked)
	_, err := q.Exec(ctx, `INSERT INTO access_tokens (`+accessCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, args...)
	return insertErr(err)
}

func (s *Store) AccessTokenByID(ctx context.Context, id string, now time.Time) (storage.AccessToken, error) {
	t, err := scanAccessToken(s.pool.QueryRow(ctx, `SELECT `+accessCols+` FROM access_tokens WHERE id = $1`, id))
	switch {
	case err != nil:
		err = noRows(err)
	case t.Revoked:
		err = storage.ErrNotFound
	case now.After(t.ExpiresAt):
		err = storage.ErrExpired
	}
	if err != nil {
		return storage.AccessToken{}, fmt.Errorf("postgres: access token: %w", err)
	}
	return t, nil
}

const refreshCols = `id, family_id, ` + grantCols + `, created_at, expires_at, used_at, revoked`

func scanRefreshToken(sc scanner) (storage.RefreshToken, error) {
	var t storage.RefreshToken
	dest := append([]any{&t.ID, &t.FamilyID}, grantDest(&t.Grant)...)
	err := sc.Scan(append(dest, at(&t.CreatedAt), at(&t.ExpiresAt), at(&t.UsedAt), &t.Revoked)...)
	return t, err
}

func insertRefreshToken(ctx context.Context, q querier, t storage.RefreshToken) error {
	args := append([]any{t.ID, t.FamilyID}, grantArgs(t.Grant)...)
	args = append(args, nanos(t.CreatedAt), nanos(t.ExpiresAt), nanos(t.UsedAt), t.Revoked)
	_, err := q.Exec(ctx, `INSERT INTO refresh_tokens (`+refreshCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`, args...)
	return insertErr(err)
}

func (s *Store) CreateRefreshToken(ctx context.Context, t storage.RefreshToken, access *storage.AccessToken) error {
	var err error
	if access == nil {
		err = insertRefreshToken(ctx, s.pool, t)
	} else {
		err = s.tx(ctx, func(tx pgx.Tx) error {
			if err := insertRefreshToken(ctx, tx, t); err != nil {
				return err
			}
			return insertAccessToken(ctx, tx, withRefresh(*access, t.ID))
		})
	}
	if err != nil {
		return fmt.Errorf("postgres: create refresh token: %w", err)
	}
	return nil
}

func withRefresh(t storage.AccessToken, refreshID string) storage.AccessToken {
	t.RefreshID = refreshID
	return t
}

func (s *Store) RefreshTokenByID(ctx context.Context, id string, now time.Time) (storage.RefreshToken, error) {
	t, err := scanRefreshToken(s.pool.QueryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE id = $1`, id))
	if err == nil {
		err = refreshState(t, now)
	}
	if errors.Is(err, storage.ErrReplayed) {
		// The caller names whose family it revokes (storage.Tokens).
		return t, fmt.Errorf("postgres: refresh token: %w", err)
	}
	if err != nil {
		return storage.RefreshToken{}, fmt.Errorf("postgres: refresh token: %w", noRows(err))
	}
	return t, nil
}

// refreshState says why t cannot be used at now, or nil when it can. A
// rotated token is reported as replayed even once its family is revoked, so
// every reuse is seen as one.
func refreshState(t storage.RefreshToken, now time.Time) error {
	switch {
	case !t.UsedAt.IsZero():
		return storage.ErrReplayed
	case t.Revoked:
		return storage.ErrNotFound
	case now.After(t.ExpiresAt):
		return storage.ErrExpired
	}
	return nil
}

// RotateRefreshToken puts next in oldID's family and grant whatever next's
// FamilyID and GrantID say: revoking a family finds it by both.
// The usual case is one UPDATE … RETURNING that marks oldID used only if it
// is still current: it locks the row, so of concurrent rotations the first
// marks it used and the rest, re-checking the condition, match nothing. Then
// the row is read to say why. Presenting a used token revokes the family and
// commits that before returning ErrReplayed (OAuth 2.0 Security BCP §4.14.2).
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, next storage.RefreshToken, access *storage.AccessToken, now time.Time) error {
	var replayed bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		replayed = false
		// Shared: rotations do not wait for each other, only for a
		// revocation of the user's tokens (RevokeUserClientTokens).
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1, hashtext(subject)) FROM refresh_tokens WHERE id = $2`, lockSubject, oldID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `UPDATE refresh_tokens SET used_at = $1
			WHERE id = $2 AND used_at = 0 AND NOT revoked AND expires_at >= $3
			RETURNING family_id, grant_id`, usedAt(now), oldID, nanos(now)).Scan(&next.FamilyID, &next.Grant.GrantID)
		if errors.Is(err, pgx.ErrNoRows) {
			old, err := scanRefreshToken(tx.QueryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE id = $1`, oldID))
			if err != nil {
				return noRows(err)
			}
			err = refreshState(old, now)
			if errors.Is(err, storage.ErrReplayed) {
				// Revoked below, in a transaction of its own that takes the
				// subject's lock exclusive: this one holds it shared.
				replayed = true
				return nil
			}
			if err == nil {
				err = errors.New("refresh token is current but was not rotated")
			}
			return err
		}
		if err != nil {
			return err
		}
		if err := insertRefreshToken(ctx, tx, next); err != nil {
			return err
		}
		if access == nil {
			return nil
		}
		return insertAccessToken(ctx, tx, withRefresh(*access, next.ID))
	})
	if err == nil && replayed {
		if err = s.RevokeRefreshFamily(ctx, oldID); err == nil {
			err = storage.ErrReplayed
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: rotate refresh token: %w", err)
	}
	return nil
}

// lockSubjectsExclusive takes, for the rest of tx, the lock of every
// subject of the refresh tokens where matches (a condition on one
// parameter, $2). Rotations hold it shared, so a revocation that takes it
// first waits for the rotations under way and its UPDATEs (each with a
// snapshot taken after the lock) see the tokens they wrote: at READ
// COMMITTED an UPDATE never sees a row inserted after its snapshot.
func lockSubjectsExclusive(ctx context.Context, tx pgx.Tx, where string, arg string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(subject))
		FROM (SELECT DISTINCT subject FROM refresh_tokens WHERE `+where+`) AS s ORDER BY subject`, lockSubject, arg)
	return err
}

// revokeFamily revokes the refresh tokens of family and the access tokens
// issued with any of them. Every token of a family carries the grant it
// descends from, so the grant_id indexes find them; family and refresh_id
// only narrow that down. Like every bulk revocation it updates
// refresh_tokens before access_tokens, so two of them lock in one order.
func revokeFamily(ctx context.Context, q querier, grantID, family string) error {
	if _, err := q.Exec(ctx, `UPDATE refresh_tokens SET revoked = true WHERE grant_id = $1 AND family_id = $2`, grantID, family); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `UPDATE access_tokens SET revoked = true WHERE grant_id = $1 AND refresh_id IN
		(SELECT id FROM refresh_tokens WHERE grant_id = $1 AND family_id = $2)`, grantID, family)
	return err
}

func revokeGrant(ctx context.Context, q querier, grantID string) error {
	if _, err := q.Exec(ctx, `UPDATE refresh_tokens SET revoked = true WHERE grant_id = $1`, grantID); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `UPDATE access_tokens SET revoked = true WHERE grant_id = $1`, grantID)
	return err
}

func (s *Store) RevokeAccessToken(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE access_tokens SET revoked = true WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: revoke access token: %w", err)
	}
	return nil
}

func (s *Store) RevokeRefreshFamily(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockSubjectsExclusive(ctx, tx, `id = $2`, id); err != nil {
			return err
		}
		var grant, family string
		err := tx.QueryRow(ctx, `SELECT grant_id, family_id FROM refresh_tokens WHERE id = $1`, id).Scan(&grant, &family)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // RFC 7009 §2.2
		}
		if err != nil {
			return err
		}
		return revokeFamily(ctx, tx, grant, family)
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke refresh family: %w", err)
	}
	return nil
}

func (s *Store) RevokeGrant(ctx context.Context, grantID string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockSubjectsExclusive(ctx, tx, `grant_id = $2`, grantID); err != nil {
			return err
		}
		return revokeGrant(ctx, tx, grantID)
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke grant: %w", err)
	}
	return nil
}

// RevokeUserClientTokens first takes the subject's lock exclusive: it waits
// for the rotations under way, whose new tokens the UPDATEs below (each with
// a snapshot taken after the lock) then see, and rotations after it find
// their token revoked.
func (s *Store) RevokeUserClientTokens(ctx context.Context, subject, clientID string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockSubject, subject); err != nil {
			return err
		}
		for _, table := range []string{"refresh_tokens", "access_tokens"} {
			_, err := tx.Exec(ctx, `UPDATE `+table+` SET revoked = true
				WHERE subject = $1 AND ($2::text = '' OR client_id = $2)`, subject, clientID)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke user client tokens: %w", err)
	}
	return nil
}

func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	var total int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		total = 0
		for _, table := range []string{"refresh_tokens", "access_tokens"} {
			n, err := affected(tx.Exec(ctx, `DELETE FROM `+table+` WHERE expires_at < $1`, nanos(now)))
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired tokens: %w", err)
	}
	return total, nil
}
