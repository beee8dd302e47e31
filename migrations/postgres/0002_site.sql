-- A site: several instances share this database. Every connection of an instance sets
-- `smsgw.instance` to its name; the columns below that say which instance wrote a row
-- default to it.

-- The instance that accepted a request (`queue list --json`).
ALTER TABLE requests ADD COLUMN instance TEXT;
ALTER TABLE requests ALTER COLUMN instance SET DEFAULT current_setting('smsgw.instance', true);
-- The instance whose modem holds the request's lease (`sending`), or whose forward is
-- in flight: at start an instance recovers only its own.
ALTER TABLE requests ADD COLUMN owner TEXT;
-- The instance that queued a DSN (whose modem sent or failed the request, or that made
-- the decision) delivers it, so that it goes out once; a dead instance's are taken over.
ALTER TABLE dsns ADD COLUMN instance TEXT;
ALTER TABLE dsns ALTER COLUMN instance SET DEFAULT current_setting('smsgw.instance', true);

-- The instances of the site. A live instance holds a session advisory lock on its
-- name (two cannot share one) and writes `seen` every second, on the server's clock;
-- one not seen for 5 s is dead, and the others recover what it held.
CREATE TABLE instances (
    name    TEXT   PRIMARY KEY,
    started BIGINT NOT NULL,
    seen    BIGINT NOT NULL
);

-- Every instance's modems, with their tariffs and health, so that each instance routes
-- and dispatches for the whole site. A modem name is unique in the site.
CREATE TABLE modems (
    name     TEXT    PRIMARY KEY,
    instance TEXT    NOT NULL,
    tariff   TEXT    NOT NULL,                -- JSON: {"+33": 0.05, ...}
    ready    BOOLEAN NOT NULL,
    seen     BIGINT  NOT NULL
);

-- Each live instance's abuse-limit counts (security.per_minute, per_day,
-- numbers_per_day), replaced every second: each instance adds the others' to its own,
-- so a user's limits hold for the whole site.
CREATE TABLE usage (
    instance TEXT   NOT NULL,
    who      TEXT   NOT NULL,
    minute   BIGINT NOT NULL,
    day      BIGINT NOT NULL,
    numbers  BIGINT NOT NULL,
    PRIMARY KEY (instance, who)
);
