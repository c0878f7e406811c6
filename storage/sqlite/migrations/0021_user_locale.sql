-- Issue 24: the language a person chose for Keystep's pages and emails
-- (a BCP 47 tag such as "de"; '' for none: their browser decides).
ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT '';
