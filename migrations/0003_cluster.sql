-- The cluster: where a forwarded mail came from, and where a request is forwarded.
-- origin: "<instance>/<request id>" of the request at the instance that first accepted
-- it (X-Smsgw-Request); a peer that sees it again (a retried forward) keeps one copy.
ALTER TABLE messages ADD COLUMN origin TEXT;
-- The instances the mail passed through before this one, comma-separated (X-Smsgw-Trace).
ALTER TABLE messages ADD COLUMN trace TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX messages_by_origin ON messages(origin) WHERE origin IS NOT NULL;
-- The peer a 'forwarding' request goes to, and the peers that failed it already.
ALTER TABLE requests ADD COLUMN route TEXT;
ALTER TABLE requests ADD COLUMN tried TEXT NOT NULL DEFAULT '';
