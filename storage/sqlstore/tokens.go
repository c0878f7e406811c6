package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/keystep/keystep/storage"
)

// grantCols are the Grant fields, stored on every token.
const grantCols = `grant_id, client_id, subject, scopes, audience, acr, amr, auth_time, session_id, jkt, authorization_details`

func grantDest(g *storage.Grant) []any {
	return []any{&g.GrantID, &g.ClientID, &g.Subject, js(&g.Scopes), js(&g.Audience),
		&g.ACR, js(&g.AMR), at(&g.AuthTime), &g.SessionID, &g.JKT, &g.AuthorizationDetails}
}

func grantArgs(g storage.Grant) []any {
	return []any{g.GrantID, g.ClientID, g.Subject, jsonOf(g.Scopes), jsonOf(g.Audience),
		g.ACR, jsonOf(g.AMR), nanos(g.AuthTime), g.SessionID, g.JKT, g.AuthorizationDetails}
}

const accessCols = `id, ` + grantCols + `, refresh_id, created_at, expires_at, revoked`

// accessColsOf is accessCols qualified with a table alias.
func accessColsOf(alias string) string {
	cols := strings.Split(accessCols, ", ")
	for i, c := range cols {
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

// scanAccessToken scans an access token row and then extra, the columns
// after it.
func scanAccessToken(sc Row, extra ...any) (storage.AccessToken, error) {
	var t storage.AccessToken
	dest := append([]any{&t.ID}, grantDest(&t.Grant)...)
	dest = append(dest, &t.RefreshID, at(&t.CreatedAt), at(&t.ExpiresAt), &t.Revoked)
	err := sc.Scan(append(dest, extra...)...)
	return t, err
}

const insertAccess = `INSERT INTO access_tokens (` + accessCols + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func accessArgs(t storage.AccessToken) []any {
	args := append([]any{t.ID}, grantArgs(t.Grant)...)
	return append(args, t.RefreshID, nanos(t.CreatedAt), nanos(t.ExpiresAt), t.Revoked)
}

func (s *Store) CreateAccessToken(ctx context.Context, t storage.AccessToken) error {
	if t.RefreshID == "" {
		if _, err := s.exec(ctx, insertAccess, accessArgs(t)...); err != nil {
			return s.fail("create access token", s.insertErr(err))
		}
		return nil
	}
	// A retry's token (same successor, no rotation) names its family: the
	// family's row is read locked, so a revocation either comes first and
	// refuses it, or waits and then revokes it with the family's tokens.
	err := s.tx(ctx, func(tx db) error {
		var revoked bool
		err := tx.queryRow(ctx, `SELECT revoked FROM refresh_families WHERE id = ?`+s.d.ForUpdate, t.RefreshID).Scan(&revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// A token of a refresh token from before families.
		case err != nil:
			return err
		case revoked:
			return storage.ErrNotFound
		}
		_, err = tx.exec(ctx, insertAccess, accessArgs(t)...)
		return s.insertErr(err)
	})
	if err != nil {
		return s.fail("create access token", err)
	}
	return nil
}

// AccessTokenByID reads the token with the state of the family its
// refresh_id names, if there is one: a family is revoked in its row only.
func (s *Store) AccessTokenByID(ctx context.Context, id string, now time.Time) (storage.AccessToken, error) {
	var familyRevoked bool
	t, err := scanAccessToken(s.read.queryRow(ctx, `SELECT `+accessColsOf("a")+`,
		COALESCE((SELECT f.revoked FROM refresh_families f WHERE f.id = a.refresh_id), FALSE)
		FROM access_tokens a WHERE a.id = ?`, id), &familyRevoked)
	switch {
	case err != nil:
		err = s.noRows(err)
	case t.Revoked || familyRevoked:
		err = storage.ErrNotFound
	case now.After(t.ExpiresAt):
		err = storage.ErrExpired
	}
	if err != nil {
		return storage.AccessToken{}, s.fail("access token", err)
	}
	return t, nil
}

func (s *Store) RevokeRowlessAccessToken(ctx context.Context, id string, expiresAt time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO revoked_access_tokens (id, expires_at) VALUES (?, ?)
		ON CONFLICT (id) DO NOTHING`, id, nanos(expiresAt))
	if err != nil {
		return s.fail("revoke access token", err)
	}
	return nil
}

func (s *Store) RowlessAccessTokenFamily(ctx context.Context, id, familyID string, now time.Time) (storage.Family, error) {
	var f storage.Family
	var revoked bool
	var err error
	if familyID == "" {
		err = s.read.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE id = ?)`, id).Scan(&revoked)
	} else {
		f, err = scanFamily(s.read.queryRow(ctx, `SELECT `+familyCols+`,
			EXISTS (SELECT 1 FROM revoked_access_tokens WHERE id = ?)
			FROM refresh_families WHERE id = ?`, id, familyID), &revoked)
	}
	switch {
	case err != nil:
		err = s.noRows(err)
	case revoked || f.Revoked:
		err = storage.ErrNotFound
	case familyID != "" && now.After(f.ExpiresAt):
		err = storage.ErrExpired
	}
	if err != nil {
		return storage.Family{}, s.fail("access token family", err)
	}
	return f, nil
}

