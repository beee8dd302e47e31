-- The modem dispatcher asks, for each free modem, for the oldest queued request it may
-- send. Both indexes hold queued requests only, in id order (oldest first):
-- by lane, the first three characters of the number ("+44", "+33", "+1X"), for a modem
-- whose tariff names prefixes (one probe per lane its prefixes cover, so requests it
-- cannot send are never read); and all of them, for a modem whose tariff has "+".
CREATE INDEX requests_queued_by_lane ON requests(substr(number, 1, 3), id) WHERE state = 'queued';
CREATE INDEX requests_queued_by_id ON requests(id) WHERE state = 'queued';
