-- Keystep schema, version 1.
-- Times are INTEGER unix nanoseconds (0 = zero time), booleans INTEGER 0/1,
-- lists and maps JSON text.

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	username      TEXT NOT NULL UNIQUE,
	email         TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	admin         INTEGER NOT NULL,
	disabled      INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE clients (
	id                          TEXT PRIMARY KEY,
	name                        TEXT NOT NULL,
	secret_hash                 TEXT NOT NULL,
	redirect_uris               TEXT NOT NULL,
	post_logout_redirect_uris   TEXT NOT NULL,
	public                      INTEGER NOT NULL,
	native                      INTEGER NOT NULL,
	auth_method                 TEXT NOT NULL,
	grant_types                 TEXT NOT NULL,
	id_token_alg                TEXT NOT NULL,
	access_token_format         TEXT NOT NULL,
	jwks                        TEXT NOT NULL,
	min_acr                     TEXT NOT NULL,
	strict                      INTEGER NOT NULL,
	first_party                 INTEGER NOT NULL,
	require_pkce                INTEGER NOT NULL,
	allow_enroll_during_step_up INTEGER NOT NULL,
	created_at                  INTEGER NOT NULL,
	updated_at                  INTEGER NOT NULL
) STRICT;

CREATE TABLE auth_requests (
	id                    TEXT PRIMARY KEY,
	client_id             TEXT NOT NULL,
	redirect_uri          TEXT NOT NULL,
	scopes                TEXT NOT NULL,
	response_type         TEXT NOT NULL,
	response_mode         TEXT NOT NULL,
	state                 TEXT NOT NULL,
	nonce                 TEXT NOT NULL,
	code_challenge        TEXT NOT NULL,
	code_challenge_method TEXT NOT NULL,
	prompt                TEXT NOT NULL,
	max_age               INTEGER, -- NULL when absent
	acr_values            TEXT NOT NULL,
	claims                TEXT NOT NULL,
	login_hint            TEXT NOT NULL,
	id_token_hint_subject TEXT NOT NULL,
	ui_locales            TEXT NOT NULL,
	browser_binding       TEXT NOT NULL,
	created_at            INTEGER NOT NULL,
	expires_at            INTEGER NOT NULL,
	done                  INTEGER NOT NULL,
	subject               TEXT NOT NULL,
	acr                   TEXT NOT NULL,
	amr                   TEXT NOT NULL,
	auth_time             INTEGER NOT NULL,
	session_id            TEXT NOT NULL,
	code_hash             TEXT, -- NULL until SaveAuthCode
	code_expires_at       INTEGER NOT NULL,
	code_used_at          INTEGER NOT NULL, -- 0 until ConsumeAuthCode succeeds
	failed_attempts       INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX auth_requests_code_hash ON auth_requests (code_hash);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL,
	factors    TEXT NOT NULL,
	ip         TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);

-- A token's grant columns are fixed when it is created.
CREATE TABLE refresh_tokens (
	id         TEXT PRIMARY KEY,
	family_id  TEXT NOT NULL,
	grant_id   TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	subject    TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	audience   TEXT NOT NULL,
	acr        TEXT NOT NULL,
	amr        TEXT NOT NULL,
	auth_time  INTEGER NOT NULL,
	session_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL,
	revoked    INTEGER NOT NULL
) STRICT;
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject, client_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE access_tokens (
	id         TEXT PRIMARY KEY,
	grant_id   TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	subject    TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	audience   TEXT NOT NULL,
	acr        TEXT NOT NULL,
	amr        TEXT NOT NULL,
	auth_time  INTEGER NOT NULL,
	session_id TEXT NOT NULL,
	refresh_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked    INTEGER NOT NULL
) STRICT;
CREATE INDEX access_tokens_refresh_id ON access_tokens (refresh_id);
CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id);
CREATE INDEX access_tokens_subject ON access_tokens (subject, client_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

CREATE TABLE signing_keys (
	id         TEXT PRIMARY KEY,
	algorithm  TEXT NOT NULL,
	private    BLOB NOT NULL,
	public     BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	active_at  INTEGER NOT NULL,
	retired_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE factors (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL,
	kind         TEXT NOT NULL,
	name         TEXT NOT NULL,
	secret       BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER NOT NULL
) STRICT;
CREATE INDEX factors_user_id ON factors (user_id, created_at);

-- NIST SP 800-63B §5.1.4.2: each TOTP time step is accepted once per user.
CREATE TABLE totp_steps (
	user_id TEXT NOT NULL,
	step    INTEGER NOT NULL,
	used_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, step)
) STRICT;

CREATE TABLE recovery_codes (
	user_id    TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL, -- 0 while unused
	PRIMARY KEY (user_id, hash)
) STRICT;

CREATE TABLE consents (
	user_id    TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, client_id)
) STRICT;

CREATE TABLE one_time_tokens (
	kind       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL, -- 0 while unspent
	PRIMARY KEY (kind, hash)
) STRICT;

-- Append-only: rows are never updated or deleted by Keystep.
CREATE TABLE audit_events (
	seq        INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL,
	type       TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	actor_id   TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	ip         TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	outcome    TEXT NOT NULL,
	reason     TEXT NOT NULL,
	details    TEXT NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_user_id ON audit_events (user_id, seq);
CREATE INDEX audit_events_time ON audit_events (time);
