-- The instance that accepted a request (`queue list --json`), as in a site's shared
-- queue on PostgreSQL; NULL for requests accepted before this migration.
ALTER TABLE requests ADD COLUMN instance TEXT;
