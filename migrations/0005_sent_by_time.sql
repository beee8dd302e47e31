-- Requests by state and time of their last change: the DSN stage looks for those sent
-- without a status report for too long, among only those that crossed the line since
-- it last looked.
CREATE INDEX requests_by_state_updated ON requests(state, updated);
