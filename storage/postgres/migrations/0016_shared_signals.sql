-- Issue 20: OpenID Shared Signals Framework 1.0. A client's event stream
-- (Keystep transmits), one per client; the transmitters Keystep receives
-- from; and what a received signal leaves on a user: a password marked
-- compromised, and a risk floor until a time.
CREATE TABLE ssf_streams (
	client_id            TEXT PRIMARY KEY,
	id                   TEXT NOT NULL UNIQUE,
	delivery_method      TEXT NOT NULL,
	endpoint_url         TEXT NOT NULL,
	authorization_header TEXT NOT NULL,
	audience             TEXT NOT NULL, -- JSON array
	events_requested     TEXT NOT NULL, -- JSON array
	description          TEXT NOT NULL,
	status               TEXT NOT NULL, -- enabled, paused, disabled
	reason               TEXT NOT NULL,
	created_at           BIGINT NOT NULL,
	updated_at           BIGINT NOT NULL
);

CREATE TABLE ssf_receivers (
	issuer     TEXT PRIMARY KEY,
	jwks_uri   TEXT NOT NULL,
	jwks       TEXT NOT NULL,
	audience   TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

ALTER TABLE users ADD COLUMN password_compromised BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN risk_floor TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN risk_floor_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN risk_floor_reason TEXT NOT NULL DEFAULT '';

-- Poll delivery reads a client's messages of one kind.
CREATE INDEX outbox_client_kind ON outbox (client_id, kind, queued_at);
