//! State transitions: one function each, one statement per row changed, and an event
//! appended for every change so that `queue show` tells the whole story.

use rusqlite::{Connection, params};

use super::dsn::{self, DsnAction};
use super::{State, StoreError};

/// A mail accepted at end of DATA, with its recipients already parsed.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<&'static str>,
    pub client: String,
    pub helo: String,
    pub auth_user: Option<String>,
    pub raw: Vec<u8>,
    pub text: String,
    pub encoding: String,
    pub parts: usize,
    pub requests: Vec<NewRequest>,
    /// A forwarded mail: where it was first accepted ("<instance>/<request id>").
    pub origin: Option<String>,
    /// A forwarded mail: the instances it passed through before this one.
    pub trace: Vec<String>,
}

/// One recipient of a mail: becomes one request.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub recipient: String,
    pub number: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// `∅ → received`: the mail and one request per recipient.
pub(super) fn receive(conn: &Connection, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
    if let Some(origin) = &mail.origin {
        // A peer retrying a forward we already took: the same request, not a new one.
        let known: Vec<i64> = conn
            .prepare_cached("SELECT r.id FROM requests r JOIN messages m ON m.id = r.message_id WHERE m.origin = ?1")?
            .query_map(params![origin], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        if !known.is_empty() {
            return Ok(known);
        }
    }
    conn.prepare_cached(
        "INSERT INTO messages (received, sender, envid, ret, client, helo, auth_user, size, raw, origin, trace)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        now,
        mail.sender,
        mail.envid,
        mail.ret,
        mail.client,
        mail.helo,
        mail.auth_user,
        mail.raw.len() as i64,
        mail.raw,
        mail.origin,
        mail.trace.join(",")
    ])?;
    let message_id = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO requests (message_id, recipient, number, notify, orcpt, text, encoding,
                               parts, state, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
    )?;
    let mut ids = Vec::with_capacity(mail.requests.len());
    for request in &mail.requests {
        insert.execute(params![
            message_id,
            request.recipient,
            request.number,
            request.notify,
            request.orcpt,
            mail.text,
            mail.encoding,
            mail.parts as i64,
            State::Received.as_str(),
            now
        ])?;
        let id = conn.last_insert_rowid();
        let mut detail = format!(
            "from <{}> via {} ({}), {} part(s) {}",
            mail.sender, mail.client, mail.helo, mail.parts, mail.encoding
        );
        if let Some(origin) = &mail.origin {
            detail.push_str(&format!(
                ", forwarded: request {origin}, through {}",
                mail.trace.join(", ")
            ));
        }
        event(conn, id, now, State::Received, &detail)?;
        ids.push(id);
    }
    Ok(ids)
}

fn event(conn: &Connection, request: i64, now: i64, state: State, detail: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO events (request_id, time, state, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![request, now, state.as_str(), detail])?;
    Ok(())
}

/// Moves a request from one of `from` to `to` and records why; false if it was not in
/// any of `from` (someone else moved it first).
pub(super) fn transition(
    conn: &Connection,
    id: i64,
    from: &[State],
    to: State,
    now: i64,
    detail: &str,
) -> Result<bool, StoreError> {
    // State names are our own constants, so they can be spelt into the statement.
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "UPDATE requests SET state = ?1, updated = ?2 WHERE id = ?3 AND state IN ({})",
        from.join(",")
    );
    let changed = conn.prepare_cached(&sql)?.execute(params![to.as_str(), now, id])?;
    if changed == 1 {
        event(conn, id, now, to, detail)?;
    }
    Ok(changed == 1)
}

/// `received → queued` for every received request: with no peers, this instance's
/// modems are the only route.
pub(super) fn queue_received(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    // Set-wise: under load one statement moves a whole batch.
    conn.prepare_cached(
        "INSERT INTO events (request_id, time, state, detail)
         SELECT id, ?1, 'queued', 'routed to this instance''s modems' FROM requests WHERE state = 'received'",
    )?
    .execute(params![now])?;
    let moved = conn
        .prepare_cached("UPDATE requests SET state = 'queued', updated = ?1 WHERE state = 'received'")?
        .execute(params![now])?;
    Ok(moved)
}

/// A request waiting for a modem.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub id: i64,
    pub number: String,
    pub text: String,
    pub parts: usize,
    pub attempts: i64,
    pub created: i64,
    /// Parts that reached the network in an earlier attempt: never sent again.
    pub sent_parts: Vec<usize>,
    /// The modem of the last attempt: after a temporary failure, another one is preferred.
    pub last_modem: Option<String>,
}

