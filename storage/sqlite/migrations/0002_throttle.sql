-- Throttling: one row per recorded authentication failure. A key's state is
-- computed from its rows, so sliding windows are exact.
CREATE TABLE throttle_failures (
	scope TEXT NOT NULL,
	key   TEXT NOT NULL,
	at    INTEGER NOT NULL
) STRICT;
CREATE INDEX throttle_failures_key ON throttle_failures (scope, key, at);
CREATE INDEX throttle_failures_at ON throttle_failures (at);
