-- Throttling: one row per recorded authentication failure. A key's state is
-- computed from its rows, so sliding windows are exact. key is COLLATE "C":
-- DistinctAccountsFromIP scans an IP's keys as a bytewise range.
CREATE TABLE throttle_failures (
	scope TEXT NOT NULL,
	key   TEXT COLLATE "C" NOT NULL,
	at    BIGINT NOT NULL
);
CREATE INDEX throttle_failures_key ON throttle_failures (scope, key, at);
CREATE INDEX throttle_failures_at ON throttle_failures (at);
