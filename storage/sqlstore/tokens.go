package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keystep/keystep/storage"
)

// grantCols are the Grant fields, stored on every token.
const grantCols = `grant_id, client_id, subject, scopes, audience, acr, amr, auth_time, session_id`

func grantDest(g *storage.Grant) []any {
	return []any{&g.GrantID, &g.ClientID, &g.Subject, js(&g.Scopes), js(&g.Audience),
		&g.ACR, js(&g.AMR), at(&g.AuthTime), &g.SessionID}
}

func grantArgs(g storage.Grant) []any {
	return []any{g.GrantID, g.ClientID, g.Subject, jsonOf(g.Scopes), jsonOf(g.Audience),
		g.ACR, jsonOf(g.AMR), nanos(g.AuthTime), g.SessionID}
}

const accessCols = `id, ` + grantCols + `, refresh_id, created_at, expires_at, revoked`

func scanAccessToken(sc Row) (storage.AccessToken, error) {
	var t storage.AccessToken
	dest := append([]any{&t.ID}, grantDest(&t.Grant)...)
	err := sc.Scan(append(dest, &t.RefreshID, at(&t.CreatedAt), at(&t.ExpiresAt), &t.Revoked)...)
	return t, err
}

const insertAccess = `INSERT INTO access_tokens (` + accessCols + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func accessArgs(t storage.AccessToken) []any {
	args := append([]any{t.ID}, grantArgs(t.Grant)...)
	return append(args, t.RefreshID, nanos(t.CreatedAt), nanos(t.ExpiresAt), t.Revoked)
}

func (s *Store) CreateAccessToken(ctx context.Context, t storage.AccessToken) error {
	if _, err := s.exec(ctx, insertAccess, accessArgs(t)...); err != nil {
		return s.fail("create access token", s.insertErr(err))
	}
	return nil
}

func (s *Store) AccessTokenByID(ctx context.Context, id string, now time.Time) (storage.AccessToken, error) {
	t, err := scanAccessToken(s.read.queryRow(ctx, `SELECT `+accessCols+` FROM access_tokens WHERE id = ?`, id))
	switch {
	case err != nil:
		err = s.noRows(err)
	case t.Revoked:
		err = storage.ErrNotFound
	case now.After(t.ExpiresAt):
		err = storage.ErrExpired
	}
	if err != nil {
		return storage.AccessToken{}, s.fail("access token", err)
	}
	return t, nil
}

const refreshCols = `id, family_id, ` + grantCols + `, created_at, expires_at, used_at, revoked`

func scanRefreshToken(sc Row) (storage.RefreshToken, error) {
	var t storage.RefreshToken
	dest := append([]any{&t.ID, &t.FamilyID}, grantDest(&t.Grant)...)
	err := sc.Scan(append(dest, at(&t.CreatedAt), at(&t.ExpiresAt), at(&t.UsedAt), &t.Revoked)...)
	return t, err
}

// insertRefresh inserts t and, when access is not nil, access issued with it.
func (s *Store) insertRefresh(ctx context.Context, tx db, t storage.RefreshToken, access *storage.AccessToken) error {
	args := append([]any{t.ID, t.FamilyID}, grantArgs(t.Grant)...)
	args = append(args, nanos(t.CreatedAt), nanos(t.ExpiresAt), nanos(t.UsedAt), t.Revoked)
	_, err := tx.exec(ctx, `INSERT INTO refresh_tokens (`+refreshCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	if err != nil || access == nil {
		return s.insertErr(err)
	}
	a := *access
	a.RefreshID = t.ID
	_, err = tx.exec(ctx, insertAccess, accessArgs(a)...)
	return s.insertErr(err)
}

func (s *Store) CreateRefreshToken(ctx context.Context, t storage.RefreshToken, access *storage.AccessToken) error {
	err := s.tx(ctx, func(tx db) error { return s.insertRefresh(ctx, tx, t, access) })
	if err != nil {
		return s.fail("create refresh token", err)
	}
	return nil
}

func (s *Store) RefreshTokenByID(ctx context.Context, id string, now time.Time) (storage.RefreshToken, error) {
	t, err := scanRefreshToken(s.read.queryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE id = ?`, id))
	if err == nil {
		err = refreshState(t, now)
	}
	if errors.Is(err, storage.ErrReplayed) {
		// The caller names whose family it revokes (storage.Tokens).
		return t, s.fail("refresh token", err)
	}
	if err != nil {
		return storage.RefreshToken{}, s.fail("refresh token", s.noRows(err))
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
// is still current: of concurrent rotations the first marks it used and the
// rest (on PostgreSQL waiting on its row lock and re-checking the condition)
// match nothing. Then the row is read to say why. Presenting a used token
// revokes the family and commits that before returning ErrReplayed (OAuth
// 2.0 Security BCP §4.14.2), in a transaction of its own: the revocation
// takes the lock (Locks.RevocationOf) that a rotation holds shared.
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, next storage.RefreshToken, access *storage.AccessToken, now time.Time) error {
	var replayed bool
	err := s.tx(ctx, func(tx db) error {
		replayed = false
		if s.locks != nil {
			if err := s.locks.RotationOf(ctx, tx.q, oldID); err != nil {
				return err
			}
		}
		err := tx.queryRow(ctx, `UPDATE refresh_tokens SET used_at = ?
			WHERE id = ? AND used_at = 0 AND NOT revoked AND expires_at >= ?
			RETURNING family_id, grant_id`, usedAt(now), oldID, nanos(now)).Scan(&next.FamilyID, &next.Grant.GrantID)
		if errors.Is(err, sql.ErrNoRows) {
			old, err := scanRefreshToken(tx.queryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE id = ?`, oldID))
			if err != nil {
				return s.noRows(err)
			}
			err = refreshState(old, now)
			if errors.Is(err, storage.ErrReplayed) {
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
		return s.insertRefresh(ctx, tx, next, access)
	})
	if err == nil && replayed {
		if err = s.RevokeRefreshFamily(ctx, oldID); err == nil {
			err = storage.ErrReplayed
		}
	}
	if err != nil {
		return s.fail("rotate refresh token", err)
	}
	return nil
}

