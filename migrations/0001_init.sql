-- One row per mail accepted: the envelope and the message as received, kept for
-- forwarding to a peer and for the DSN (RET=FULL returns it).
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    received    INTEGER NOT NULL,          -- unix milliseconds
    sender      TEXT    NOT NULL,          -- envelope MAIL FROM, "" for the null sender
    envid       TEXT,                      -- RFC 3461 ENVID
    ret         TEXT,                      -- RFC 3461 RET: 'FULL' | 'HDRS' | NULL
    client      TEXT    NOT NULL,          -- peer address of the SMTP client
    helo        TEXT    NOT NULL,
    auth_user   TEXT,                      -- authenticated user, NULL when trusted by network
    size        INTEGER NOT NULL,
    raw         BLOB    NOT NULL
);

-- One row per (mail, recipient): the unit every later stage works on.
CREATE TABLE requests (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES messages(id),
    recipient    TEXT    NOT NULL,         -- as written in RCPT TO
    number       TEXT    NOT NULL,         -- E.164
    notify       TEXT,                     -- RFC 3461 NOTIFY: 'NEVER' or e.g. 'SUCCESS,FAILURE'; NULL = default
    orcpt        TEXT,                     -- RFC 3461 ORCPT, as given
    text         TEXT    NOT NULL,
    encoding     TEXT    NOT NULL,         -- 'gsm7', 'ucs2', ...
    parts        INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    status       TEXT,                     -- enhanced status code of a failure, e.g. '5.3.0'
    reason       TEXT,                     -- words a person understands
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER,                  -- unix milliseconds; NULL = now
    lease_until  INTEGER,
    modem        TEXT,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL
);
CREATE INDEX requests_by_state ON requests(state, next_attempt, id);
CREATE INDEX requests_by_message ON requests(message_id);

-- Append-only history: every state change of a request, with its reason.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES requests(id),
    time        INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
CREATE INDEX events_by_request ON events(request_id, id);

-- The SMS parts of a request as handed to a modem. A part is 'submitting' from just
-- before AT+CMGS until +CMGS answers: a crash in between leaves it so, and the request
-- becomes 'uncertain' instead of being sent twice.
CREATE TABLE parts (
    request_id  INTEGER NOT NULL REFERENCES requests(id),
    part        INTEGER NOT NULL,          -- 1-based
    modem       TEXT    NOT NULL,
    mr          INTEGER,                   -- TP-MR from +CMGS
    status      TEXT    NOT NULL,          -- 'submitting' | 'sent' | 'delivered' | 'failed'
    submitted   INTEGER NOT NULL,
    reported    INTEGER,
    PRIMARY KEY (request_id, part)
);
CREATE INDEX parts_by_reference ON parts(modem, mr, status);

-- SMS received by a modem (delivery to mail comes later).
CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY,
    received    INTEGER NOT NULL,
    modem       TEXT    NOT NULL,
    originator  TEXT    NOT NULL,
    text        TEXT    NOT NULL
);
