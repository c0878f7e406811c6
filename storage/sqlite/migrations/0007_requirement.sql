-- Issue 16, parse once: what a request asks of authentication is parsed and
-- merged at /authorize and stored typed (storage.Requirement as JSON); the
-- raw claims parameter is no longer kept. A request made before this
-- version has no requirement (NULL) and fails closed when read: such
-- requests live ten minutes, the user starts again from the app.
ALTER TABLE auth_requests DROP COLUMN claims;
ALTER TABLE auth_requests ADD COLUMN requirement TEXT;
