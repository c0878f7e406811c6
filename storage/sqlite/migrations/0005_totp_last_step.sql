-- RFC 6238 §5.2: a TOTP step is accepted only when it is later than the
-- user's last accepted one, so one row per user (that step) replaces the
-- set of used steps, which let an unused older step through after a newer.
CREATE TABLE totp_last_steps (
	user_id TEXT PRIMARY KEY,
	step    INTEGER NOT NULL,
	used_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO totp_last_steps (user_id, step, used_at)
	SELECT user_id, max(step), max(used_at) FROM totp_steps GROUP BY user_id;
DROP TABLE totp_steps;
