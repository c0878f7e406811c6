-- Sign-in history for the risk engine: known devices and networks per user,
-- and each user's latest sign-in (for impossible travel).
CREATE TABLE known_devices (
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	device_id  TEXT NOT NULL,
	first_seen BIGINT NOT NULL,
	last_seen  BIGINT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

CREATE TABLE known_networks (
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	network    TEXT NOT NULL,
	first_seen BIGINT NOT NULL,
	last_seen  BIGINT NOT NULL,
	PRIMARY KEY (user_id, network)
);

CREATE TABLE last_signins (
	user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	at           BIGINT NOT NULL,
	ip           TEXT NOT NULL,
	network      TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	has_location BOOLEAN NOT NULL,
	lat          DOUBLE PRECISION NOT NULL,
	lon          DOUBLE PRECISION NOT NULL,
	place        TEXT NOT NULL
);
