-- Issue 18: pushed authorization requests (RFC 9126), DPoP (RFC 9449) and
-- the FAPI 2.0 profile.

-- Per client: only pushed requests at /authorize; access tokens only when
-- bound to a DPoP key; a named profile ("fapi2") that switches on all the
-- profile asks for.
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN profile TEXT NOT NULL DEFAULT '';

-- dpop_jkt at /authorize binds the code to a key (RFC 9449 §10).
ALTER TABLE auth_requests ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';

-- The JWK thumbprint the tokens of a grant are bound to (cnf.jkt); '' for
-- bearer tokens.
ALTER TABLE access_tokens ADD COLUMN jkt TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN jkt TEXT NOT NULL DEFAULT '';

-- A pushed authorization request: the hash of its request_uri, its
-- client, and the parameters it was validated with. Single use.
CREATE TABLE pushed_requests (
	id         TEXT PRIMARY KEY,
	client_id  TEXT NOT NULL,
	params     TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL
);
CREATE INDEX pushed_requests_expires_at ON pushed_requests (expires_at);

-- One-time tokens (client assertion, request object and DPoP proof jti)
-- are swept once expired.
CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);
