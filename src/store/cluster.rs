//! Transitions of the cluster: a received request is routed to this instance's modems
//! or to a peer; a forwarded one is handed over, retried, or routed again without the
//! peer that failed it. A forward left unanswered after its end of data stays with its
//! peer: the peer may hold it.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, params};

use super::lifecycle::{fail, transition};
use super::{State, Store, StoreError, now_ms, until};
use crate::e164::E164;

/// A received request waiting for a route.
#[derive(Debug, Clone)]
pub struct UnroutedRequest {
    /// The request id.
    pub id: i64,
    /// The number to route.
    pub number: E164,
    /// Instances it passed through before this one.
    pub trace: Vec<String>,
    /// Peers that refused it for good.
    pub refused: Vec<String>,
    /// Peers that failed it since it last waited for a route.
    pub tried: Vec<String>,
}

fn names(list: &str) -> Vec<String> {
    list.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect()
}

/// The `tried` column: peers that failed the request, comma-separated, those that
/// refused it for good marked `!`.
fn refused_and_tried(list: &str) -> (Vec<String>, Vec<String>) {
    let (refused, tried): (Vec<String>, Vec<String>) = names(list).into_iter().partition(|n| n.starts_with('!'));
    (refused.into_iter().map(|n| n[1..].to_string()).collect(), tried)
}

impl Store {
    /// `received → queued` for all received requests (an instance without peers: its
    /// modems are the only route); wakes the modems.
    pub async fn queue_received(&self) -> Result<usize, StoreError> {
        let count = self.writer.write(|conn| queue_received(conn, now_ms())).await?;
        if count > 0 {
            self.wake.queued.notify_one();
        }
        Ok(count)
    }

    /// Received requests due for routing, oldest first.
    pub async fn due_for_routing(&self, limit: usize) -> Result<Vec<UnroutedRequest>, StoreError> {
        self.writer
            .write(move |conn| due_for_routing(conn, now_ms(), limit))
            .await
    }

    /// Applies routing decisions; wakes the stage each request goes to.
    pub async fn route(&self, routes: Vec<(i64, Route)>) -> Result<(), StoreError> {
        let wakes = (
            routes.iter().any(|(_, r)| matches!(r, Route::Local { .. })),
            routes.iter().any(|(_, r)| matches!(r, Route::Peer { .. })),
            routes.iter().any(|(_, r)| matches!(r, Route::Nowhere { .. })),
        );
        self.writer
            .write(move |conn| {
                let now = now_ms();
                routes
                    .iter()
                    .try_for_each(|(id, route)| self::route(conn, *id, route, now))
            })
            .await?;
        let (local, peer, failed) = wakes;
        if local {
            self.wake.queued.notify_one();
        }
        if peer {
            self.wake.forwarding.notify_one();
        }
        if failed {
            self.wake.dsn.notify_one();
        }
        Ok(())
    }

    /// Forwarding requests that are due, oldest first, with their envelope and mail.
    pub async fn due_for_forwarding(&self, limit: usize) -> Result<Vec<ForwardRequest>, StoreError> {
        self.writer
            .write(move |conn| due_for_forwarding(conn, now_ms(), limit))
            .await
    }

    /// Milliseconds until the next forwarding attempt falls due, if one waits.
    pub async fn next_forward_in(&self) -> Result<Option<u64>, StoreError> {
        Ok(until(self.writer.write(next_forward).await?))
    }

    /// Records what became of one forwarding attempt to `peer`.
    pub async fn record_forward(&self, id: i64, peer: String, outcome: ForwardOutcome) -> Result<(), StoreError> {
        let failover = matches!(outcome, ForwardOutcome::Failover { .. });
        self.writer
            .write(move |conn| record_forward(conn, id, &peer, &outcome, now_ms()))
            .await?;
        if failover {
            self.wake.received.notify_one();
        }
        Ok(())
    }

    /// How many requests are in each of `states` (for `/status`).
    pub async fn count_in_states(&self, states: &'static [State]) -> Result<Vec<(String, i64)>, StoreError> {
        self.writer.write(move |conn| count_in_states(conn, states)).await
    }
}

/// `received → queued` for every received request.
pub(super) fn queue_received(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    // Set-wise: under load one statement moves a whole batch.
    conn.prepare_cached(
        "INSERT INTO events (request_id, time, state, detail)
         SELECT id, ?1, ?2, 'routed to this instance''s modems' FROM requests WHERE state = ?3",
    )?
    .execute(params![now, State::Queued, State::Received])?;
    let moved = conn
        .prepare_cached("UPDATE requests SET state = ?2, updated = ?1 WHERE state = ?3")?
        .execute(params![now, State::Queued, State::Received])?;
    Ok(moved)
}