const familyCols = `id, ` + grantCols + `, generation, rotated_at, created_at, expires_at, revoked, audited_generation, audited_at`

// scanFamily scans a family row and then extra, the columns after it.
func scanFamily(sc Row, extra ...any) (storage.Family, error) {
	var f storage.Family
	dest := append([]any{&f.ID}, grantDest(&f.Grant)...)
	dest = append(dest, &f.Generation, at(&f.RotatedAt), at(&f.CreatedAt), at(&f.ExpiresAt), &f.Revoked, &f.AuditedGeneration, at(&f.AuditedAt))
	err := sc.Scan(append(dest, extra...)...)
	return f, err
}

// insertFamily inserts f and, when access is not nil, access issued with it.
func (s *Store) insertFamily(ctx context.Context, tx db, f storage.Family, access *storage.AccessToken) error {
	args := append([]any{f.ID}, grantArgs(f.Grant)...)
	args = append(args, f.Generation, nanos(f.RotatedAt), nanos(f.CreatedAt), nanos(f.ExpiresAt), f.Revoked, f.AuditedGeneration, nanos(f.AuditedAt))
	_, err := tx.exec(ctx, `INSERT INTO refresh_families (`+familyCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	if err != nil {
		return s.insertErr(err)
	}
	return s.insertAccessOf(ctx, tx, f.ID, access)
}

// insertAccessOf inserts access, when not nil, as issued with refreshID.
func (s *Store) insertAccessOf(ctx context.Context, tx db, refreshID string, access *storage.AccessToken) error {
	if access == nil {
		return nil
	}
	a := *access
	a.RefreshID = refreshID
	_, err := tx.exec(ctx, insertAccess, accessArgs(a)...)
	return s.insertErr(err)
}

func (s *Store) CreateFamily(ctx context.Context, f storage.Family, access *storage.AccessToken) error {
	err := s.tx(ctx, func(tx db) error {
		if err := s.insertFamily(ctx, tx, f, access); err != nil {
			return err
		}
		return rememberSessionClient(ctx, tx, f.Grant, f.CreatedAt)
	})
	if err != nil {
		return s.fail("create family", err)
	}
	return nil
}

func (s *Store) FamilyByID(ctx context.Context, id string) (storage.Family, error) {
	f, err := scanFamily(s.read.queryRow(ctx, `SELECT `+familyCols+` FROM refresh_families WHERE id = ?`, id))
	if err != nil {
		return storage.Family{}, s.fail("family", s.noRows(err))
	}
	return f, nil
}

// RotateFamily is one UPDATE … RETURNING, a compare-and-swap on the
// generation: of concurrent rotations the first moves it on and the rest
// (on PostgreSQL waiting on its row lock and re-checking the condition)
// match nothing. Then the row is read to say why. A revocation updates the
// same row, so it is ordered with every rotation by the row alone.
func (s *Store) RotateFamily(ctx context.Context, id string, gen int64, scopes []string, access *storage.AccessToken, now time.Time) (storage.Family, error) {
	var f storage.Family
	err := s.tx(ctx, func(tx db) error {
		var err error
		f, err = scanFamily(tx.queryRow(ctx, `UPDATE refresh_families SET generation = generation + 1, rotated_at = ?, scopes = ?
			WHERE id = ? AND generation = ? AND NOT revoked AND expires_at >= ?
			RETURNING `+familyCols, usedAt(now), jsonOf(scopes), id, gen, nanos(now)))
		if errors.Is(err, sql.ErrNoRows) {
			f, err = scanFamily(tx.queryRow(ctx, `SELECT `+familyCols+` FROM refresh_families WHERE id = ?`, id))
			if err != nil {
				return s.noRows(err)
			}
			return familyState(f, gen, now)
		}
		if err != nil {
			return err
		}
		return s.insertAccessOf(ctx, tx, id, access)
	})
	if errors.Is(err, storage.ErrReplayed) {
		return f, s.fail("rotate family", err) // the caller names whose family it is
	}
	if err != nil {
		return storage.Family{}, s.fail("rotate family", err)
	}
	return f, nil
}

func (s *Store) BindFamily(ctx context.Context, id, jkt string) (storage.Family, error) {
	var f storage.Family
	err := s.tx(ctx, func(tx db) error {
		if _, err := tx.exec(ctx, `UPDATE refresh_families SET jkt = ? WHERE id = ? AND jkt = ''`, jkt, id); err != nil {
			return err
		}
		var err error
		f, err = scanFamily(tx.queryRow(ctx, `SELECT `+familyCols+` FROM refresh_families WHERE id = ?`, id))
		return s.noRows(err)
	})
	if err != nil {
		return storage.Family{}, s.fail("bind family", err)
	}
	return f, nil
}

// familyState says why generation gen of f cannot be rotated at now. A
// lower generation is reported as replayed even once the family is
// revoked, so every reuse is seen as one.
func familyState(f storage.Family, gen int64, now time.Time) error {
	switch {
	case gen < f.Generation:
		return storage.ErrReplayed
	case f.Revoked, gen > f.Generation:
		return storage.ErrNotFound
	case now.After(f.ExpiresAt):
		return storage.ErrExpired
	}
	return errors.New("family is current but was not rotated")
}

func (s *Store) MarkFamilyAudited(ctx context.Context, id string, gen int64, at time.Time) error {
	if _, err := s.exec(ctx, `UPDATE refresh_families SET audited_generation = ?, audited_at = ?
		WHERE id = ? AND audited_generation < ?`, gen, nanos(at), id, gen); err != nil {
		return s.fail("mark family audited", err)
	}
	return nil
}

// RevokeFamily marks the family's row and the rows of the opaque access
// tokens issued with it. The family's row alone is not enough: it is swept
// at its expiry, and an access token issued by a refresh in its last
// accessTokenTTL outlives it; with the row gone, AccessTokenByID would find
// that token live again. (A JWT access token whose family is gone is not
// live: RowlessAccessTokenFamily answers ErrNotFound.)
func (s *Store) RevokeFamily(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx db) error {
		if _, err := tx.exec(ctx, `UPDATE refresh_families SET revoked = TRUE WHERE id = ?`, id); err != nil {
			return err
		}
		// Found through the grant_id index (there is none on refresh_id).
		_, err := tx.exec(ctx, `UPDATE access_tokens SET revoked = TRUE
			WHERE grant_id = (SELECT grant_id FROM refresh_families WHERE id = ?) AND refresh_id = ?`, id, id)
		return err
	})
	if err != nil {
		return s.fail("revoke family", err)
	}
	return nil
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
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
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

