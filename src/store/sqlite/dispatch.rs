//! SQLite: dispatch.

use crate::store::QueuedRequest;
use crate::store::dispatch::LANE;
use crate::store::dispatch::covering;
use crate::store::dispatch::lanes;
use crate::store::{PartStatus, State, StoreError};
use rusqlite::{Connection, OptionalExtension};

/// The columns of a `QueuedRequest`, read from `requests r`; `?3`, `?4`: the part
/// statuses that mean sent.
const QUEUED_COLUMNS: &str = "r.id, r.number, r.text, r.parts, r.attempts, coalesce(r.valid_from, r.created), r.modem,
     (SELECT group_concat(part) FROM parts WHERE request_id = r.id AND status IN (?3, ?4))";

/// What makes a queued request sendable by modem `?5` now (`?1`): due, within its
/// validity (from `?2`), and no part sent (`?3`, `?4`) by another modem, for the parts
/// of one SMS must leave from one SIM.
const SENDABLE: &str = "(r.next_attempt IS NULL OR r.next_attempt <= ?1)
     AND coalesce(r.valid_from, r.created) >= ?2
     AND NOT EXISTS (SELECT 1 FROM parts p WHERE p.request_id = r.id AND p.status IN (?3, ?4) AND p.modem != ?5)";

// The state is spelt into these statements (from the enum, never from input): a partial
// index serves only a statement whose own words imply its condition.

/// The oldest sendable queued request, whatever its number: `?1`-`?5` as `SENDABLE`.
fn any_number_sql() -> String {
    format!(
        "SELECT {QUEUED_COLUMNS} FROM requests r INDEXED BY requests_queued_by_id
         WHERE r.state = '{}' AND {SENDABLE} ORDER BY r.id LIMIT 1",
        State::Queued
    )
}

/// The oldest sendable queued request in lane `?6`, its number from `?7` up to `?8`.
fn lane_sql() -> String {
    format!(
        "SELECT {QUEUED_COLUMNS} FROM requests r INDEXED BY requests_queued_by_lane
         WHERE r.state = '{}' AND substr(r.number, 1, {LANE}) = ?6 AND r.number >= ?7 AND r.number < ?8
           AND {SENDABLE}
         ORDER BY r.id LIMIT 1",
        State::Queued
    )
}

/// The oldest sendable request with a part sent by modem `?5`, whatever its number:
/// its other parts must leave from the same SIM, even when the modem's prefixes no
/// longer cover the number (a cheaper modem of the site took them over). Read through
/// `parts_by_reference` (modem first).
fn pinned_sql() -> String {
    format!(
        "SELECT {QUEUED_COLUMNS} FROM requests r
         WHERE r.state = '{}' AND {SENDABLE}
           AND r.id IN (SELECT request_id FROM parts WHERE modem = ?5 AND status IN (?3, ?4))
         ORDER BY r.id LIMIT 1",
        State::Queued
    )
}

/// The oldest queued request `modem` may send now (see `Store::next_for_modems`): the
/// oldest of one indexed probe per lane of its prefixes and one for the requests it
/// sent a part of, or one walk of the queued requests in id order for a modem with the
/// catch-all "+". The probes read the requests of their own lane only, from the oldest,
/// skipping those not due yet, past their validity or pinned to another modem.
pub(in crate::store) fn next_for_modem(
    conn: &Connection,
    modem: &str,
    prefixes: &[String],
    now: i64,
    validity_ms: i64,
) -> Result<Option<QueuedRequest>, StoreError> {
    let since = now - validity_ms;
    let common: [&dyn rusqlite::ToSql; 5] = [&now, &since, &PartStatus::Sent, &PartStatus::Delivered, &modem];
    let Some(prefixes) = covering(prefixes) else {
        return Ok(conn
            .prepare_cached(&any_number_sql())?
            .query_row(&common[..], queued_request)
            .optional()?);
    };
    let mut oldest = conn
        .prepare_cached(&pinned_sql())?
        .query_row(&common[..], queued_request)
        .optional()?;
    let sql = lane_sql();
    let mut statement = conn.prepare_cached(&sql)?;
    for prefix in prefixes {
        let (lanes, (from, to)) = lanes(prefix);
        for lane in &lanes {
            let arguments: Vec<&dyn rusqlite::ToSql> = common
                .iter()
                .copied()
                .chain([lane as _, &from as _, &to as _])
                .collect();
            let found = statement.query_row(&arguments[..], queued_request).optional()?;
            if let Some(found) = found
                && oldest.as_ref().is_none_or(|o| found.id < o.id)
            {
                oldest = Some(found);
            }
        }
    }
    Ok(oldest)
}

