//! A few checks of the PostgreSQL store against a real server (the conformance suite
//! that runs both backends lives at the facade).

use super::testing::fresh_database;
use super::{Pg, Tx, dispatch, dsn, intake, routing, sending, store_id};
use crate::store::fixtures::mail;
use crate::store::{DsnAction, State, StoreError};

/// The store on `url`, as instance "test".
async fn connect(url: &str) -> Result<Pg, StoreError> {
    let config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::Unavailable(e.to_string()))?;
    Pg::connect(&config, "test").await
}

/// The store on a fresh database, or `None` when the tests are skipped.
async fn pg() -> Option<(Pg, String)> {
    let url = fresh_database().await?;
    Some((connect(&url).await.unwrap(), url))
}

async fn state(tx: &Tx, id: i64) -> State {
    tx.query_one("SELECT state FROM requests WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn migrating_again_changes_nothing_and_a_newer_schema_is_refused() {
    let Some((pg, url)) = pg().await else { return };
    let tx = pg.begin().await.unwrap();
    let id = store_id(&tx).await.unwrap();
    tx.commit().await.unwrap();
    let again = connect(&url).await.unwrap();
    let tx = again.begin().await.unwrap();
    assert_eq!(store_id(&tx).await.unwrap(), id);
    let versions: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    tx.execute("INSERT INTO schema_migrations (version) VALUES (99)", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    match connect(&url).await {
        Err(StoreError::TooNew { found: 99, known: 3 }) => {}
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test]
async fn instances_starting_together_migrate_once() {
    let Some(url) = fresh_database().await else { return };
    let (a, b, c) = tokio::join!(connect(&url), connect(&url), connect(&url));
    let tx = a.unwrap().begin().await.unwrap();
    let id = store_id(&tx).await.unwrap();
    tx.commit().await.unwrap();
    for pg in [b.unwrap(), c.unwrap()] {
        assert_eq!(store_id(&pg.begin().await.unwrap()).await.unwrap(), id);
    }
}

#[tokio::test]
async fn a_request_goes_from_received_to_sent_with_its_relayed_dsn() {
    let Some((pg, _)) = pg().await else { return };
    let tx = pg.begin().await.unwrap();
    let mut mail = mail(&["+33477858589", "+447911123456"], 1);
    mail.requests[1].notify = Some("SUCCESS,FAILURE".into());
    let ids = intake::receive(&tx, &mail, 0).await.unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(routing::queue_received(&tx, 10).await.unwrap(), 2);
    tx.commit().await.unwrap();

    let tx = pg.begin().await.unwrap();
    let uk = ["+44".to_string()];
    let next = dispatch::next_for_modem(&tx, "uk", &uk, 20, 86_400_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (next.id, next.number.as_str(), next.parts),
        (ids[1], "+447911123456", 1)
    );
    let any = ["+".to_string()];
    let first = dispatch::next_for_modem(&tx, "any", &any, 20, 86_400_000)
        .await
        .unwrap();
    assert_eq!(first.map(|r| r.id), Some(ids[0]));
    assert!(sending::claim(&tx, ids[1], "uk", 1_020, 20).await.unwrap());
    assert!(
        !sending::claim(&tx, ids[1], "any", 1_020, 20).await.unwrap(),
        "claimed already"
    );
    assert!(
        sending::mark_part_submitting(&tx, ids[1], 1, "uk", 1_030, 30)
            .await
            .unwrap()
    );
    let after = sending::mark_part_sent(&tx, ids[1], 1, 1, 7, true, 40).await.unwrap();
    assert_eq!(after, Some(std::time::Duration::from_millis(40)));
    assert_eq!(state(&tx, ids[1]).await, State::Sent);
    let due = dsn::dsns_due(&tx, 40, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].request, due[0].action), (ids[1], DsnAction::Relayed));
    assert_eq!(due[0].raw, mail.raw);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_lease_run_out_requeues_or_makes_uncertain() {
    let Some((pg, _)) = pg().await else { return };
    let tx = pg.begin().await.unwrap();
    let ids = intake::receive(&tx, &mail(&["+33477858589", "+33612345678", "+33612345679"], 2), 0)
        .await
        .unwrap();
    routing::queue_received(&tx, 0).await.unwrap();
    for &id in &ids {
        assert!(sending::claim(&tx, id, "sim0", 1_000, 0).await.unwrap());
    }
    // The first waits for a retry; the second was cut before AT+CMGS; the third after.
    sending::requeue(&tx, ids[0], 5_000, "busy", 10).await.unwrap();
    assert!(
        sending::mark_part_submitting(&tx, ids[2], 1, "sim0", 1_000, 10)
            .await
            .unwrap()
    );
    assert_eq!(sending::next_due(&tx, 10).await.unwrap(), Some(5_000));
    assert_eq!(sending::recover_leases(&tx, 1_001, 2_000).await.unwrap(), 2);
    assert_eq!(state(&tx, ids[0]).await, State::Queued);
    assert_eq!(state(&tx, ids[1]).await, State::Queued);
    assert_eq!(state(&tx, ids[2]).await, State::Uncertain);
    let reason: Option<String> = tx
        .query_one("SELECT reason FROM requests WHERE id = $1", &[&ids[2]])
        .await
        .unwrap()
        .get(0);
    assert!(reason.unwrap().contains("may have been sent"));
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_forward_seen_before_is_the_same_request() {
    let Some((pg, _)) = pg().await else { return };
    let mut forwarded = mail(&["+33477858589", "+33612345678"], 1);
    forwarded.origin = Some("abcdef0123456789/42".into());
    forwarded.trace = vec!["paris".into()];
    let tx = pg.begin().await.unwrap();
    let first = intake::receive(&tx, &forwarded, 0).await.unwrap();
    tx.commit().await.unwrap();
    let tx = pg.begin().await.unwrap();
    assert_eq!(intake::receive(&tx, &forwarded, 10).await.unwrap(), first);
    let count: i64 = tx.query_one("SELECT count(*) FROM requests", &[]).await.unwrap().get(0);
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_transaction_dropped_unfinished_is_rolled_back() {
    let Some((pg, _)) = pg().await else { return };
    let tx = pg.begin().await.unwrap();
    intake::receive(&tx, &mail(&["+33477858589"], 1), 0).await.unwrap();
    let pooled = pg.pool.status().size;
    drop(tx);
    assert_eq!(pg.pool.status().size, pooled - 1, "its connection left the pool");
    let tx = pg.begin().await.unwrap();
    let count: i64 = tx.query_one("SELECT count(*) FROM requests", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn each_modem_gets_the_oldest_request_its_tariff_covers() {
    let Some((pg, _)) = pg().await else { return };
    let tx = pg.begin().await.unwrap();
    let numbers = [
        "+33612000001",
        "+33612000002",
        "+447911123456",
        "+4915112345678",
        "+12125550100",
    ];
    let ids = intake::receive(&tx, &mail(&numbers, 1), 0).await.unwrap();
    routing::queue_received(&tx, 0).await.unwrap();
    for (prefixes, expected) in [
        (&["+44"][..], Some(ids[2])),
        (&["+336", "+33"], Some(ids[0])),
        (&["+44", "+"], Some(ids[0])),
        (&["+447"], Some(ids[2])),
        (&["+441", "+442"], None),
        (&["+1", "+49"], Some(ids[3])),
        (&["+4"], Some(ids[2])),
        (&[], None),
    ] {
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        let next = dispatch::next_for_modem(&tx, "m", &prefixes, 1, 86_400_000)
            .await
            .unwrap();
        assert_eq!(next.map(|r| r.id), expected, "{prefixes:?}");
    }
}

#[tokio::test]
async fn a_probe_skips_what_another_instance_is_claiming() {
    let Some((pg, _)) = pg().await else { return };
    let tx = pg.begin().await.unwrap();
    let ids = intake::receive(&tx, &mail(&["+33612000001", "+33612000002"], 1), 0)
        .await
        .unwrap();
    routing::queue_received(&tx, 0).await.unwrap();
    tx.commit().await.unwrap();
    let any = ["+".to_string()];
    let (one, other) = (pg.begin().await.unwrap(), pg.begin().await.unwrap());
    let first = dispatch::next_for_modem(&one, "a", &any, 1, 86_400_000).await.unwrap();
    let second = dispatch::next_for_modem(&other, "b", &any, 1, 86_400_000)
        .await
        .unwrap();
    assert_eq!(
        (first.map(|r| r.id), second.map(|r| r.id)),
        (Some(ids[0]), Some(ids[1]))
    );
}

#[tokio::test]
async fn a_bad_url_or_a_server_down_is_unavailable_and_keeps_the_password() {
    for url in [
        "postgres://u:secret@127.0.0.1:1/db",
        "postgres://u:secret@127.0.0.1:notaport/db",
    ] {
        match connect(url).await {
            Err(e @ StoreError::Unavailable(_)) => assert!(!e.to_string().contains("secret"), "{e}"),
            Err(e) => panic!("{url}: {e}"),
            Ok(_) => panic!("{url}: connected"),
        }
    }
}

/// Every other statement, once, against the server (each is prepared only when it runs).
#[tokio::test]
async fn every_other_statement_runs() {
    use super::{forwarding, inbox, lifecycle, optout, query, reach};
    use crate::store::{DsnOutcome, ForwardOutcome, QueueFilter, ReportWait, Route};
    let Some((pg, _)) = pg().await else { return };
    let tx = pg.begin().await.unwrap();
    let mut mail = mail(&["+33477858589", "+33612345678", "+447911123456", "+4915112345678"], 2);
    for request in &mut mail.requests {
        request.notify = Some("SUCCESS,FAILURE,DELAY".into());
    }
    let ids = intake::receive(&tx, &mail, 0).await.unwrap();
    assert_eq!(routing::due_for_routing(&tx, 0, 10).await.unwrap().len(), 4);
    let wait = Route::Wait {
        at: 100,
        detail: "every peer is down".into(),
    };
    routing::route(&tx, ids[3], &wait, 0).await.unwrap();
    routing::route(&tx, ids[3], &wait, 1).await.unwrap();
    assert_eq!(routing::due_for_routing(&tx, 50, 10).await.unwrap().len(), 3);
    let to_fr = Route::Peer {
        name: "fr".into(),
        detail: "routed to fr".into(),
    };
    routing::route(&tx, ids[0], &to_fr, 0).await.unwrap();
    routing::route(&tx, ids[1], &Route::Local { detail: "local".into() }, 0)
        .await
        .unwrap();
    let nowhere = Route::Nowhere {
        reason: "no route".into(),
    };
    routing::route(&tx, ids[2], &nowhere, 0).await.unwrap();
    let counts = routing::count_in_states(&tx, &[State::Queued, State::Failed])
        .await
        .unwrap();
    assert_eq!(counts.len(), 2);

    // Forwarding: taken, cut off, answered.
    let due = forwarding::due_for_forwarding(&tx, 0, 10).await.unwrap();
    assert_eq!(
        (due.len(), due[0].peer.as_str(), &due[0].raw[..]),
        (1, "fr", &mail.raw[..])
    );
    assert_eq!(forwarding::recover_forwards(&tx, 1).await.unwrap(), 1);
    let retry_later = ForwardOutcome::Retry {
        at: 500,
        reason: "busy".into(),
    };
    forwarding::record_forward(&tx, ids[0], "fr", &retry_later, 2)
        .await
        .unwrap();
    assert_eq!(forwarding::next_forward(&tx).await.unwrap(), Some(500));
    forwarding::release_forwards(&tx, &[ids[0]]).await.unwrap();
    let unanswered = ForwardOutcome::Unanswered {
        at: 600,
        reason: "no answer".into(),
    };
    forwarding::record_forward(&tx, ids[0], "fr", &unanswered, 3)
        .await
        .unwrap();
    assert!(lifecycle::retry(&tx, ids[0], 4).await.unwrap(), "released to routing");
    routing::route(&tx, ids[0], &to_fr, 5).await.unwrap();
    let failover = ForwardOutcome::Failover {
        reason: "refused".into(),
        refused: true,
    };
    forwarding::record_forward(&tx, ids[0], "fr", &failover, 6)
        .await
        .unwrap();
    let unrouted = routing::due_for_routing(&tx, 50, 10).await.unwrap();
    assert_eq!(unrouted[0].refused, ["fr"]);
    routing::route(&tx, ids[0], &to_fr, 7).await.unwrap();
    forwarding::record_forward(
        &tx,
        ids[0],
        "fr",
        &ForwardOutcome::Uncertain { reason: "gone".into() },
        8,
    )
    .await
    .unwrap();
    assert!(lifecycle::retry(&tx, ids[0], 9).await.unwrap());
    routing::route(&tx, ids[0], &to_fr, 10).await.unwrap();
    forwarding::record_forward(&tx, ids[0], "fr", &ForwardOutcome::Accepted("250 ok".into()), 11)
        .await
        .unwrap();
    assert_eq!(state(&tx, ids[0]).await, State::Forwarded);

    // Modems: a report for each part delivers the request.
    assert!(sending::claim(&tx, ids[1], "sim0", 1_000, 20).await.unwrap());
    for part in 1..=2 {
        assert!(
            sending::mark_part_submitting(&tx, ids[1], part, "sim0", 1_000, 20)
                .await
                .unwrap()
        );
        sending::mark_part_sent(&tx, ids[1], part, 2, part as u8, false, 20)
            .await
            .unwrap();
    }
    assert_eq!(
        sending::mark_sent_if_complete(&tx, ids[1], 2, false, 21).await.unwrap(),
        None
    );
    for part in 1..=2u8 {
        let reported = sending::record_status_report(&tx, "sim0", part, "0612345678", true, "delivered", 30)
            .await
            .unwrap();
        assert_eq!(reported.map(|r| r.request), Some(ids[1]));
    }
    assert_eq!(state(&tx, ids[1]).await, State::Delivered);
    assert!(!reach::reroute_queued(&tx, ids[1], 31).await.unwrap());
    assert_eq!(
        reach::waiting_outside(&tx, &["+33".to_string()]).await.unwrap(),
        [(ids[3], "+4915112345678".parse().unwrap())]
    );
    sending::mark_uncertain(&tx, ids[1], "no answer", 32).await.unwrap();
    lifecycle::fail_from(&tx, ids[3], &[State::Queued], State::Failed, "5.4.4", "x", 33)
        .await
        .unwrap();
    assert_eq!(state(&tx, ids[3]).await, State::Received);

    // DSNs: delayed, then one delivered.
    let wait = ReportWait { wait_ms: 10, since: 0 };
    assert_eq!(dsn::queue_timed(&tx, Some(1), Some(wait), 100).await.unwrap(), 1);
    assert_eq!(dsn::next_due(&tx).await.unwrap(), Some(0));
    let due = dsn::dsns_due(&tx, 100, 10).await.unwrap();
    for pending in &due {
        dsn::record_dsn_attempt(&tx, pending, &DsnOutcome::Sent("250".into()), 101)
            .await
            .unwrap();
    }
    assert_eq!(dsn::next_due(&tx).await.unwrap(), None);
    assert_eq!(lifecycle::expire_overdue(&tx, 1_000, 5_000).await.unwrap(), 1);

    // The operator's views.
    let rules = crate::store::InboundRules::new(&crate::config::Inbound::default(), "conf-a");
    let part = crate::store::ReceivedPart {
        modem: "sim0".into(),
        originator: "+33477858589".into(),
        sent: "2026-11-26T10:00:00Z".into(),
        concat: None,
        text: "STOP".into(),
    };
    let outcome = inbox::receive_part(&tx, &part, &rules, 0).await.unwrap();
    assert!(matches!(outcome, crate::store::PartOutcome::Complete(_)));
    assert_eq!(inbox::complete_overdue(&tx, &rules, 0).await.unwrap(), 0);
    assert!(inbox::inbound_due(&tx, 0, 10).await.unwrap().is_empty());
    assert_eq!(inbox::next_due(&tx).await.unwrap(), None);
    inbox::record_attempt(&tx, 1, crate::store::InboxState::Sent, 0, "250")
        .await
        .unwrap();
    assert_eq!(inbox::entries(&tx, None, 10).await.unwrap().len(), 1);
    assert_eq!(optout::opted_out(&tx).await.unwrap().0, ["+33477858589"]);
    assert_eq!(optout::list(&tx, true).await.unwrap().len(), 1);
    assert_eq!(optout::feed(&tx, 0, 10).await.unwrap().len(), 1);
    assert_eq!(optout::apply_all(&tx, &[], 0).await.unwrap(), 0);
    let listed = query::list(
        &tx,
        QueueFilter {
            state: Some(State::Delivered),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (listed.len(), listed[0].created.as_str()),
        (1, "1970-01-01T00:00:00.000Z")
    );
    let shown = query::show(&tx, ids[1]).await.unwrap();
    assert_eq!(shown.sent_parts.len(), 2);
    assert_eq!(shown.events.last().unwrap().time, "1970-01-01T00:00:00.101Z");
    assert!(matches!(query::show(&tx, 999).await, Err(StoreError::NotFound(999))));
    tx.notify("smsgw_queued").await.unwrap();
    tx.commit().await.unwrap();
    let tx = pg.begin().await.unwrap();
    let summary = query::queue_summary(&tx).await.unwrap();
    assert_eq!(summary.0.iter().map(|(_, n)| n).sum::<u64>(), 4);
}
