-- A forward taken by the forwarding stage and not yet recorded: its end of data may
-- have left. Set when the request is taken, cleared by every recorded outcome; one
-- still set at start was cut off by a stop or a crash, so the peer in `route` may hold
-- it and it is marked `unanswered` (tried on that peer only).
ALTER TABLE requests ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
