package sqlstore

import (
	"context"

	"github.com/keystep/keystep/storage"
)

const userCols = `id, username, email, password_hash, admin, disabled, password_compromised, risk_floor,
	risk_floor_until, risk_floor_reason, created_at, updated_at, email_verified, email_verified_at, risk_floor_new_devices, locale`

func scanUser(sc Row) (storage.User, error) {
	var u storage.User
	err := sc.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &u.Admin, &u.Disabled,
		&u.PasswordCompromised, &u.RiskFloor, at(&u.RiskFloorUntil), &u.RiskFloorReason, at(&u.CreatedAt), at(&u.UpdatedAt),
		&u.EmailVerified, at(&u.EmailVerifiedAt), &u.RiskFloorNewDevices, &u.Locale)
	return u, err
}

func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	_, err := s.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, u.Email, u.PasswordHash, u.Admin, u.Disabled,
		u.PasswordCompromised, u.RiskFloor, nanos(u.RiskFloorUntil), u.RiskFloorReason, nanos(u.CreatedAt), nanos(u.UpdatedAt),
		u.EmailVerified, nanos(u.EmailVerifiedAt), u.RiskFloorNewDevices, u.Locale)
	if err != nil {
		return s.fail("create user", s.insertErr(err))
	}
	return nil
}

func (s *Store) UserByID(ctx context.Context, id string) (storage.User, error) {
	u, err := scanUser(s.read.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return storage.User{}, s.fail("user by id", s.noRows(err))
	}
	return u, nil
}

func (s *Store) UserByUsername(ctx context.Context, username string) (storage.User, error) {
	u, err := scanUser(s.read.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, username))
	if err != nil {
		return storage.User{}, s.fail("user by username", s.noRows(err))
	}
	return u, nil
}

func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	rows, err := s.read.query(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	us, err := list(rows, err, scanUser)
	if err != nil {
		return nil, s.fail("list users", err)
	}
	return us, nil
}

func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.read.queryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, s.fail("count users", err)
	}
	return n, nil
}

func (s *Store) UpdateUser(ctx context.Context, u storage.User) error {
	err := s.execOne(ctx, `UPDATE users SET username = ?, email = ?, password_hash = ?, admin = ?, disabled = ?,
		password_compromised = ?, risk_floor = ?, risk_floor_until = ?, risk_floor_reason = ?, updated_at = ?,
		email_verified = ?, email_verified_at = ?, risk_floor_new_devices = ?, locale = ?
		WHERE id = ?`,
		u.Username, u.Email, u.PasswordHash, u.Admin, u.Disabled,
		u.PasswordCompromised, u.RiskFloor, nanos(u.RiskFloorUntil), u.RiskFloorReason, nanos(u.UpdatedAt),
		u.EmailVerified, nanos(u.EmailVerifiedAt), u.RiskFloorNewDevices, u.Locale, u.ID)
	if err != nil {
		return s.fail("update user", s.insertErr(err))
	}
	return nil
}

func (s *Store) SetUserLocale(ctx context.Context, id, locale string) error {
	if err := s.execOne(ctx, `UPDATE users SET locale = ? WHERE id = ?`, locale, id); err != nil {
		return s.fail("set user locale", err)
	}
	return nil
}

const clientCols = `id, name, secret_hash, redirect_uris, post_logout_redirect_uris, public, native, auth_method,
	grant_types, id_token_alg, access_token_format, jwks, min_acr, strict, first_party, require_pkce,
	allow_enroll_during_step_up, refresh_reuse_interval, rate_limit, require_pushed_authorization_requests,
	dpop_bound_access_tokens, profile, backchannel_logout_uri, backchannel_logout_session_required, authorization_details_types, admin_api, created_at, updated_at`

