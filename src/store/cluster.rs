//! Transitions of the cluster: a received request is routed to this instance's modems
//! or to a peer; a forwarded one is handed over, retried, or routed again without the
//! peer that failed it.

use rusqlite::{Connection, params};

use super::transitions::{fail, transition};
use super::{State, StoreError};

/// A received request waiting for a route.
#[derive(Debug, Clone)]
pub struct Unrouted {
    pub id: i64,
    pub number: String,
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

pub(super) fn unrouted(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Unrouted>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT r.id, r.number, m.trace, r.tried FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE r.state = 'received' AND (r.next_attempt IS NULL OR r.next_attempt <= ?1)
         ORDER BY r.id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit as i64], |row| {
        let (refused, tried) = refused_and_tried(&row.get::<_, String>(3)?);
        Ok(Unrouted {
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
    Local { detail: String },
    /// A peer, by name.
    Peer { name: String, detail: String },
    /// Nowhere for now (every candidate down): look again at `at`.
    Wait { at: i64, detail: String },
    /// Nowhere ever: fail with this reason.
    Nowhere { reason: String },
}

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
                "UPDATE requests SET next_attempt = ?1, reason = ?2, tried = ?3 WHERE id = ?4 AND state = 'received'",
            )?
            .execute(params![at, detail, refused, id])?;
        }
        Route::Nowhere { reason } => fail(conn, id, State::Failed, "5.4.4", reason, now)?,
    }
    Ok(())
}

/// A request to forward, with its envelope and message.
#[derive(Debug, Clone)]
pub struct Forward {
    pub id: i64,
    pub peer: String,
    pub attempts: i64,
    pub number: String,
    pub recipient: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<String>,
    pub raw: Vec<u8>,
    /// Where it was first accepted ("<instance>/<id>"), if not here.
    pub origin: Option<String>,
    pub trace: Vec<String>,
}

pub(super) fn forwarding_due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Forward>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT r.id, r.route, r.attempts, r.number, r.recipient, r.notify, r.orcpt,
                m.sender, m.envid, m.ret, m.raw, m.origin, m.trace
         FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE r.state = 'forwarding' AND (r.next_attempt IS NULL OR r.next_attempt <= ?1)
         ORDER BY r.id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit as i64], |row| {
        Ok(Forward {
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
            raw: row.get(10)?,
            origin: row.get(11)?,
            trace: names(&row.get::<_, String>(12)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the next forwarding attempt falls due, if one waits.
pub(super) fn next_forward(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_attempt) FROM requests WHERE state = 'forwarding'")?
        .query_row([], |row| row.get(0))?)
}

/// What became of one forwarding attempt.
#[derive(Debug, Clone)]
pub enum Forwarded {
    /// The peer said 250: it owns the request now.
    Accepted(String),
    /// Try this peer again at `at`.
    Retry { at: i64, reason: String },
    /// Give up on this peer for now (down, out of retries), or for good (`refused`):
    /// route the request again without it.
    Failover { reason: String, refused: bool },
}

pub(super) fn forwarded(
    conn: &Connection,
    id: i64,
    peer: &str,
    outcome: &Forwarded,
    now: i64,
) -> Result<(), StoreError> {
    let from = [State::Forwarding];
    match outcome {
        Forwarded::Accepted(answer) => {
            let detail = format!("forwarded to {peer}: {answer}");
            transition(conn, id, &from, State::Forwarded, now, &detail)?;
        }
        Forwarded::Retry { at, reason } => {
            let wait = (at - now).max(0) / 1000;
            let detail = format!("forward to {peer} failed: {reason}; retry in {wait} s");
            if transition(conn, id, &from, State::Forwarding, now, &detail)? {
                conn.prepare_cached("UPDATE requests SET next_attempt = ?1, attempts = attempts + 1 WHERE id = ?2")?
                    .execute(params![at, id])?;
            }
        }
        Forwarded::Failover { reason, refused } => {
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
    }
    Ok(())
}

/// Requests in each of `states` (which the index answers without reading rows).
pub(super) fn counts(conn: &Connection, states: &[State]) -> Result<Vec<(String, i64)>, StoreError> {
    let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "SELECT state, count(*) FROM requests WHERE state IN ({}) GROUP BY state",
        names.join(",")
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
