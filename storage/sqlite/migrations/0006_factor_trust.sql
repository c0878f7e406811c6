-- Issue 15, design rule A: when a passkey or security key started to count
-- as phishing-resistant (unix nanoseconds); 0 while it counts as mfa only.
-- Credentials added before this version keep what they had: trusted since
-- they were added.
ALTER TABLE factors ADD COLUMN trusted_at INTEGER NOT NULL DEFAULT 0;
UPDATE factors SET trusted_at = created_at WHERE kind = 'webauthn';
-- When the session that added a factor began: a device or network first
-- seen in that session does not vouch for the factor (0 when unknown).
ALTER TABLE factors ADD COLUMN added_in_session_at INTEGER NOT NULL DEFAULT 0;
