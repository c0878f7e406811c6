-- Issue 21: policy as data. Numbered, never-changed versions of the policy
-- document, the one pointer to the active version, and the version each
-- authorization request was parsed and is decided under.
CREATE TABLE policy_versions (
	number     INTEGER PRIMARY KEY,
	document   TEXT NOT NULL,
	parent     INTEGER NOT NULL,
	author     TEXT NOT NULL,
	reason     TEXT NOT NULL,
	diff       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE policy_active (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	number INTEGER NOT NULL REFERENCES policy_versions (number)
) STRICT;

ALTER TABLE auth_requests ADD COLUMN policy_version INTEGER NOT NULL DEFAULT 0;
