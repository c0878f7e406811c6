-- Issue 20: the durable outbox. A notification (a back-channel logout) is
-- written in the same transaction as the change it reports; workers lease
-- due rows (lease_until), so a worker killed mid-delivery loses nothing: its
-- lease runs out and the row is due again. Delivered rows are deleted.
CREATE TABLE outbox (
	id              TEXT PRIMARY KEY,
	kind            TEXT NOT NULL,
	client_id       TEXT NOT NULL,
	target          TEXT NOT NULL,
	payload         TEXT NOT NULL,
	status          TEXT NOT NULL, -- pending, failed (given up)
	attempts        BIGINT NOT NULL,
	queued_at       BIGINT NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	last_attempt_at BIGINT NOT NULL,
	last_error      TEXT NOT NULL,
	lease_owner     TEXT NOT NULL,
	lease_until     BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_client_id ON outbox (client_id, status);

-- Ending a session finds the clients and tokens issued under its sid.
CREATE INDEX refresh_families_session_id ON refresh_families (session_id);
CREATE INDEX auth_requests_session_id ON auth_requests (session_id);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- Which clients were given tokens under which session (sid), kept while the
-- session can live, so that a session ending tells an app that signed in
-- without a refresh token too, after its short-lived family is swept.
CREATE TABLE session_clients (
	sid        TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (sid, client_id)
);
CREATE INDEX session_clients_created_at ON session_clients (created_at);
