//! SQLite: forwarding.

use super::lifecycle::transition;
use crate::store::forwarding::{cut_off, held_by};
use crate::store::routing::names;
use crate::store::{ForwardOutcome, ForwardRequest};
use crate::store::{State, StoreError};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::sync::Arc;

/// Forwarding requests that are due, oldest first, each marked in flight; each mail is
/// read once however many of its requests are due.
pub(in crate::store) fn due_for_forwarding(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<ForwardRequest>, StoreError> {
    // Marked in the same transaction as they are taken: a stop or a crash from here on
    // leaves the mark for `recover_forwards`. One marked already (its outcome could not
    // be recorded) may have reached its peer: it is taken again as unanswered, tried on
    // that peer only.
    conn.prepare_cached(
        "UPDATE requests SET unanswered = unanswered OR in_flight, in_flight = 1 WHERE id IN (
             SELECT id FROM requests WHERE state = ?3 AND (next_attempt IS NULL OR next_attempt <= ?1)
             ORDER BY id LIMIT ?2)",
    )?
    .execute(params![now, limit as i64, State::Forwarding])?;
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
pub(in crate::store) fn next_forward(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_attempt) FROM requests WHERE state = ?1")?
        .query_row([State::Forwarding], |row| row.get(0))?)
}

/// Forwards taken and never recorded (`in_flight`): their end of data may have left, so
/// they become unanswered, tried on their peer only. Returns how many.
pub(in crate::store) fn recover_forwards(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    let cut: Vec<(i64, String)> = conn
        .prepare_cached("SELECT id, coalesce(route, '') FROM requests WHERE state = ?1 AND in_flight")?
        .query_map([State::Forwarding], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, peer) in &cut {
        let detail = cut_off(peer);
        let why = held_by(
            peer,
            *id,
            &format!("the gateway stopped during a forward, before {peer} answered"),
        );
        if transition(conn, *id, &[State::Forwarding], State::Forwarding, now, &detail)? {
            conn.prepare_cached("UPDATE requests SET in_flight = 0, unanswered = 1, reason = ?1 WHERE id = ?2")?
                .execute(params![why, id])?;
        }
    }
    Ok(cut.len())
}

/// Clears the in-flight mark of forwards taken and never attempted.
pub(in crate::store) fn release_forwards(conn: &Connection, ids: &[i64]) -> Result<(), StoreError> {
    let mut statement = conn.prepare_cached("UPDATE requests SET in_flight = 0 WHERE id = ?1")?;
    for id in ids {
        statement.execute([id])?;
    }
    Ok(())
}

