//! Routing's side of the queue: a received request is routed to this instance's
//! modems, to a peer (then [`forwarding`](super::forwarding) takes it), or nowhere.

use rusqlite::{Connection, params};

use super::lifecycle::{fail, transition};
use super::{State, Store, StoreError, now_ms};
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

/// The names of a comma-separated list column.
pub(super) fn names(list: &str) -> Vec<String> {
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