/// Queued requests that are due, oldest first.
pub(super) fn waiting(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Waiting>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, number, text, parts, attempts, created, modem,
                (SELECT group_concat(part) FROM parts
                 WHERE request_id = requests.id AND status IN ('sent', 'delivered'))
         FROM requests
         WHERE state = 'queued' AND (next_attempt IS NULL OR next_attempt <= ?1)
         ORDER BY id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit as i64], |row| {
        let sent: Option<String> = row.get(7)?;
        Ok(Waiting {
            id: row.get(0)?,
            number: row.get(1)?,
            text: row.get(2)?,
            parts: row.get::<_, i64>(3)? as usize,
            attempts: row.get(4)?,
            created: row.get(5)?,
            last_modem: row.get(6)?,
            sent_parts: sent
                .iter()
                .flat_map(|s| s.split(','))
                .filter_map(|p| p.parse().ok())
                .collect(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the next queued request becomes due, if any is waiting for time.
pub(super) fn next_due(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_attempt) FROM requests WHERE state = 'queued'")?
        .query_row([], |row| row.get(0))?)
}

/// `queued → sending` on `modem`, leased until `lease_until`.
pub(super) fn claim(conn: &Connection, id: i64, modem: &str, lease_until: i64, now: i64) -> Result<bool, StoreError> {
    if !transition(
        conn,
        id,
        &[State::Queued],
        State::Sending,
        now,
        &format!("claimed by modem {modem}"),
    )? {
        return Ok(false);
    }
    conn.prepare_cached("UPDATE requests SET modem = ?1, lease_until = ?2, attempts = attempts + 1 WHERE id = ?3")?
        .execute(params![modem, lease_until, id])?;
    Ok(true)
}

/// Just before `AT+CMGS` for one part: from here a crash makes the request uncertain.
pub(super) fn part_submitting(
    conn: &Connection,
    id: i64,
    part: usize,
    modem: &str,
    lease_until: i64,
    now: i64,
) -> Result<bool, StoreError> {
    // Only the modem that still holds the lease may send: one whose lease ran out (and
    // whose request went back to the queue) must not send it a second time.
    let held = conn
        .prepare_cached(
            "UPDATE requests SET lease_until = ?1
             WHERE id = ?2 AND state = 'sending' AND modem = ?3 AND lease_until >= ?4",
        )?
        .execute(params![lease_until, id, modem, now])?;
    if held == 0 {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO parts (request_id, part, modem, status, submitted) VALUES (?1, ?2, ?3, 'submitting', ?4)
         ON CONFLICT (request_id, part) DO UPDATE SET modem = ?3, mr = NULL, status = 'submitting', submitted = ?4, reported = NULL",
    )?
    .execute(params![id, part as i64, modem, now])?;
    Ok(true)
}

/// `+CMGS: <mr>` came back for one part; once every part is in, the request is `sent`.
pub(super) fn part_sent(
    conn: &Connection,
    id: i64,
    part: usize,
    parts: usize,
    mr: u8,
    unreported: bool,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE parts SET mr = ?1, status = 'sent' WHERE request_id = ?2 AND part = ?3")?
        .execute(params![mr, id, part as i64])?;
    sent_if_complete(conn, id, parts, unreported, now)
}

/// `sending → sent` when every part reached the network, whatever the order they went
/// in (a retried request resends only the parts it lacks); `unreported`: the modem gets
/// no status reports, so the sender's `relayed` DSN is due now.
pub(super) fn sent_if_complete(
    conn: &Connection,
    id: i64,
    parts: usize,
    unreported: bool,
    now: i64,
) -> Result<(), StoreError> {
    let in_network: i64 = conn
        .prepare_cached("SELECT count(*) FROM parts WHERE request_id = ?1 AND status IN ('sent', 'delivered')")?
        .query_row(params![id], |row| row.get(0))?;
    if in_network < parts as i64 {
        return Ok(());
    }
    let detail = if parts == 1 {
        "sent".to_string()
    } else {
        format!("all {parts} parts sent")
    };
    if transition(conn, id, &[State::Sending], State::Sent, now, &detail)? {
        conn.prepare_cached("UPDATE requests SET reason = NULL WHERE id = ?1")?
            .execute(params![id])?;
        if unreported {
            dsn::queue_for(conn, id, DsnAction::Relayed, now)?;
        }
    }
    Ok(())
}

/// A temporary failure: back to the queue until `next_attempt`; parts not yet sent are
/// forgotten (a part already sent is never sent again: the whole request restarts only
/// when none was).
pub(super) fn requeue(conn: &Connection, id: i64, next_attempt: i64, reason: &str, now: i64) -> Result<(), StoreError> {
    if transition(conn, id, &[State::Sending], State::Queued, now, reason)? {
        conn.prepare_cached("DELETE FROM parts WHERE request_id = ?1 AND status = 'submitting'")?
            .execute(params![id])?;
        // The reason stays until the request is sent: a `delayed` DSN tells it.
        conn.prepare_cached("UPDATE requests SET next_attempt = ?1, lease_until = NULL, reason = ?2 WHERE id = ?3")?
            .execute(params![next_attempt, reason, id])?;
    }
    Ok(())
}

/// A permanent failure, or validity run out (`to` = `Expired`).
pub(super) fn fail(
    conn: &Connection,
    id: i64,
    to: State,
    status: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    let from = [
        State::Received,
        State::Forwarding,
        State::Queued,
        State::Sending,
        State::Sent,
    ];
    if transition(conn, id, &from, to, now, &format!("{status} {reason}"))? {
        conn.prepare_cached("UPDATE requests SET status = ?1, reason = ?2, lease_until = NULL WHERE id = ?3")?
            .execute(params![status, reason, id])?;
        dsn::queue_for(conn, id, DsnAction::Failed, now)?;
    }
    Ok(())
}

/// `AT+CMGS` went out but no `+CMGS` came back: maybe sent, maybe not. Not resent
/// unless an operator says so (`smsgw queue retry`).
pub(super) fn uncertain(conn: &Connection, id: i64, reason: &str, now: i64) -> Result<(), StoreError> {
    if transition(conn, id, &[State::Sending], State::Uncertain, now, reason)? {
        conn.prepare_cached("UPDATE requests SET lease_until = NULL, reason = ?1 WHERE id = ?2")?
            .execute(params![reason, id])?;
    }
    Ok(())
}

/// A status report for (modem, mr, number): marks its part, and the request once every
/// part is delivered or one failed. Returns the request id it matched.
pub(super) fn report(
    conn: &Connection,
    modem: &str,
    mr: u8,
    number: &str,
    delivered: bool,
    detail: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    // References wrap at 256: the most recent part with this one is meant. SMS centres
    // may write the recipient in national form: its last eight digits must match.
    let found: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT p.request_id, p.part FROM parts p JOIN requests r ON r.id = p.request_id
             WHERE p.modem = ?1 AND p.mr = ?2 AND p.status = 'sent' AND substr(r.number, -8) = substr(?3, -8)
             ORDER BY p.submitted DESC LIMIT 1",
        )?
        .query_row(params![modem, mr, number], |row| Ok((row.get(0)?, row.get(1)?)))
        .map(Some)
        .or_else(|e| {
            if e == rusqlite::Error::QueryReturnedNoRows {
                Ok(None)
            } else {
                Err(e)
            }
        })?;
    let Some((id, part)) = found else { return Ok(None) };
    let status = if delivered { "delivered" } else { "failed" };
    conn.prepare_cached("UPDATE parts SET status = ?1, reported = ?2 WHERE request_id = ?3 AND part = ?4")?
        .execute(params![status, now, id, part])?;
    if !delivered {
        fail(
            conn,
            id,
            State::Failed,
            "5.4.0",
            &format!("part {part} not delivered: {detail}"),
            now,
        )?;
        return Ok(Some(id));
    }
    let pending: i64 = conn
        .prepare_cached("SELECT count(*) FROM parts WHERE request_id = ?1 AND status != 'delivered'")?
        .query_row(params![id], |row| row.get(0))?;
    if pending == 0 && transition(conn, id, &[State::Sent], State::Delivered, now, detail)? {
        dsn::queue_for(conn, id, DsnAction::Delivered, now)?;
    }
    Ok(Some(id))
}

/// At start, or when a lease ran out: requests left `sending` by a crash go back to the
/// queue if no part had reached the modem, else become uncertain.
pub(super) fn recover(conn: &Connection, lease_before: i64, now: i64) -> Result<usize, StoreError> {
    let stuck: Vec<(i64, bool)> = conn
        .prepare_cached(
            "SELECT id, EXISTS (SELECT 1 FROM parts WHERE request_id = requests.id AND status = 'submitting')
             FROM requests WHERE state = 'sending' AND lease_until < ?1",
        )?
        .query_map(params![lease_before], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    // Parts already `sent` are kept and never sent again; only a part caught between
    // AT+CMGS and its answer makes the request uncertain.
    for &(id, reached_modem) in &stuck {
        if reached_modem {
            uncertain(
                conn,
                id,
                "interrupted after AT+CMGS without an answer: may have been sent",
                now,
            )?;
        } else {
            requeue(conn, id, now, "interrupted before any part reached the modem", now)?;
        }
    }
    Ok(stuck.len())
}

/// Requests waiting (for a modem, or for a route) longer than their validity:
/// `expired` instead of sent late.
pub(super) fn expire_overdue(conn: &Connection, validity_ms: i64, now: i64) -> Result<usize, StoreError> {
    let overdue: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM requests WHERE state IN ('queued', 'received') AND coalesce(valid_from, created) < ?1",
        )?
        .query_map(params![now - validity_ms], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for &id in &overdue {
        fail(conn, id, State::Expired, "4.4.7", "not sent within its validity", now)?;
    }
    Ok(overdue.len())
}

/// `smsgw queue retry`: an uncertain, failed or expired request is sent again, on purpose.
/// One the network already took part of stays with this instance's modems (its parts
/// are not sent again); any other is routed afresh, in a cluster perhaps elsewhere.
pub(super) fn retry(conn: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    let from = [State::Uncertain, State::Failed, State::Expired];
    let started: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM parts WHERE request_id = ?1 AND status IN ('sent', 'delivered', 'submitting'))",
        )?
        .query_row(params![id], |row| row.get(0))?;
    let to = if started { State::Queued } else { State::Received };
    if !transition(conn, id, &from, to, now, "retried by the operator")? {
        return Ok(false);
    }
    // A new try gets a whole validity period of its own.
    conn.prepare_cached("UPDATE requests SET tried = '', route = NULL, valid_from = ?1 WHERE id = ?2")?
        .execute(params![now, id])?;
    // Parts the network accepted are not sent again; the uncertain one is.
    conn.prepare_cached("DELETE FROM parts WHERE request_id = ?1 AND status NOT IN ('sent', 'delivered')")?
        .execute(params![id])?;
    conn.prepare_cached("UPDATE requests SET next_attempt = NULL, status = NULL, reason = NULL WHERE id = ?1")?
        .execute(params![id])?;
    Ok(true)
}

