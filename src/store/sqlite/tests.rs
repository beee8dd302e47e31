//! Transition tests on an in-memory database: the lease, recovery, reports, retry and
//! expiry, each through the functions the facade calls.

use crate::store::ReportedPart;
use std::time::Duration;

use rusqlite::Connection;

use super::dispatch::next_for_modem;
use super::fixtures::{database, mail};
use super::intake::receive;
use super::lifecycle::{expire_overdue, retry};
use super::routing::queue_received;
use super::sending::*;

/// One request to `number` with `parts` parts, claimed by `modem` until `lease_until`.
fn claimed(conn: &Connection, number: &str, parts: usize, modem: &str, lease_until: i64) -> i64 {
    let mail = mail(&[number], parts);
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
        !mark_part_submitting(&conn, id, 1, "sim1", 2_000, 10).unwrap(),
        "another modem"
    );
    assert!(
        !mark_part_submitting(&conn, id, 1, "sim0", 2_000, 1_001).unwrap(),
        "lease ran out"
    );
    assert!(mark_part_submitting(&conn, id, 1, "sim0", 2_000, 500).unwrap());
    // Renewed: still held past the first lease.
    assert!(mark_part_submitting(&conn, id, 1, "sim0", 3_000, 1_500).unwrap());
}

#[test]
fn recovery_requeues_unsent_parts_and_holds_back_the_uncertain_ones() {
    let conn = database();
    let half_sent = claimed(&conn, "+33477858589", 2, "sim0", 100);
    assert!(mark_part_submitting(&conn, half_sent, 1, "sim0", 100, 0).unwrap());
    mark_part_sent(&conn, half_sent, 1, 2, 7, false, 0).unwrap();
    let in_flight = claimed(&conn, "+447911123456", 1, "sim0", 100);
    assert!(mark_part_submitting(&conn, in_flight, 1, "sim0", 100, 0).unwrap());
    assert_eq!(recover_leases(&conn, 200, 200).unwrap(), 2);
    assert_eq!(state(&conn, half_sent), "queued");
    assert_eq!(state(&conn, in_flight), "uncertain");
    // The part already sent is never sent again, and its modem stays the only choice.
    let due = next_for_modem(&conn, "sim0", &["+".into()], 200, 1_000)
        .unwrap()
        .unwrap();
    assert_eq!(due.sent_parts, vec![1]);
    assert_eq!(due.last_modem.as_deref(), Some("sim0"));
    assert!(
        next_for_modem(&conn, "sim1", &["+".into()], 200, 1_000)
            .unwrap()
            .is_none()
    );
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
    assert!(mark_part_submitting(&conn, id, 1, "sim0", 1_000, 0).unwrap());
    mark_part_sent(&conn, id, 1, 1, 42, false, 0).unwrap();
    assert_eq!(
        record_status_report(&conn, "sim0", 41, "0477858589", true, "delivered", 5)
            .unwrap()
            .map(|part| part.request),
        None,
        "wrong reference"
    );
    assert_eq!(
        record_status_report(&conn, "sim0", 42, "0477858589", true, "delivered", 5)
            .unwrap()
            .map(|part| part.request),
        Some(id)
    );
    assert_eq!(state(&conn, id), "delivered");
}

#[test]
fn a_retried_request_whose_first_part_failed_is_sent_once_that_part_is_resent() {
    let conn = database();
    let id = claimed(&conn, "+33477858589", 2, "sim0", 1_000);
    for (part, mr) in [(1, 7), (2, 8)] {
        assert!(mark_part_submitting(&conn, id, part, "sim0", 1_000, 0).unwrap());
        mark_part_sent(&conn, id, part, 2, mr, false, 0).unwrap();
    }
    assert_eq!(
        record_status_report(&conn, "sim0", 8, "+33477858589", true, "delivered", 5)
            .unwrap()
            .map(|part| part.request),
        Some(id)
    );
    assert_eq!(
        record_status_report(&conn, "sim0", 7, "+33477858589", false, "rejected", 6)
            .unwrap()
            .map(|part| part.request),
        Some(id)
    );
    assert_eq!(state(&conn, id), "failed");
    assert!(retry(&conn, id, 10).unwrap());
    assert_eq!(state(&conn, id), "queued", "part 2 reached the network: same modems");
    assert!(claim(&conn, id, "sim0", 2_000, 20).unwrap());
    assert!(mark_part_submitting(&conn, id, 1, "sim0", 2_000, 20).unwrap());
    let sent_after = mark_part_sent(&conn, id, 1, 2, 9, false, 21).unwrap();
    assert_eq!(state(&conn, id), "sent");
    let created: i64 = conn
        .query_row("SELECT created FROM requests WHERE id = ?1", [id], |row| row.get(0))
        .unwrap();
    assert_eq!(sent_after, Some(Duration::from_millis((21 - created).max(0) as u64)));
    assert_eq!(
        record_status_report(&conn, "sim0", 9, "+33477858589", true, "delivered", 30).unwrap(),
        Some(ReportedPart {
            request: id,
            after: Duration::from_millis(10)
        }),
        "part 1 went out at 20"
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

#[test]
fn a_database_past_its_cap_is_kept_refuses_mail_and_keeps_a_reserve_for_the_stages() {
    let conn = database();
    let pages = |name: &str| -> i64 { conn.pragma_query_value(None, name, |row| row.get(0)).unwrap() };
    let before = pages("page_count");
    let page_size = pages("page_size");
    let reserve = 16 * 1024 * 1024 / page_size;
    // A cap of one byte: the pages already there stay; intake may add none, the stages
    // have the reserve beyond them.
    let soft = super::cap_size(&conn, 1).unwrap();
    assert_eq!(soft, 0);
    assert_eq!(pages("max_page_count"), before + reserve);
    let refused = super::intake::receive_within(&conn, &mail(&["+33477858589"], 1), 0, "smsgw", Some(soft));
    assert!(matches!(refused, Err(super::StoreError::Full)), "{refused:?}");
    assert_eq!(pages("page_count"), before);
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('big', ?1)",
        [&"x".repeat(100_000)],
    )
    .unwrap();
    // A cap above the database: intake may grow it to the cap, in whole pages; the
    // reserve (at least 16 MiB, else 5% of the cap) lies beyond.
    let soft = super::cap_size(&conn, ((before + 40) * page_size + page_size / 2) as u64).unwrap();
    assert_eq!(soft, before + 40);
    assert_eq!(pages("max_page_count"), before + 40 + reserve);
    let soft = super::cap_size(&conn, 1024 * 1024 * 1024).unwrap();
    assert_eq!(pages("max_page_count"), soft + soft / 20);
}