// UpgradeRefreshToken marks oldID used if it is still current, with one
// UPDATE … RETURNING like a rotation did before families, and inserts the
// family row in the same transaction. It holds the subject's rotation lock
// (Locks.RotationOf) like those rotations: the row it inserts is new, so a
// revocation under way could not see it otherwise.
func (s *Store) UpgradeRefreshToken(ctx context.Context, oldID string, next storage.Family, access *storage.AccessToken, now time.Time) error {
	err := s.tx(ctx, func(tx db) error {
		if s.locks != nil {
			if err := s.locks.RotationOf(ctx, tx.q, oldID); err != nil {
				return err
			}
		}
		err := tx.queryRow(ctx, `UPDATE refresh_tokens SET used_at = ?
			WHERE id = ? AND used_at = 0 AND NOT revoked AND expires_at >= ?
			RETURNING family_id, grant_id`, usedAt(now), oldID, nanos(now)).Scan(&next.ID, &next.Grant.GrantID)
		if errors.Is(err, sql.ErrNoRows) {
			old, err := scanRefreshToken(tx.queryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE id = ?`, oldID))
			if err != nil {
				return s.noRows(err)
			}
			if err = refreshState(old, now); err == nil {
				err = errors.New("refresh token is current but was not rotated")
			}
			return err
		}
		if err != nil {
			return err
		}
		next.Generation, next.RotatedAt = 1, now
		return s.insertFamily(ctx, tx, next, access)
	})
	if err != nil {
		return s.fail("upgrade refresh token", err)
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
	// The family the chain was upgraded into, if it was (and the access
	// tokens issued with it, which follow their family).
	if _, err := tx.exec(ctx, `UPDATE refresh_families SET revoked = TRUE WHERE id = ?`, family); err != nil {
		return err
	}
	_, err := tx.exec(ctx, `UPDATE access_tokens SET revoked = TRUE WHERE grant_id = ? AND refresh_id IN
		(SELECT id FROM refresh_tokens WHERE grant_id = ? AND family_id = ?)`, grantID, grantID, family)
	return err
}

func revokeGrant(ctx context.Context, tx db, grantID string) error {
	for _, table := range []string{"refresh_families", "refresh_tokens"} {
		if _, err := tx.exec(ctx, `UPDATE `+table+` SET revoked = TRUE WHERE grant_id = ?`, grantID); err != nil {
			return err
		}
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
		for _, table := range []string{"refresh_families", "refresh_tokens", "access_tokens"} {
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
	for _, table := range []string{"refresh_families", "refresh_tokens", "access_tokens", "revoked_access_tokens", "one_time_tokens"} {
		key := "id"
		if table == "one_time_tokens" {
			key = "hash" // hashes of random values: no two kinds share one
		}
		n, err := s.sweepBy(ctx, table, key, `expires_at < ?`, nanos(now))
		total += n
		if err != nil {
			return total, s.fail("delete expired tokens", err)
		}
	}
	return total, nil
}