// revokeFamily revokes the refresh tokens of family and the access tokens
// issued with any of them. Every token of a family carries the grant it
// descends from, so the grant_id indexes find them; family and refresh_id
// only narrow that down. Like every bulk revocation it updates
// refresh_tokens before access_tokens, so two of them lock in one order.
func revokeFamily(ctx context.Context, tx db, grantID, family string) error {
	if _, err := tx.exec(ctx, `UPDATE refresh_tokens SET revoked = TRUE WHERE grant_id = ? AND family_id = ?`, grantID, family); err != nil {
		return err
	}
	_, err := tx.exec(ctx, `UPDATE access_tokens SET revoked = TRUE WHERE grant_id = ? AND refresh_id IN
		(SELECT id FROM refresh_tokens WHERE grant_id = ? AND family_id = ?)`, grantID, grantID, family)
	return err
}

func revokeGrant(ctx context.Context, tx db, grantID string) error {
	if _, err := tx.exec(ctx, `UPDATE refresh_tokens SET revoked = TRUE WHERE grant_id = ?`, grantID); err != nil {
		return err
	}
	_, err := tx.exec(ctx, `UPDATE access_tokens SET revoked = TRUE WHERE grant_id = ?`, grantID)
	return err
}

// lockRevocation takes, for the rest of tx, the lock that orders a
// revocation after the rotations under way (see Locks.RevocationOf).
func (s *Store) lockRevocation(ctx context.Context, tx db, subject, column, value string) error {
	if s.locks == nil {
		return nil
	}
	return s.locks.RevocationOf(ctx, tx.q, subject, column, value)
}

func (s *Store) RevokeAccessToken(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `UPDATE access_tokens SET revoked = TRUE WHERE id = ?`, id); err != nil {
		return s.fail("revoke access token", err)
	}
	return nil
}

func (s *Store) RevokeRefreshFamily(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx db) error {
		if err := s.lockRevocation(ctx, tx, "", "id", id); err != nil {
			return err
		}
		var grant, family string
		err := tx.queryRow(ctx, `SELECT grant_id, family_id FROM refresh_tokens WHERE id = ?`, id).Scan(&grant, &family)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // RFC 7009 §2.2
		}
		if err != nil {
			return err
		}
		return revokeFamily(ctx, tx, grant, family)
	})
	if err != nil {
		return s.fail("revoke refresh family", err)
	}
	return nil
}

func (s *Store) RevokeGrant(ctx context.Context, grantID string) error {
	err := s.tx(ctx, func(tx db) error {
		if err := s.lockRevocation(ctx, tx, "", "grant_id", grantID); err != nil {
			return err
		}
		return revokeGrant(ctx, tx, grantID)
	})
	if err != nil {
		return s.fail("revoke grant", err)
	}
	return nil
}

// RevokeUserClientTokens first takes the subject's revocation lock: it
// waits for the rotations under way, whose new tokens the UPDATEs below
// then see, and rotations after it find their token revoked.
func (s *Store) RevokeUserClientTokens(ctx context.Context, subject, clientID string) error {
	where, args := `subject = ?`, []any{subject}
	if clientID != "" {
		where, args = where+` AND client_id = ?`, append(args, clientID)
	}
	err := s.tx(ctx, func(tx db) error {
		if err := s.lockRevocation(ctx, tx, subject, "", ""); err != nil {
			return err
		}
		for _, table := range []string{"refresh_tokens", "access_tokens"} {
			if _, err := tx.exec(ctx, `UPDATE `+table+` SET revoked = TRUE WHERE `+where, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("revoke user client tokens", err)
	}
	return nil
}

func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, table := range []string{"refresh_tokens", "access_tokens"} {
		n, err := s.sweep(ctx, table, `expires_at < ?`, nanos(now))
		total += n
		if err != nil {
			return total, s.fail("delete expired tokens", err)
		}
	}
	return total, nil
}