/// Records one forwarding attempt's outcome, if the request is still `forwarding` to
/// `peer`; clears its in-flight mark.
pub(in crate::store) fn record_forward(
    conn: &Connection,
    id: i64,
    peer: &str,
    outcome: &ForwardOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let cleared = conn
        .prepare_cached("UPDATE requests SET in_flight = 0 WHERE id = ?1 AND state = ?2 AND route = ?3")?
        .execute(params![id, State::Forwarding, peer])?;
    if cleared == 0 {
        // Released and routed again (or gone on) while this attempt was on its way: the
        // request is no longer this peer's to settle.
        tracing::info!(request = id, %peer, "a forward's outcome came for a request no longer routed there: ignored");
        return Ok(());
    }
    let from = [State::Forwarding];
    let detail = outcome.detail(id, peer, now);
    match outcome {
        ForwardOutcome::Accepted(_) => {
            if transition(conn, id, &from, State::Forwarded, now, &detail)? {
                conn.prepare_cached("UPDATE requests SET unanswered = 0, reason = NULL WHERE id = ?1")?
                    .execute(params![id])?;
            }
        }
        ForwardOutcome::Retry { at, .. } => {
            if transition(conn, id, &from, State::Forwarding, now, &detail)? {
                conn.prepare_cached("UPDATE requests SET next_attempt = ?1, attempts = attempts + 1 WHERE id = ?2")?
                    .execute(params![at, id])?;
            }
        }
        ForwardOutcome::Failover { refused, .. } => {
            let mark = if *refused { "!" } else { "" };
            if transition(conn, id, &from, State::Received, now, &detail)? {
                conn.prepare_cached(
                    "UPDATE requests SET tried = tried || ?1 || ',', route = NULL, next_attempt = NULL, attempts = 0
                     WHERE id = ?2",
                )?
                .execute(params![format!("{mark}{peer}"), id])?;
            }
        }
        ForwardOutcome::Unanswered { at, .. } => {
            let why = held_by(peer, id, "a forward's end of data left, no answer came");
            if transition(conn, id, &from, State::Forwarding, now, &detail)? {
                conn.prepare_cached(
                    "UPDATE requests SET next_attempt = ?1, attempts = attempts + 1, unanswered = 1, reason = ?2
                     WHERE id = ?3",
                )?
                .execute(params![at, why, id])?;
            }
        }
        ForwardOutcome::Uncertain { reason } => {
            if transition(conn, id, &from, State::Uncertain, now, &detail)? {
                conn.prepare_cached("UPDATE requests SET next_attempt = NULL, reason = ?1 WHERE id = ?2")?
                    .execute(params![reason, id])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::store::Route;
    use crate::store::sqlite::fixtures::{database, mail};
    use crate::store::sqlite::intake::receive;
    use crate::store::sqlite::lifecycle::retry;
    use crate::store::sqlite::routing::route;

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

    fn in_flight(conn: &Connection, id: i64) -> bool {
        conn.query_row("SELECT in_flight FROM requests WHERE id = ?1", [id], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn a_forward_is_in_flight_from_taken_to_recorded() {
        let conn = database();
        let id = forwarding_to_fr(&conn);
        assert!(!in_flight(&conn, id), "routed, not yet taken");
        assert_eq!(due_for_forwarding(&conn, 1_000, 10).unwrap()[0].id, id);
        assert!(in_flight(&conn, id), "taken");
        let retry = ForwardOutcome::Retry {
            at: 2_000,
            reason: "fr:25: connection refused".into(),
        };
        record_forward(&conn, id, "fr", &retry, 1_000).unwrap();
        assert!(!in_flight(&conn, id), "recorded");
        due_for_forwarding(&conn, 2_000, 10).unwrap();
        record_forward(&conn, id, "fr", &unanswered(3_000), 2_000).unwrap();
        assert!(!in_flight(&conn, id));
        due_for_forwarding(&conn, 3_000, 10).unwrap();
        record_forward(&conn, id, "fr", &ForwardOutcome::Accepted("250 ok".into()), 3_000).unwrap();
        assert!(!in_flight(&conn, id));
        assert_eq!(row(&conn, id).0, State::Forwarded);
    }

    #[test]
    fn at_start_only_forwards_cut_off_in_flight_wait_for_their_peer() {
        let conn = database();
        let cut = forwarding_to_fr(&conn);
        let recorded = forwarding_to_fr(&conn);
        due_for_forwarding(&conn, 1_000, 10).unwrap();
        let not_taken = forwarding_to_fr(&conn);
        let failover = ForwardOutcome::Failover {
            reason: "its status does not answer".into(),
            refused: false,
        };
        record_forward(&conn, recorded, "fr", &failover, 1_000).unwrap();
        // The gateway stops with `cut` on its way to fr.
        assert_eq!(recover_forwards(&conn, 2_000).unwrap(), 1);
        let (state, reason, marked, dsns) = row(&conn, cut);
        assert_eq!(
            (state, marked, dsns, in_flight(&conn, cut)),
            (State::Forwarding, true, 0, false)
        );
        assert!(reason.unwrap().contains("the gateway stopped during a forward"));
        let (state, _, marked, _) = row(&conn, recorded);
        assert_eq!((state, marked), (State::Received, false));
        let (state, _, marked, _) = row(&conn, not_taken);
        assert_eq!((state, marked), (State::Forwarding, false));
        // Due again, to fr and marked: fr not answering keeps it on fr.
        let due = due_for_forwarding(&conn, 2_000, 10).unwrap();
        let cut_job = due.iter().find(|job| job.id == cut).unwrap();
        assert_eq!((cut_job.peer.as_str(), cut_job.unanswered), ("fr", true));
        assert_eq!(recover_forwards(&conn, 3_000).unwrap(), 2, "taken again, not recorded");
        // Taken, but their connection broke before their turn: released, they never left.
        due_for_forwarding(&conn, 3_000, 10).unwrap();
        release_forwards(&conn, &[cut, not_taken]).unwrap();
        assert!(!in_flight(&conn, cut) && !in_flight(&conn, not_taken));
        assert_eq!(recover_forwards(&conn, 4_000).unwrap(), 0);
    }

    #[test]
    fn a_late_outcome_from_a_peer_it_is_no_longer_routed_to_is_ignored() {
        let conn = database();
        let id = forwarding_to_fr(&conn);
        due_for_forwarding(&conn, 1_000, 10).unwrap();
        record_forward(&conn, id, "fr", &unanswered(2_000), 1_000).unwrap();
        due_for_forwarding(&conn, 2_000, 10).unwrap();
        // While fr's second attempt is on its way, the operator releases the request and
        // routing sends it to de.
        assert!(retry(&conn, id, 2_500).unwrap());
        let to_de = Route::Peer {
            name: "de".into(),
            detail: "routed to de".into(),
        };
        route(&conn, id, &to_de, 2_600).unwrap();
        due_for_forwarding(&conn, 2_700, 10).unwrap();
        record_forward(&conn, id, "fr", &ForwardOutcome::Accepted("250 ok".into()), 2_800).unwrap();
        let (state, _, marked, _) = row(&conn, id);
        assert_eq!(
            (state, marked, in_flight(&conn, id)),
            (State::Forwarding, false, true),
            "still de's"
        );
        let failover = ForwardOutcome::Failover {
            reason: "fr:25 is down".into(),
            refused: false,
        };
        record_forward(&conn, id, "fr", &failover, 2_800).unwrap();
        let route: Option<String> = conn
            .query_row("SELECT route FROM requests WHERE id = ?1", [id], |row| row.get(0))
            .unwrap();
        assert_eq!(route.as_deref(), Some("de"));
        record_forward(&conn, id, "de", &ForwardOutcome::Accepted("250 ok".into()), 2_900).unwrap();
        assert_eq!(row(&conn, id).0, State::Forwarded);
    }
}
