-- Sign-in history for the risk engine: known devices and networks per user,
-- and each user's latest sign-in (for impossible travel).
CREATE TABLE known_devices (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE known_networks (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    network    TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (user_id, network)
) STRICT, WITHOUT ROWID;

CREATE TABLE last_signins (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    at           INTEGER NOT NULL,
    ip           TEXT NOT NULL,
    network      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    has_location INTEGER NOT NULL,
    lat          REAL NOT NULL,
    lon          REAL NOT NULL,
    place        TEXT NOT NULL
) STRICT, WITHOUT ROWID;
