-- Issue 21: policy as data. Numbered, never-changed versions of the policy
-- document, the one pointer to the active version, and the version each
-- authorization request was parsed and is decided under.
CREATE TABLE policy_versions (
	number     BIGINT PRIMARY KEY,
	document   TEXT NOT NULL,
	parent     BIGINT NOT NULL,
	author     TEXT NOT NULL,
	reason     TEXT NOT NULL,
	diff       TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE policy_active (
	id     BIGINT PRIMARY KEY CHECK (id = 1),
	number BIGINT NOT NULL REFERENCES policy_versions (number)
);

ALTER TABLE auth_requests ADD COLUMN policy_version BIGINT NOT NULL DEFAULT 0;
