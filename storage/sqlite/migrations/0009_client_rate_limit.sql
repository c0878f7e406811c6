-- Issue 17: a token-endpoint rate limit per authenticated client, in
-- requests a second; 0 is the server's default (rate_limits.client).
ALTER TABLE clients ADD COLUMN rate_limit INTEGER NOT NULL DEFAULT 0;