func scanClient(sc Row) (storage.Client, error) {
	var c storage.Client
	err := sc.Scan(&c.ID, &c.Name, &c.SecretHash, js(&c.RedirectURIs), js(&c.PostLogoutRedirectURIs),
		&c.Public, &c.Native, &c.AuthMethod, js(&c.GrantTypes), &c.IDTokenAlg, &c.AccessTokenFormat,
		&c.JWKS, &c.MinACR, &c.Strict, &c.FirstParty, &c.RequirePKCE, new(bool),
		(*int64)(&c.RefreshReuseInterval), &c.RateLimit, &c.RequirePAR, &c.DPoPBoundAccessTokens, &c.Profile,
		&c.BackchannelLogoutURI, &c.BackchannelLogoutSessionRequired, js(&c.AuthorizationDetailsTypes), &c.AdminAPI,
		at(&c.CreatedAt), at(&c.UpdatedAt))
	return c, err
}

func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	_, err := s.exec(ctx, `INSERT INTO clients (`+clientCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.SecretHash, jsonOf(c.RedirectURIs), jsonOf(c.PostLogoutRedirectURIs),
		c.Public, c.Native, c.AuthMethod, jsonOf(c.GrantTypes), c.IDTokenAlg, c.AccessTokenFormat,
		c.JWKS, c.MinACR, c.Strict, c.FirstParty, c.RequirePKCE, false, // allow_enroll_during_step_up: unused since client_policies (issue 21)
		int64(c.RefreshReuseInterval), c.RateLimit, c.RequirePAR, c.DPoPBoundAccessTokens, c.Profile,
		c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired, jsonOf(c.AuthorizationDetailsTypes), c.AdminAPI,
		nanos(c.CreatedAt), nanos(c.UpdatedAt))
	if err != nil {
		return s.fail("create client", s.insertErr(err))
	}
	return nil
}

func (s *Store) ClientByID(ctx context.Context, id string) (storage.Client, error) {
	c, err := scanClient(s.read.queryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE id = ?`, id))
	if err != nil {
		return storage.Client{}, s.fail("client by id", s.noRows(err))
	}
	return c, nil
}

func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	rows, err := s.read.query(ctx, `SELECT `+clientCols+` FROM clients ORDER BY id`)
	cs, err := list(rows, err, scanClient)
	if err != nil {
		return nil, s.fail("list clients", err)
	}
	return cs, nil
}

// UpdateClient replaces every field of c.ID but CreatedAt.
func (s *Store) UpdateClient(ctx context.Context, c storage.Client) error {
	err := s.execOne(ctx, `UPDATE clients SET name = ?, secret_hash = ?, redirect_uris = ?,
		post_logout_redirect_uris = ?, public = ?, native = ?, auth_method = ?, grant_types = ?,
		id_token_alg = ?, access_token_format = ?, jwks = ?, min_acr = ?, strict = ?, first_party = ?,
		require_pkce = ?, refresh_reuse_interval = ?, rate_limit = ?,
		require_pushed_authorization_requests = ?, dpop_bound_access_tokens = ?, profile = ?,
		backchannel_logout_uri = ?, backchannel_logout_session_required = ?, authorization_details_types = ?, admin_api = ?, updated_at = ?
		WHERE id = ?`,
		c.Name, c.SecretHash, jsonOf(c.RedirectURIs), jsonOf(c.PostLogoutRedirectURIs),
		c.Public, c.Native, c.AuthMethod, jsonOf(c.GrantTypes), c.IDTokenAlg, c.AccessTokenFormat,
		c.JWKS, c.MinACR, c.Strict, c.FirstParty, c.RequirePKCE,
		int64(c.RefreshReuseInterval), c.RateLimit, c.RequirePAR, c.DPoPBoundAccessTokens, c.Profile,
		c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired, jsonOf(c.AuthorizationDetailsTypes), c.AdminAPI,
		nanos(c.UpdatedAt), c.ID)
	if err != nil {
		return s.fail("update client", err)
	}
	return nil
}

// DeleteClient deletes its Shared Signals stream and the SETs owed to it
// too: a client made again under the ID does not inherit them.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx db) error {
		if err := tx.execOne(ctx, `DELETE FROM clients WHERE id = ?`, id); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `DELETE FROM ssf_streams WHERE client_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `DELETE FROM outbox WHERE client_id = ? AND kind IN (?, ?)`,
			id, string(storage.OutboxSSFPush), string(storage.OutboxSSFPoll))
		return err
	})
	if err != nil {
		return s.fail("delete client", err)
	}
	return nil
}
