-- Delivery status notifications (RFC 3464) owed to senders. A row is written in the
-- same transaction as the state change it reports, so a crash never forgets one; the
-- notify stage delivers it and keeps it as history.
CREATE TABLE dsns (
    id           INTEGER PRIMARY KEY,
    request_id   INTEGER NOT NULL REFERENCES requests(id),
    action       TEXT    NOT NULL,         -- 'delivered' | 'relayed' | 'failed' | 'delayed'
    created      INTEGER NOT NULL,         -- unix milliseconds
    state        TEXT    NOT NULL,         -- 'pending' | 'sent' | 'dropped'
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT
);
CREATE INDEX dsns_pending ON dsns(state, next_attempt);
CREATE INDEX dsns_by_request ON dsns(request_id, action);
