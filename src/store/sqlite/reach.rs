//! SQLite: reach.

use super::lifecycle::transition;
use crate::e164::E164;
use crate::store::{PartStatus, State, StoreError};
use rusqlite::{Connection, params};

/// See [`Store::reroute_queued`].
pub(in crate::store) fn reroute_queued(conn: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    let started: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM parts WHERE request_id = ?1 AND status IN (?2, ?3, ?4))")?
        .query_row(
            params![id, PartStatus::Submitting, PartStatus::Sent, PartStatus::Delivered],
            |row| row.get(0),
        )?;
    let detail = "no modem of this instance sends it any more: routed again";
    if started || !transition(conn, id, &[State::Queued], State::Received, now, detail)? {
        return Ok(false);
    }
    conn.prepare_cached("UPDATE requests SET route = NULL, next_attempt = NULL, attempts = 0 WHERE id = ?1")?
        .execute(params![id])?;
    Ok(true)
}

/// See [`Store::waiting_outside`].
pub(in crate::store) fn waiting_outside(
    conn: &Connection,
    prefixes: &[String],
) -> Result<Vec<(i64, E164)>, StoreError> {
    let prefixes = serde_json::Value::from(prefixes.to_vec()).to_string();
    let mut statement = conn.prepare_cached(
        "SELECT id, number FROM requests
         WHERE state IN (?2, ?3)
           AND NOT EXISTS (SELECT 1 FROM json_each(?1) WHERE substr(requests.number, 1, length(value)) = value)
         ORDER BY id",
    )?;
    let rows = statement.query_map(params![prefixes, State::Received, State::Queued], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {

    use super::{reroute_queued, waiting_outside};
    use crate::store::State;
    use crate::store::sqlite::fixtures::{database, mail};
    use crate::store::sqlite::intake::receive;
    use crate::store::sqlite::routing::queue_received;

    #[test]
    fn only_waiting_requests_no_prefix_covers_are_listed() {
        let conn = database();
        // 1 and 2 queued, then 3 and 4 received.
        receive(&conn, &mail(&["+33477858589", "+447911123456"], 1), 0).unwrap();
        queue_received(&conn, 0).unwrap();
        receive(&conn, &mail(&["+33612345678", "+4915112345678"], 1), 0).unwrap();
        let listed = |prefixes: &[&str]| -> Vec<(i64, String)> {
            let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
            waiting_outside(&conn, &prefixes)
                .unwrap()
                .into_iter()
                .map(|(id, number)| (id, number.to_string()))
                .collect()
        };
        assert_eq!(
            listed(&["+44"]),
            [
                (1, "+33477858589".to_string()),
                (3, "+33612345678".into()),
                (4, "+4915112345678".into())
            ]
        );
        assert_eq!(listed(&["+44", "+33"]), [(4, "+4915112345678".to_string())]);
        assert_eq!(listed(&["+3361", "+4"]), [(1, "+33477858589".to_string())]);
        assert_eq!(listed(&[]).len(), 4);
        // A request sent, failed or forwarded is not waiting.
        conn.execute("UPDATE requests SET state = 'failed' WHERE id = 4", [])
            .unwrap();
        assert_eq!(listed(&["+3"]), [(2, "+447911123456".to_string())]);
    }

    #[test]
    fn a_queued_request_goes_back_to_routing_unless_a_part_reached_a_modem() {
        let conn = database();
        let ids = receive(&conn, &mail(&["+33477858589", "+33612345678"], 2), 0).unwrap();
        queue_received(&conn, 0).unwrap();
        // The second one's first part went out from sim0: its parts stay on that SIM.
        crate::store::sqlite::sending::claim(&conn, ids[1], "sim0", 1_000, 0).unwrap();
        crate::store::sqlite::sending::mark_part_submitting(&conn, ids[1], 1, "sim0", 1_000, 0).unwrap();
        crate::store::sqlite::sending::mark_part_sent(&conn, ids[1], 1, 2, 7, false, 0).unwrap();
        crate::store::sqlite::sending::requeue(&conn, ids[1], 0, "busy", 0).unwrap();
        assert!(reroute_queued(&conn, ids[0], 10).unwrap());
        assert!(!reroute_queued(&conn, ids[1], 10).unwrap());
        assert!(!reroute_queued(&conn, ids[0], 20).unwrap(), "not queued any more");
        let state = |id: i64| -> State {
            conn.query_row("SELECT state FROM requests WHERE id = ?1", [id], |row| row.get(0))
                .unwrap()
        };
        assert_eq!((state(ids[0]), state(ids[1])), (State::Received, State::Queued));
    }
}
