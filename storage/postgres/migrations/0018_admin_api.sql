-- Issue 21: a client granted the admin API (/admin/api): '' none, 'read' or 'write'.
ALTER TABLE clients ADD COLUMN admin_api TEXT NOT NULL DEFAULT '';
