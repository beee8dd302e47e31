-- Two-way: each part of an incoming SMS is committed here before the modem deletes it
-- from the SIM (AT+CMGD), so a restart loses no half-received text. A long SMS becomes
-- an inbox row once its parts are all here (or its reassembly time ran out); its parts
-- then name that row, and are kept a while longer so that a copy the network delivers
-- again is recognised and kept once.
CREATE TABLE inbox_parts (
    id          INTEGER PRIMARY KEY,
    modem       TEXT    NOT NULL,
    originator  TEXT    NOT NULL,
    -- What a copy of this part has in common with it: "<reference>/<parts>/<part>" of a
    -- concatenated SMS, "<centre time stamp> <text>" of a single one.
    copy_key    TEXT    NOT NULL,
    reference   INTEGER,                  -- concatenation reference; NULL: a single SMS
    parts       INTEGER NOT NULL,
    part        INTEGER NOT NULL,         -- 1-based
    text        TEXT    NOT NULL,
    sent        TEXT    NOT NULL,         -- TP-SCTS, ISO 8601 with the centre's offset
    received    INTEGER NOT NULL,         -- unix milliseconds
    inbox_id    INTEGER REFERENCES inbox(id)
);
CREATE UNIQUE INDEX inbox_parts_once ON inbox_parts(modem, originator, copy_key);
CREATE INDEX inbox_parts_waiting ON inbox_parts(received) WHERE inbox_id IS NULL;
CREATE INDEX inbox_parts_kept ON inbox_parts(received) WHERE inbox_id IS NOT NULL;

-- An incoming SMS, whole (or what arrived of it), and the mail it becomes: decided in
-- the transaction that stores it, delivered by the notify stage like a DSN.
ALTER TABLE inbox ADD COLUMN sent TEXT;                                -- TP-SCTS of its first part
ALTER TABLE inbox ADD COLUMN parts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE inbox ADD COLUMN missing TEXT;                            -- "2,3": parts that never came; NULL: whole
ALTER TABLE inbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';       -- 'text' | 'stop' | 'start'
ALTER TABLE inbox ADD COLUMN reply_to INTEGER REFERENCES requests(id); -- the request it answers
ALTER TABLE inbox ADD COLUMN recipient TEXT;                          -- whom it is mailed to
ALTER TABLE inbox ADD COLUMN others INTEGER NOT NULL DEFAULT 0;       -- other senders who texted that number
ALTER TABLE inbox ADD COLUMN state TEXT NOT NULL DEFAULT 'kept';      -- 'pending' | 'sent' | 'dropped' | 'kept'
ALTER TABLE inbox ADD COLUMN outcome TEXT;                            -- why kept, the server's answer, or the last error
ALTER TABLE inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbox ADD COLUMN next_attempt INTEGER;
ALTER TABLE inbox ADD COLUMN instance TEXT;
UPDATE inbox SET outcome = 'received before replies were mailed';
CREATE INDEX inbox_pending ON inbox(state, next_attempt);

-- The latest request sent to a number: whom a reply from it goes to.
CREATE INDEX requests_by_number ON requests(number, id);

-- Numbers that texted a stop word (or an operator added): mail to them is refused at
-- RCPT. A number that texted a start word keeps its row, `opted_out` false, so that the
-- change reaches the peers. `seq` orders this instance's own changes for the feed its
-- peers poll (NULL for a change learnt from a peer, `origin` naming it).
CREATE TABLE optouts (
    number      TEXT    PRIMARY KEY,
    opted_out   INTEGER NOT NULL,
    changed     INTEGER NOT NULL,         -- unix milliseconds
    source      TEXT    NOT NULL,         -- what made the change, in words
    origin      TEXT,                     -- the peer it came from; NULL: this instance
    seq         INTEGER
);
CREATE UNIQUE INDEX optouts_feed ON optouts(seq);
