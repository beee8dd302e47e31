-- Facts about this database. 'store_id': random, written when the database is created;
-- it makes the request ids this instance gives its peers (X-Smsgw-Request) unique even
-- after the database is recreated and ids start again from 1.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
