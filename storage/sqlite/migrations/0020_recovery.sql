-- Issue 22: self-service recovery. A "forgot password" link (hashed, bound
-- to the browser that asked), requests to replace lost second factors
-- after a cooling-off, and a risk floor that holds for new devices only.
CREATE TABLE password_resets (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL,
	browser_hash TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	factor_at    INTEGER NOT NULL DEFAULT 0,
	used_at      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX password_resets_expires ON password_resets (expires_at);

CREATE TABLE recovery_requests (
	id          TEXT PRIMARY KEY,
	user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at  INTEGER NOT NULL,
	eligible_at INTEGER NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('pending', 'cancelled', 'approved', 'denied', 'used')),
	decided_by  TEXT NOT NULL DEFAULT '',
	reason      TEXT NOT NULL DEFAULT '',
	decided_at  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX recovery_requests_user ON recovery_requests (user_id, created_at);
CREATE INDEX recovery_requests_status ON recovery_requests (status, created_at);

CREATE INDEX users_email ON users (lower(email));
ALTER TABLE users ADD COLUMN risk_floor_new_devices INTEGER NOT NULL DEFAULT 0;