/// An SMS received by a modem.
pub(super) fn inbox(conn: &Connection, modem: &str, originator: &str, text: &str, now: i64) -> Result<i64, StoreError> {
    conn.prepare_cached("INSERT INTO inbox (received, modem, originator, text) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![now, modem, originator, text])?;
    Ok(conn.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database in memory, migrated.
    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::migrate(&conn).unwrap();
        conn
    }

    /// One request to `number` with `parts` parts, claimed by `modem` until `lease_until`.
    fn claimed(conn: &Connection, number: &str, parts: usize, modem: &str, lease_until: i64) -> i64 {
        let mail = NewMail {
            sender: "a@example.com".into(),
            envid: None,
            ret: None,
            client: "127.0.0.1".into(),
            helo: "test".into(),
            auth_user: None,
            raw: b"Subject: x\r\n\r\ny".to_vec(),
            text: "x".into(),
            encoding: "gsm7".into(),
            parts,
            requests: vec![NewRequest {
                recipient: format!("{number}@sms"),
                number: number.into(),
                notify: None,
                orcpt: None,
            }],
            origin: None,
            trace: Vec::new(),
        };
        let id = receive(conn, &mail, 0).unwrap()[0];
        queue_received(conn, 0).unwrap();
        assert!(claim(conn, id, modem, lease_until, 0).unwrap());
        id
    }

    fn state(conn: &Connection, id: i64) -> String {
        conn.query_row("SELECT state FROM requests WHERE id = ?1", [id], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn only_the_modem_holding_the_lease_may_send() {
        let conn = database();
        let id = claimed(&conn, "+33477858589", 1, "sim0", 1_000);
        assert!(
            !part_submitting(&conn, id, 1, "sim1", 2_000, 10).unwrap(),
            "another modem"
        );
        assert!(
            !part_submitting(&conn, id, 1, "sim0", 2_000, 1_001).unwrap(),
            "lease ran out"
        );
        assert!(part_submitting(&conn, id, 1, "sim0", 2_000, 500).unwrap());
        // Renewed: still held past the first lease.
        assert!(part_submitting(&conn, id, 1, "sim0", 3_000, 1_500).unwrap());
    }

    #[test]
    fn recovery_requeues_unsent_parts_and_holds_back_the_uncertain_ones() {
        let conn = database();
        let half_sent = claimed(&conn, "+33477858589", 2, "sim0", 100);
        assert!(part_submitting(&conn, half_sent, 1, "sim0", 100, 0).unwrap());
        part_sent(&conn, half_sent, 1, 2, 7, false, 0).unwrap();
        let in_flight = claimed(&conn, "+447911123456", 1, "sim0", 100);
        assert!(part_submitting(&conn, in_flight, 1, "sim0", 100, 0).unwrap());
        assert_eq!(recover(&conn, 200, 200).unwrap(), 2);
        assert_eq!(state(&conn, half_sent), "queued");
        assert_eq!(state(&conn, in_flight), "uncertain");
        // The part already sent is never sent again, and its modem stays the only choice.
        let waiting = waiting(&conn, 200, 10).unwrap();
        assert_eq!(waiting[0].sent_parts, vec![1]);
        assert_eq!(waiting[0].last_modem.as_deref(), Some("sim0"));
        // An operator's retry resends the uncertain part only.
        assert!(retry(&conn, in_flight, 300).unwrap());
        assert_eq!(state(&conn, in_flight), "queued");
        assert!(
            !retry(&conn, in_flight, 300).unwrap(),
            "a queued request is not retried"
        );
    }

    #[test]
    fn a_report_in_national_form_still_finds_its_part() {
        let conn = database();
        let id = claimed(&conn, "+33477858589", 1, "sim0", 1_000);
        assert!(part_submitting(&conn, id, 1, "sim0", 1_000, 0).unwrap());
        part_sent(&conn, id, 1, 1, 42, false, 0).unwrap();
        assert_eq!(
            report(&conn, "sim0", 41, "0477858589", true, "delivered", 5).unwrap(),
            None,
            "wrong reference"
        );
        assert_eq!(
            report(&conn, "sim0", 42, "0477858589", true, "delivered", 5).unwrap(),
            Some(id)
        );
        assert_eq!(state(&conn, id), "delivered");
    }

    #[test]
    fn a_retried_request_whose_first_part_failed_is_sent_once_that_part_is_resent() {
        let conn = database();
        let id = claimed(&conn, "+33477858589", 2, "sim0", 1_000);
        for (part, mr) in [(1, 7), (2, 8)] {
            assert!(part_submitting(&conn, id, part, "sim0", 1_000, 0).unwrap());
            part_sent(&conn, id, part, 2, mr, false, 0).unwrap();
        }
        assert_eq!(
            report(&conn, "sim0", 8, "+33477858589", true, "delivered", 5).unwrap(),
            Some(id)
        );
        assert_eq!(
            report(&conn, "sim0", 7, "+33477858589", false, "rejected", 6).unwrap(),
            Some(id)
        );
        assert_eq!(state(&conn, id), "failed");
        assert!(retry(&conn, id, 10).unwrap());
        assert_eq!(state(&conn, id), "queued", "part 2 reached the network: same modems");
        assert!(claim(&conn, id, "sim0", 2_000, 20).unwrap());
        assert!(part_submitting(&conn, id, 1, "sim0", 2_000, 20).unwrap());
        part_sent(&conn, id, 1, 2, 9, false, 21).unwrap();
        assert_eq!(state(&conn, id), "sent");
        assert_eq!(
            report(&conn, "sim0", 9, "+33477858589", true, "delivered", 30).unwrap(),
            Some(id)
        );
        assert_eq!(state(&conn, id), "delivered");
    }

    #[test]
    fn queued_requests_past_their_validity_expire() {
        let conn = database();
        let id = claimed(&conn, "+33477858589", 1, "sim0", 1_000);
        requeue(&conn, id, 0, "temporary failure", 10).unwrap();
        assert_eq!(expire_overdue(&conn, 1_000, 500).unwrap(), 0);
        assert_eq!(expire_overdue(&conn, 1_000, 1_001).unwrap(), 1);
        assert_eq!(state(&conn, id), "expired");
        // Retried, it has a validity of its own again.
        assert!(retry(&conn, id, 5_000).unwrap());
        assert_eq!(expire_overdue(&conn, 1_000, 5_500).unwrap(), 0);
        assert_eq!(expire_overdue(&conn, 1_000, 6_001).unwrap(), 1);
    }
}
