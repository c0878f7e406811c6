-- Issue 17: expired sessions are swept in batches (DeleteExpiredSessions).
CREATE INDEX sessions_expires_at ON sessions (expires_at);
