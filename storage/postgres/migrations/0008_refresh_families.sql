-- Issue 17: one row per token family, updated in place by each rotation, so
-- refreshing does not grow the database. A refresh token names its family
-- and generation and carries a MAC over both, so no secret is stored; any
-- lower generation presented later is reuse. JWT access tokens get no row:
-- they name their family and are live while it is.
CREATE TABLE refresh_families (
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
	generation BIGINT NOT NULL,
	rotated_at BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked    BOOLEAN NOT NULL,
	-- the generation and time of the family's last token.issued row: a
	-- refresh is summarised in the audit log at most once an hour per family
	audited_generation BIGINT NOT NULL DEFAULT 0,
	audited_at         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_families_grant_id ON refresh_families (grant_id);
CREATE INDEX refresh_families_subject ON refresh_families (subject, client_id);
CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at);

-- A JWT access token revoked on its own (RFC 7009), kept until it expired.
CREATE TABLE revoked_access_tokens (
	id         TEXT PRIMARY KEY,
	expires_at BIGINT NOT NULL
);

-- How long a rotated refresh token may be presented again by its client for
-- the same successor (nanoseconds; 0 is the default, negative none).
ALTER TABLE clients ADD COLUMN refresh_reuse_interval BIGINT NOT NULL DEFAULT 0;