/// [`next_for_modem`] for each modem, in one transaction.
pub(in crate::store) fn next_for_modems(
    conn: &Connection,
    modems: &[(String, Vec<String>)],
    now: i64,
    validity_ms: i64,
) -> Result<Vec<Option<QueuedRequest>>, StoreError> {
    modems
        .iter()
        .map(|(name, prefixes)| next_for_modem(conn, name, prefixes, now, validity_ms))
        .collect()
}

fn queued_request(row: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedRequest> {
    let sent: Option<String> = row.get(7)?;
    Ok(QueuedRequest {
        id: row.get(0)?,
        number: row.get(1)?,
        text: row.get(2)?,
        parts: row.get::<_, i64>(3)? as usize,
        attempts: row.get(4)?,
        valid_from: row.get(5)?,
        last_modem: row.get(6)?,
        sent_parts: sent
            .iter()
            .flat_map(|s| s.split(','))
            .filter_map(|p| p.parse().ok())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::store::sqlite::fixtures::{database, mail};
    use crate::store::sqlite::intake::receive;
    use crate::store::sqlite::routing::queue_received;
    use crate::store::sqlite::sending::{claim, mark_part_sent, mark_part_submitting, next_due, requeue};

    const DAY: i64 = 86_400_000;

    /// One mail of `parts` parts to `numbers`, received and queued at 0: their ids.
    fn queue(conn: &Connection, parts: usize, numbers: &[&str]) -> Vec<i64> {
        let mail = mail(numbers, parts);
        let ids = receive(conn, &mail, 0).unwrap();
        queue_received(conn, 0).unwrap();
        ids
    }

    /// The id of the request `modem`, whose tariff has `prefixes`, would be given at `now`.
    fn next(conn: &Connection, modem: &str, prefixes: &[&str], now: i64) -> Option<i64> {
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        next_for_modem(conn, modem, &prefixes, now, DAY)
            .unwrap()
            .map(|request| request.id)
    }

    #[test]
    fn each_modem_gets_the_oldest_request_its_tariff_covers() {
        let conn = database();
        let ids = queue(
            &conn,
            1,
            &[
                "+33612000001",
                "+33612000002",
                "+447911123456",
                "+4915112345678",
                "+12125550100",
            ],
        );
        assert_eq!(next(&conn, "uk", &["+44"], 1), Some(ids[2]));
        assert_eq!(next(&conn, "fr", &["+336", "+33"], 1), Some(ids[0]));
        assert_eq!(next(&conn, "any", &["+44", "+"], 1), Some(ids[0]));
        assert_eq!(next(&conn, "uk-mobiles", &["+447"], 1), Some(ids[2]));
        assert_eq!(next(&conn, "uk-landlines", &["+441", "+442"], 1), None);
        assert_eq!(next(&conn, "de-or-us", &["+1", "+49"], 1), Some(ids[3]));
        assert_eq!(next(&conn, "us", &["+1"], 1), Some(ids[4]));
        assert_eq!(next(&conn, "europe", &["+4"], 1), Some(ids[2]));
        assert_eq!(next(&conn, "nowhere", &[], 1), None);
    }

    #[test]
    fn requests_not_due_past_their_validity_or_pinned_to_another_modem_are_passed_over() {
        let conn = database();
        let ids = queue(&conn, 2, &["+33612000001", "+33612000002", "+33612000003"]);
        // The first waits for its retry time; the second has a part out through sim0.
        assert!(claim(&conn, ids[0], "sim0", 1_000, 0).unwrap());
        requeue(&conn, ids[0], 500, "busy", 0).unwrap();
        assert!(claim(&conn, ids[1], "sim0", 1_000, 0).unwrap());
        assert!(mark_part_submitting(&conn, ids[1], 1, "sim0", 1_000, 0).unwrap());
        mark_part_sent(&conn, ids[1], 1, 2, 7, false, 0).unwrap();
        requeue(&conn, ids[1], 0, "busy", 0).unwrap();
        assert_eq!(next(&conn, "sim1", &["+"], 100), Some(ids[2]));
        assert_eq!(next(&conn, "sim1", &["+33"], 100), Some(ids[2]));
        assert_eq!(next(&conn, "sim0", &["+33"], 100), Some(ids[1]));
        let pinned = next_for_modem(&conn, "sim0", &["+".into()], 100, DAY).unwrap().unwrap();
        assert_eq!((pinned.sent_parts, pinned.attempts), (vec![1], 1));
        assert_eq!(next(&conn, "sim1", &["+"], 600), Some(ids[0]));
        assert_eq!(next_due(&conn, 100).unwrap(), Some(500));
        assert_eq!(next_due(&conn, 600).unwrap(), None, "due already: not waited for");
        // Past their validity they are left to expire; a retry gives one a new validity.
        assert_eq!(next(&conn, "sim1", &["+"], DAY + 1), None);
        crate::store::sqlite::lifecycle::expire_overdue(&conn, DAY, DAY + 1).unwrap();
        assert!(crate::store::sqlite::lifecycle::retry(&conn, ids[1], DAY + 2).unwrap());
        let retried = next_for_modem(&conn, "sim0", &["+33".into()], DAY + 3, DAY)
            .unwrap()
            .unwrap();
        assert_eq!((retried.id, retried.valid_from, retried.attempts), (ids[1], DAY + 2, 0));
    }

    #[test]
    fn each_dispatch_query_is_one_indexed_search() {
        let conn = database();
        let plan = |sql: &str| -> String {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let unbound = std::iter::repeat_n(rusqlite::types::Null, statement.parameter_count());
            let rows = statement
                .query_map(rusqlite::params_from_iter(unbound), |row| row.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            rows.join("\n")
        };
        let lane = plan(&lane_sql());
        println!("lane:\n{lane}");
        assert!(
            lane.contains("SEARCH r USING INDEX requests_queued_by_lane (<expr>=?)"),
            "{lane}"
        );
        let any = plan(&any_number_sql());
        println!("any number:\n{any}");
        assert!(any.contains("SCAN r USING INDEX requests_queued_by_id"), "{any}");
        for plan in [&lane, &any] {
            assert!(!plan.contains("TEMP B-TREE"), "sorted, not read in order: {plan}");
            assert!(
                plan.contains("SEARCH p USING INDEX sqlite_autoindex_parts_1 (request_id=?)"),
                "{plan}"
            );
        }
        let due = plan("SELECT min(next_attempt) FROM requests WHERE state = 'queued' AND next_attempt > 0");
        println!("next due:\n{due}");
        assert!(
            due.contains("SEARCH requests USING COVERING INDEX requests_by_state (state=? AND next_attempt>?)"),
            "{due}"
        );
    }

    #[test]
    fn a_prefix_covers_the_lanes_and_numbers_under_it() {
        let (all, range) = lanes("+4");
        assert_eq!(all.len(), 10);
        assert_eq!((all[0].as_str(), all[9].as_str()), ("+40", "+49"));
        assert_eq!(range, ("+4".to_string(), "+5".to_string()));
        assert_eq!(lanes("+447"), (vec!["+44".to_string()], ("+447".into(), "+448".into())));
        let (all, range) = lanes("+");
        assert_eq!(all.len(), 100);
        assert_eq!((all[0].as_str(), all[99].as_str()), ("+00", "+99"));
        assert_eq!(range, ("+".to_string(), ",".to_string()));
        let prefixes = ["+447".to_string(), "+44".into(), "+33".into()];
        assert_eq!(covering(&prefixes), Some(vec!["+33", "+44"]));
        assert_eq!(covering(&["+33".to_string(), "+".into()]), None);
    }
}
