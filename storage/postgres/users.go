package postgres

import (
	"context"
	"fmt"

	"github.com/keystep/keystep/storage"
)

const userCols = `id, username, email, password_hash, admin, disabled, created_at, updated_at`

func scanUser(sc scanner) (storage.User, error) {
	var u storage.User
	err := sc.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &u.Admin, &u.Disabled,
		at(&u.CreatedAt), at(&u.UpdatedAt))
	return u, err
}

func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		u.ID, u.Username, u.Email, u.PasswordHash, u.Admin, u.Disabled, nanos(u.CreatedAt), nanos(u.UpdatedAt))
	if err != nil {
		return fmt.Errorf("postgres: create user: %w", insertErr(err))
	}
	return nil
}

func (s *Store) UserByID(ctx context.Context, id string) (storage.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return storage.User{}, fmt.Errorf("postgres: user by id: %w", noRows(err))
	}
	return u, nil
}

func (s *Store) UserByUsername(ctx context.Context, username string) (storage.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE username = $1`, username))
	if err != nil {
		return storage.User{}, fmt.Errorf("postgres: user by username: %w", noRows(err))
	}
	return u, nil
}

func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	us, err := list(rows, err, scanUser)
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	return us, nil
}

func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count users: %w", err)
	}
	return n, nil
}

func (s *Store) UpdateUser(ctx context.Context, u storage.User) error {
	err := execOne(ctx, s.pool, `UPDATE users SET username = $1, email = $2, password_hash = $3, admin = $4,
		disabled = $5, updated_at = $6
		WHERE id = $7`,
		u.Username, u.Email, u.PasswordHash, u.Admin, u.Disabled, nanos(u.UpdatedAt), u.ID)
	if err != nil {
		return fmt.Errorf("postgres: update user: %w", insertErr(err))
	}
	return nil
}

const clientCols = `id, name, secret_hash, redirect_uris, post_logout_redirect_uris, public, native, auth_method,
	grant_types, id_token_alg, access_token_format, jwks, min_acr, strict, first_party, require_pkce,
	allow_enroll_during_step_up, created_at, updated_at`

func scanClient(sc scanner) (storage.Client, error) {
	var c storage.Client
	err := sc.Scan(&c.ID, &c.Name, &c.SecretHash, &c.RedirectURIs, &c.PostLogoutRedirectURIs,
		&c.Public, &c.Native, &c.AuthMethod, &c.GrantTypes, &c.IDTokenAlg, &c.AccessTokenFormat,
		&c.JWKS, &c.MinACR, &c.Strict, &c.FirstParty, &c.RequirePKCE, &c.AllowEnrollDuringStepUp,
		at(&c.CreatedAt), at(&c.UpdatedAt))
	return c, err
}

func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO clients (`+clientCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		c.ID, c.Name, c.SecretHash, jsonOf(c.RedirectURIs), jsonOf(c.PostLogoutRedirectURIs),
		c.Public, c.Native, c.AuthMethod, jsonOf(c.GrantTypes), c.IDTokenAlg, c.AccessTokenFormat,
		c.JWKS, c.MinACR, c.Strict, c.FirstParty, c.RequirePKCE, c.AllowEnrollDuringStepUp,
		nanos(c.CreatedAt), nanos(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("postgres: create client: %w", insertErr(err))
	}
	return nil
}

func (s *Store) ClientByID(ctx context.Context, id string) (storage.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE id = $1`, id))
	if err != nil {
		return storage.Client{}, fmt.Errorf("postgres: client by id: %w", noRows(err))
	}
	return c, nil
}

func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientCols+` FROM clients ORDER BY id`)
	cs, err := list(rows, err, scanClient)
	if err != nil {
		return nil, fmt.Errorf("postgres: list clients: %w", err)
	}
	return cs, nil
}

// UpdateClient replaces every field of c.ID but CreatedAt.
func (s *Store) UpdateClient(ctx context.Context, c storage.Client) error {
	err := execOne(ctx, s.pool, `UPDATE clients SET name = $1, secret_hash = $2, redirect_uris = $3,
		post_logout_redirect_uris = $4, public = $5, native = $6, auth_method = $7, grant_types = $8,
		id_token_alg = $9, access_token_format = $10, jwks = $11, min_acr = $12, strict = $13, first_party = $14,
		require_pkce = $15, allow_enroll_during_step_up = $16, updated_at = $17
		WHERE id = $18`,
		c.Name, c.SecretHash, jsonOf(c.RedirectURIs), jsonOf(c.PostLogoutRedirectURIs),
		c.Public, c.Native, c.AuthMethod, jsonOf(c.GrantTypes), c.IDTokenAlg, c.AccessTokenFormat,
		c.JWKS, c.MinACR, c.Strict, c.FirstParty, c.RequirePKCE, c.AllowEnrollDuringStepUp,
		nanos(c.UpdatedAt), c.ID)
	if err != nil {
		return fmt.Errorf("postgres: update client: %w", err)
	}
	return nil
}

func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if err := execOne(ctx, s.pool, `DELETE FROM clients WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete client: %w", err)
	}
	return nil
}
