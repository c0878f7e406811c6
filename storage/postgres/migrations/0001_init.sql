-- Keystep schema, version 1 (PostgreSQL).
-- Times are BIGINT unix nanoseconds (0 = zero time), as in the SQLite backend:
-- timestamptz keeps microseconds only. Lists and maps are JSONB. Text that is
-- sorted or range-scanned is COLLATE "C", so order is bytewise whatever the
-- database's default collation is.

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	username      TEXT COLLATE "C" NOT NULL UNIQUE,
	email         TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	admin         BOOLEAN NOT NULL,
	disabled      BOOLEAN NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);

CREATE TABLE clients (
	id                          TEXT COLLATE "C" PRIMARY KEY,
	name                        TEXT NOT NULL,
	secret_hash                 TEXT NOT NULL,
	redirect_uris               JSONB NOT NULL,
	post_logout_redirect_uris   JSONB NOT NULL,
	public                      BOOLEAN NOT NULL,
	native                      BOOLEAN NOT NULL,
	auth_method                 TEXT NOT NULL,
	grant_types                 JSONB NOT NULL,
	id_token_alg                TEXT NOT NULL,
	access_token_format         TEXT NOT NULL,
	jwks                        TEXT NOT NULL,
	min_acr                     TEXT NOT NULL,
	strict                      BOOLEAN NOT NULL,
	first_party                 BOOLEAN NOT NULL,
	require_pkce                BOOLEAN NOT NULL,
	allow_enroll_during_step_up BOOLEAN NOT NULL,
	created_at                  BIGINT NOT NULL,
	updated_at                  BIGINT NOT NULL
);

CREATE TABLE auth_requests (
	id                    TEXT PRIMARY KEY,
	client_id             TEXT NOT NULL,
	redirect_uri          TEXT NOT NULL,
	scopes                JSONB NOT NULL,
	response_type         TEXT NOT NULL,
	response_mode         TEXT NOT NULL,
	state                 TEXT NOT NULL,
	nonce                 TEXT NOT NULL,
	code_challenge        TEXT NOT NULL,
	code_challenge_method TEXT NOT NULL,
	prompt                JSONB NOT NULL,
	max_age               BIGINT, -- NULL when absent
	acr_values            JSONB NOT NULL,
	claims                TEXT NOT NULL,
	login_hint            TEXT NOT NULL,
	id_token_hint_subject TEXT NOT NULL,
	ui_locales            JSONB NOT NULL,
	browser_binding       TEXT NOT NULL,
	created_at            BIGINT NOT NULL,
	expires_at            BIGINT NOT NULL,
	done                  BOOLEAN NOT NULL,
	subject               TEXT NOT NULL,
	acr                   TEXT NOT NULL,
	amr                   JSONB NOT NULL,
	auth_time             BIGINT NOT NULL,
	session_id            TEXT NOT NULL,
	code_hash             TEXT UNIQUE, -- NULL until SaveAuthCode
	code_expires_at       BIGINT NOT NULL,
	code_used_at          BIGINT NOT NULL, -- 0 until ConsumeAuthCode succeeds
	failed_attempts       INTEGER NOT NULL
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE sessions (
	id         TEXT COLLATE "C" PRIMARY KEY,
	user_id    TEXT NOT NULL,
	factors    JSONB NOT NULL,
	ip         TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	last_seen  BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);

-- A token's grant columns are fixed when it is created.
CREATE TABLE refresh_tokens (
	id         TEXT PRIMARY KEY,
	family_id  TEXT NOT NULL,
	grant_id   TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	subject    TEXT NOT NULL,
	scopes     JSONB NOT NULL,
	audience   JSONB NOT NULL,
	acr        TEXT NOT NULL,
	amr        JSONB NOT NULL,
	auth_time  BIGINT NOT NULL,
	session_id TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL,
	revoked    BOOLEAN NOT NULL
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject, client_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE access_tokens (
	id         TEXT PRIMARY KEY,
	grant_id   TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	subject    TEXT NOT NULL,
	scopes     JSONB NOT NULL,
	audience   JSONB NOT NULL,
	acr        TEXT NOT NULL,
	amr        JSONB NOT NULL,
	auth_time  BIGINT NOT NULL,
	session_id TEXT NOT NULL,
	refresh_id TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked    BOOLEAN NOT NULL
);
CREATE INDEX access_tokens_refresh_id ON access_tokens (refresh_id);
CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id);
CREATE INDEX access_tokens_subject ON access_tokens (subject, client_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

CREATE TABLE signing_keys (
	id         TEXT COLLATE "C" PRIMARY KEY,
	algorithm  TEXT NOT NULL,
	private    BYTEA NOT NULL,
	public     BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	active_at  BIGINT NOT NULL,
	retired_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);

CREATE TABLE factors (
	id           TEXT COLLATE "C" PRIMARY KEY,
	user_id      TEXT NOT NULL,
	kind         TEXT NOT NULL,
	name         TEXT NOT NULL,
	secret       BYTEA NOT NULL,
	created_at   BIGINT NOT NULL,
	last_used_at BIGINT NOT NULL
);
CREATE INDEX factors_user_id ON factors (user_id, created_at);

-- NIST SP 800-63B §5.1.4.2: each TOTP time step is accepted once per user.
CREATE TABLE totp_steps (
	user_id TEXT NOT NULL,
	step    BIGINT NOT NULL,
	used_at BIGINT NOT NULL,
	PRIMARY KEY (user_id, step)
);

CREATE TABLE recovery_codes (
	user_id    TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL, -- 0 while unused
	PRIMARY KEY (user_id, hash)
);

CREATE TABLE consents (
	user_id    TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	scopes     JSONB NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (user_id, client_id)
);

CREATE TABLE one_time_tokens (
	kind       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL, -- 0 while unspent
	PRIMARY KEY (kind, hash)
);

-- Append-only: rows are never updated or deleted by Keystep. Appends are
-- serialised by a transaction-level advisory lock (see audit.go).
CREATE TABLE audit_events (
	seq        BIGINT PRIMARY KEY,
	time       BIGINT NOT NULL,
	type       TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	actor_id   TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	ip         TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	outcome    TEXT NOT NULL,
	reason     TEXT NOT NULL,
	details    JSONB NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL
);
CREATE INDEX audit_events_user_id ON audit_events (user_id, seq);
CREATE INDEX audit_events_time ON audit_events (time);