/// Received requests due for routing, oldest first.
pub(super) fn due_for_routing(conn: &Connection, now: i64, limit: usize) -> Result<Vec<UnroutedRequest>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT r.id, r.number, m.trace, r.tried FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE r.state = ?3 AND (r.next_attempt IS NULL OR r.next_attempt <= ?1)
         ORDER BY r.id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit as i64, State::Received], |row| {
        let (refused, tried) = refused_and_tried(&row.get::<_, String>(3)?);
        Ok(UnroutedRequest {
            id: row.get(0)?,
            number: row.get(1)?,
            trace: names(&row.get::<_, String>(2)?),
            refused,
            tried,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Where the routing stage sends a received request.
#[derive(Debug, Clone)]
pub enum Route {
    /// This instance's modems.
    Local {
        /// Why, for the request's history.
        detail: String,
    },
    /// A peer, by name.
    Peer {
        /// The peer's `[[peer]]` name.
        name: String,
        /// Why, for the request's history.
        detail: String,
    },
    /// Nowhere for now (every candidate down): look again at `at`.
    Wait {
        /// When to look again, unix milliseconds.
        at: i64,
        /// Why it waits, shown by `queue show` and in a `delayed` DSN.
        detail: String,
    },
    /// Nowhere ever: fail with this reason.
    Nowhere {
        /// Why no instance can send it (the DSN's diagnostic).
        reason: String,
    },
}

/// Applies one routing decision to a received request.
pub(super) fn route(conn: &Connection, id: i64, route: &Route, now: i64) -> Result<(), StoreError> {
    let from = [State::Received];
    match route {
        Route::Local { detail } => {
            if transition(conn, id, &from, State::Queued, now, detail)? {
                conn.prepare_cached("UPDATE requests SET next_attempt = NULL, route = NULL WHERE id = ?1")?
                    .execute(params![id])?;
            }
        }
        Route::Peer { name, detail } => {
            if transition(conn, id, &from, State::Forwarding, now, detail)? {
                conn.prepare_cached(
                    "UPDATE requests SET route = ?1, next_attempt = NULL, attempts = 0, reason = NULL WHERE id = ?2",
                )?
                .execute(params![name, id])?;
            }
        }
        Route::Wait { at, detail } => {
            let (reason, tried): (Option<String>, String) = conn
                .prepare_cached("SELECT reason, tried FROM requests WHERE id = ?1")?
                .query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            // One event per reason, not one per look.
            if reason.as_deref() != Some(detail.as_str()) {
                transition(conn, id, &from, State::Received, now, detail)?;
            }
            // After the wait, peers that only failed may be tried again; refusals stand.
            let (refused, _) = refused_and_tried(&tried);
            let refused: String = refused.iter().map(|n| format!("!{n},")).collect();
            // Only while it still waits: it may have expired since routing read it.
            conn.prepare_cached(
                "UPDATE requests SET next_attempt = ?1, reason = ?2, tried = ?3 WHERE id = ?4 AND state = ?5",
            )?
            .execute(params![at, detail, refused, id, State::Received])?;
        }
        Route::Nowhere { reason } => fail(conn, id, State::Failed, "5.4.4", reason, now)?,
    }
    Ok(())
}

/// A request to forward, with its envelope and message.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    /// The request id.
    pub id: i64,
    /// The `[[peer]]` name it goes to.
    pub peer: String,
    /// Attempts on this peer so far, for the retry schedule.
    pub attempts: i64,
    /// The number.
    pub number: E164,
    /// The recipient address as the client wrote it (`RCPT TO` at the peer).
    pub recipient: String,
    /// RFC 3461 `NOTIFY`, passed on.
    pub notify: Option<String>,
    /// RFC 3461 `ORCPT`, passed on.
    pub orcpt: Option<String>,
    /// The envelope sender, passed on.
    pub sender: String,
    /// RFC 3461 `ENVID`, passed on.
    pub envid: Option<String>,
    /// RFC 3461 `RET`, passed on.
    pub ret: Option<String>,
    /// The mail as received, read once and shared by every request of the mail in a
    /// batch: a mail to 100 numbers is held once, not 100 times.
    pub raw: Arc<[u8]>,
    /// Where it was first accepted ("<instance>/<id>"), if not here.
    pub origin: Option<String>,
    /// The instances it passed through before this one.
    pub trace: Vec<String>,
    /// An earlier attempt's end of data left without an answer: the peer may hold it.
    pub unanswered: bool,
    /// When its validity began (unix milliseconds): it is not tried past its end.
    pub valid_from: i64,
}

/// Forwarding requests that are due, oldest first; each mail is read once however many
/// of its requests are due.
pub(super) fn due_for_forwarding(conn: &Connection, now: i64, limit: usize) -> Result<Vec<ForwardRequest>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT r.id, r.route, r.attempts, r.number, r.recipient, r.notify, r.orcpt,
                m.sender, m.envid, m.ret, m.id, m.origin, m.trace,
                r.unanswered, coalesce(r.valid_from, r.created)
         FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE r.state = ?3 AND (r.next_attempt IS NULL OR r.next_attempt <= ?1)
         ORDER BY r.id LIMIT ?2",
    )?;
    let mut mails: HashMap<i64, Arc<[u8]>> = HashMap::new();
    let rows = statement.query_map(params![now, limit as i64, State::Forwarding], |row| {
        let message: i64 = row.get(10)?;
        let raw = match mails.get(&message) {
            Some(raw) => raw.clone(),
            None => {
                let raw: Arc<[u8]> = conn
                    .prepare_cached("SELECT raw FROM messages WHERE id = ?1")?
                    .query_row(params![message], |row| row.get::<_, Vec<u8>>(0))?
                    .into();
                mails.insert(message, raw.clone());
                raw
            }
        };
        Ok(ForwardRequest {
            id: row.get(0)?,
            peer: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            attempts: row.get(2)?,
            number: row.get(3)?,
            recipient: row.get(4)?,
            notify: row.get(5)?,
            orcpt: row.get(6)?,
            sender: row.get(7)?,
            envid: row.get(8)?,
            ret: row.get(9)?,
            raw,
            origin: row.get(11)?,
            trace: names(&row.get::<_, String>(12)?),
            unanswered: row.get(13)?,
            valid_from: row.get(14)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the next forwarding attempt falls due, if one waits.
pub(super) fn next_forward(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_attempt) FROM requests WHERE state = ?1")?
        .query_row([State::Forwarding], |row| row.get(0))?)
}

/// What became of one forwarding attempt.
#[derive(Debug, Clone)]
pub enum ForwardOutcome {
    /// The peer said 250: it owns the request now.
    Accepted(String),
    /// Try this peer again at `at`.
    Retry {
        /// When, unix milliseconds.
        at: i64,
        /// What went wrong this time.
        reason: String,
    },
    /// Give up on this peer for now (down, out of retries), or for good (`refused`):
    /// route the request again without it.
    Failover {
        /// What went wrong.
        reason: String,
        /// A 5xx: the peer is never tried again for this request.
        refused: bool,
    },
    /// The end of data left and no answer came, on this attempt or an earlier one: the
    /// peer may hold the request. Try this peer again at `at`, never another.
    Unanswered {
        /// When, unix milliseconds.
        at: i64,
        /// What went wrong this time.
        reason: String,
    },
    /// The peer may hold the request and is not tried again (the validity ended, it is
    /// no longer a peer, it refused the retry): `uncertain`, until the operator decides.
    Uncertain {
        /// Why it is not tried again.
        reason: String,
    },
}

/// Records one forwarding attempt's outcome.
pub(super) fn record_forward(
    conn: &Connection,
    id: i64,
    peer: &str,
    outcome: &ForwardOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let from = [State::Forwarding];
    match outcome {
        ForwardOutcome::Accepted(answer) => {
            let detail = format!("forwarded to {peer}: {answer}");
            if transition(conn, id, &from, State::Forwarded, now, &detail)? {
                conn.prepare_cached("UPDATE requests SET unanswered = 0, reason = NULL WHERE id = ?1")?
                    .execute(params![id])?;
            }
        }
        ForwardOutcome::Retry { at, reason } => {
            let wait = (at - now).max(0) / 1000;
            let detail = format!("forward to {peer} failed: {reason}; retry in {wait} s");
            if transition(conn, id, &from, State::Forwarding, now, &detail)? {
                conn.prepare_cached("UPDATE requests SET next_attempt = ?1, attempts = attempts + 1 WHERE id = ?2")?
                    .execute(params![at, id])?;
            }
        }
        ForwardOutcome::Failover { reason, refused } => {
            let (how, mark) = if *refused { ("refused", "!") } else { ("failed", "") };
            let detail = format!("{peer} {how} it ({reason}): routing again without {peer}");
            if transition(conn, id, &from, State::Received, now, &detail)? {
                conn.prepare_cached(
                    "UPDATE requests SET tried = tried || ?1 || ',', route = NULL, next_attempt = NULL, attempts = 0
                     WHERE id = ?2",
                )?
                .execute(params![format!("{mark}{peer}"), id])?;
            }
        }
        ForwardOutcome::Unanswered { at, reason } => {
            let wait = (at - now).max(0) / 1000;
            let detail =
                format!("forward to {peer} failed: {reason}; {peer} may hold it: retry on {peer} only, in {wait} s");
            let why = format!(
                "{peer} may hold it (a forward's end of data left, no answer came): tried on {peer} only, \
                 until it answers or the validity ends; `smsgw queue retry {id}` routes it again"
            );
            if transition(conn, id, &from, State::Forwarding, now, &detail)? {
                conn.prepare_cached(
                    "UPDATE requests SET next_attempt = ?1, attempts = attempts + 1, unanswered = 1, reason = ?2
                     WHERE id = ?3",
                )?
                .execute(params![at, why, id])?;
            }
        }
        ForwardOutcome::Uncertain { reason } => {
            let detail = format!("{reason}: only the operator sends it again (`smsgw queue retry {id}`)");
            if transition(conn, id, &from, State::Uncertain, now, &detail)? {
                conn.prepare_cached("UPDATE requests SET next_attempt = NULL, reason = ?1 WHERE id = ?2")?
                    .execute(params![reason, id])?;
            }
        }
    }
    Ok(())
}

/// Requests in each of `states` (which the index answers without reading rows).
pub(super) fn count_in_states(conn: &Connection, states: &[State]) -> Result<Vec<(String, i64)>, StoreError> {
    let names: Vec<String> = states.iter().map(|s| format!("'{s}'")).collect();
    let sql = format!(
        "SELECT state, count(*) FROM requests WHERE state IN ({}) GROUP BY state",
        names.join(",")
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::store::fixtures::{database, mail};
    use crate::store::intake::receive;
    use crate::store::lifecycle::retry;

    /// A request, asking for failure DSNs, routed to fr at time 0.
    fn forwarding_to_fr(conn: &Connection) -> i64 {
        let mut mail = mail(&["+33477858589"], 1);
        mail.requests[0].notify = Some("FAILURE".into());
        let id = receive(conn, &mail, 0).unwrap()[0];
        let to_fr = Route::Peer {
            name: "fr".into(),
            detail: "routed to fr".into(),
        };
        route(conn, id, &to_fr, 0).unwrap();
        id
    }

    /// State, reason and the unanswered mark; and how many DSNs are owed.
    fn row(conn: &Connection, id: i64) -> (State, Option<String>, bool, i64) {
        conn.query_row(
            "SELECT state, reason, unanswered, (SELECT count(*) FROM dsns WHERE request_id = id)
             FROM requests WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap()
    }

    fn unanswered(at: i64) -> ForwardOutcome {
        ForwardOutcome::Unanswered {
            at,
            reason: "fr:25: connection closed without an answer".into(),
        }
    }

    #[test]
    fn a_forward_its_peer_may_hold_waits_for_that_peer_and_only_the_operator_releases_it() {
        let conn = database();
        let id = forwarding_to_fr(&conn);
        assert!(!retry(&conn, id, 1).unwrap(), "an ordinary forward is on its way");
        record_forward(&conn, id, "fr", &unanswered(2_000), 1_000).unwrap();
        let (state, reason, marked, dsns) = row(&conn, id);
        assert_eq!((state, marked, dsns), (State::Forwarding, true, 0));
        assert!(reason.unwrap().starts_with("fr may hold it"));
        assert!(due_for_forwarding(&conn, 1_999, 10).unwrap().is_empty());
        let due = due_for_forwarding(&conn, 2_000, 10).unwrap();
        assert_eq!((due[0].peer.as_str(), due[0].unanswered), ("fr", true));
        // fr answers at last: forwarded, the mark and the reason gone.
        record_forward(&conn, id, "fr", &ForwardOutcome::Accepted("250 ok".into()), 2_000).unwrap();
        assert_eq!(row(&conn, id), (State::Forwarded, None, false, 0));

        let id = forwarding_to_fr(&conn);
        record_forward(&conn, id, "fr", &unanswered(2_000), 1_000).unwrap();
        assert!(retry(&conn, id, 3_000).unwrap(), "released by the operator");
        let (state, _, marked, dsns) = row(&conn, id);
        assert_eq!((state, marked, dsns), (State::Received, false, 0));
    }

    #[test]
    fn a_forward_its_peer_may_hold_ends_uncertain_without_a_failure_dsn() {
        let conn = database();
        let id = forwarding_to_fr(&conn);
        record_forward(&conn, id, "fr", &unanswered(2_000), 1_000).unwrap();
        let outcome = ForwardOutcome::Uncertain {
            reason: "fr did not answer within its validity, and may hold it".into(),
        };
        record_forward(&conn, id, "fr", &outcome, 90_000).unwrap();
        let (state, _, _, dsns) = row(&conn, id);
        assert_eq!(
            (state, dsns),
            (State::Uncertain, 0),
            "fr may have sent it and told the sender"
        );
        assert!(due_for_forwarding(&conn, 100_000, 10).unwrap().is_empty());
        assert!(retry(&conn, id, 100_000).unwrap());
        assert_eq!(row(&conn, id).0, State::Received);
    }
}
