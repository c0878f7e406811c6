-- Issue 19: Rich Authorization Requests (RFC 9396). The types a client may
-- request, the authorization_details a request asks for, and what the person
-- approved, carried by every token of the grant. Details are stored in their
-- canonical form (RFC 8785), so equal details are equal strings.
ALTER TABLE clients ADD COLUMN authorization_details_types TEXT NOT NULL DEFAULT '[]';
ALTER TABLE auth_requests ADD COLUMN authorization_details TEXT NOT NULL DEFAULT '';
ALTER TABLE access_tokens ADD COLUMN authorization_details TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN authorization_details TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN authorization_details TEXT NOT NULL DEFAULT '';
