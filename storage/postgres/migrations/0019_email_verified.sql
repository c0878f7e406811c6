-- Issue 22: an email address is verified only when its owner opened the
-- single-use link sent to it; addresses set any other way are not.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN email_verified_at BIGINT NOT NULL DEFAULT 0;
