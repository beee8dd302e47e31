-- A forward whose end of data left without an answer (the connection broke or timed
-- out after the final dot): the peer in `route` may hold the request, so it is tried
-- again on that peer only, never routed elsewhere but by the operator (`queue retry`).
ALTER TABLE requests ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0;
