//! The store's conformance suite: one set of scenarios, written once against the public
//! [`Store`] API, run on both backends. Each scenario is a test twice over,
//! `store::conformance::on_sqlite::<scenario>` (a fresh SQLite file in a temporary
//! directory, removed after) and `store::conformance::on_postgres::<scenario>` (a fresh
//! database on the server `SMSGW_TEST_POSTGRES` names; skipped without one, except in
//! CI), so a failure names the backend it happened on.
//!
//! The API reads the clock itself (`now_ms()`): the scenarios never wait, they use
//! leases and delays that make the outcome certain (a lease of `-1` ms has run out at
//! once, one of a minute has not; a wait of `-1` ms is due at once).
//!
//! Left out, because the backends differ on purpose: the SQLite size cap
//! (`store.max_size_mb`, [`StoreError::Full`]), which PostgreSQL does not have; and what
//! only a site of several PostgreSQL instances has (owners, heartbeats, a dead instance's
//! leases and forwards taken over), which one SQLite instance cannot show.
//!
//! Scenarios marked `#[ignore = "backends disagree: …"]` state a rule one backend
//! breaks today; `cargo test --lib store::conformance -- --include-ignored` shows it.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::Notify;

use super::fixtures::mail;
use super::postgres::testing::fresh_database;
use super::{
    DsnAction, DsnOutcome, ForwardOutcome, InboundRules, InboxKind, InboxState, NewMail, OptOut, PartOutcome,
    PartStatus, PendingInbound, QueueFilter, QueuedRequest, ReceivedPart, ReportWait, Route, State, Store, StoreError,
    now_ms,
};
use crate::config::Config;

/// The instance every store of the suite runs as (`queue list` shows it).
const INSTANCE: &str = "conf-a";
const FR: &str = "+33477858589";
const UK: &str = "+447700900123";
const DE: &str = "+4915112345678";
const US: &str = "+12025550123";
const NL: &str = "+31612345678";
const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

/// Runs each scenario (an `async fn(&Store)` of this module) on both backends, with
/// the attributes written before it (`#[ignore = "…"]`) on both.
macro_rules! conformance {
    ($($(#[$attribute:meta])* $scenario:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                $(#[$attribute])*
                #[tokio::test]
                async fn $scenario() {
                    let (store, dir) = super::open_sqlite(stringify!($scenario)).await;
                    super::$scenario(&store).await;
                    drop(store);
                    drop(dir);
                }
            )*
        }

        mod on_postgres {
            $(
                $(#[$attribute])*
                #[tokio::test]
                async fn $scenario() {
                    let Some(store) = super::open_postgres().await else { return };
                    super::$scenario(&store).await;
                }
            )*
        }
    };
}

conformance!(
    intake_gives_ids_per_recipient_and_a_forward_seen_before_its_ids,
    queue_received_queues_every_received_request,
    routes_move_requests_to_their_stage,
    reach_lists_reroutes_and_fails_what_the_tariffs_no_longer_cover,
    dispatch_finds_the_oldest_request_each_modem_may_send,
    sending_holds_a_lease_and_marks_parts,
    a_request_is_sent_once_all_its_parts_reached_the_network,
    status_reports_settle_parts_and_requests,
    recovery_requeues_or_makes_uncertain,
    lifecycle_fails_expires_and_retries,
    forwarding_records_each_outcome,
    forwards_in_flight_are_recovered_or_released,
    dsns_follow_notify_and_time,
    dsns_are_delivered_retried_or_dropped,
    incoming_parts_are_kept_once_and_make_one_sms,
    an_sms_is_mailed_to_the_latest_sender_to_its_number_with_retries,
    an_incomplete_sms_is_stored_as_what_arrived_after_its_time,
    stop_and_start_words_change_the_opt_out_list,
    queue_summary_counts_states_and_the_oldest_waiting,
    two_modems_claiming_one_request_at_once_get_it_once,
    a_status_report_matches_the_latest_part_with_its_reference,
    a_forward_taken_again_while_in_flight_stays_on_its_peer,
    a_forward_received_twice_at_once_makes_one_request,
    times_show_the_stored_milliseconds,
);

/// Removes a SQLite scenario's directory, even when the scenario panicked.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store on a fresh SQLite file.
async fn open_sqlite(scenario: &str) -> (Store, TempDir) {
    let dir = std::env::temp_dir().join(format!("smsgw-conformance-{scenario}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir = TempDir(dir);
    let mut config = Config::default();
    config.instance.name = INSTANCE.into();
    config.instance.data_dir = dir.0.clone();
    (Store::open(&config).await.unwrap(), dir)
}

/// A store on a fresh PostgreSQL database, if a server is given.
async fn open_postgres() -> Option<Store> {
    let url = fresh_database().await?;
    let mut config = Config::default();
    config.instance.name = INSTANCE.into();
    config.store.url = Some(url.parse().unwrap());
    Some(Store::open(&config).await.unwrap())
}

/// A one-part mail to `numbers`, each with `notify`.
fn to(numbers: &[&str], notify: Option<&str>) -> NewMail {
    let mut mail = mail(numbers, 1);
    for request in &mut mail.requests {
        request.notify = notify.map(str::to_string);
    }
    mail
}

/// Stores `mail` and routes its requests to this instance's modems.
async fn queue(store: &Store, mail: NewMail) -> Vec<i64> {
    let ids = store.receive(mail).await.unwrap();
    let local = |id| {
        (
            id,
            Route::Local {
                detail: "routed here".into(),
            },
        )
    };
    store.route(ids.iter().copied().map(local).collect()).await.unwrap();
    ids
}

async fn state(store: &Store, id: i64) -> State {
    store.show(id).await.unwrap().request.state
}

/// The request's history, as (state, detail).
async fn history(store: &Store, id: i64) -> Vec<(String, String)> {
    let events = store.show(id).await.unwrap().events;
    events.into_iter().map(|line| (line.state, line.detail)).collect()
}

async fn last_event(store: &Store, id: i64) -> (String, String) {
    history(store, id).await.pop().unwrap()
}

/// The request's parts, as (part, modem, mr, status).
async fn parts(store: &Store, id: i64) -> Vec<(i64, String, Option<i64>, PartStatus)> {
    let parts = store.show(id).await.unwrap().sent_parts;
    parts.into_iter().map(|p| (p.part, p.modem, p.mr, p.status)).collect()
}

/// The DSNs due now, as (request, action), in request order.
async fn dsns(store: &Store) -> Vec<(i64, DsnAction)> {
    let mut due: Vec<_> = store
        .dsns_due(1000)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.request, d.action))
        .collect();
    due.sort_by_key(|&(request, action)| (request, action.as_str()));
    due
}

/// Whether `notify` was notified since it was last looked at (a stored permit).
async fn woken(notify: &Notify) -> bool {
    tokio::time::timeout(Duration::from_millis(1), notify.notified())
        .await
        .is_ok()
}

/// Forgets the wake-ups so far.
async fn drain(store: &Store) {
    let wake = &store.wake;
    for notify in [&wake.received, &wake.queued, &wake.outbound, &wake.forwarding] {
        woken(notify).await;
    }
}

/// The request `modem`, covering `prefixes`, gets now (validity: a day).
async fn next(store: &Store, modem: &str, prefixes: &[&str]) -> Option<QueuedRequest> {
    let prefixes = prefixes.iter().map(|p| p.to_string()).collect();
    let mut found = store
        .next_for_modems(vec![(modem.to_string(), prefixes)], DAY)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    found.pop().unwrap()
}

/// Claims `id` on `modem` and sends its parts `1..=parts` with message references from
/// `mr`; returns what the last part returned.
async fn send(store: &Store, id: i64, modem: &str, parts: usize, mr: u8, unreported: bool) -> Option<Duration> {
    assert!(store.claim(id, modem, MINUTE).await.unwrap(), "claim {id}");
    let mut sent = None;
    for part in 1..=parts {
        assert!(store.mark_part_submitting(id, part, modem, MINUTE).await.unwrap());
        sent = store
            .mark_part_sent(id, part, parts, mr + part as u8 - 1, unreported)
            .await
            .unwrap();
    }
    sent
}

/// A time as `queue list` shows it: RFC 3339 UTC with milliseconds.
fn assert_rfc3339(time: &str) {
    let b = time.as_bytes();
    assert!(
        b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[13] == b':' && b[19] == b'.' && b[23] == b'Z',
        "{time:?}"
    );
}

async fn intake_gives_ids_per_recipient_and_a_forward_seen_before_its_ids(store: &Store) {
    let mut first = mail(&[FR, UK], 2);
    first.envid = Some("env-1".into());
    first.ret = Some("HDRS");
    first.auth_user = Some("alice".into());
    first.requests[0].notify = Some("SUCCESS,FAILURE".into());
    first.requests[0].orcpt = Some("rfc822;bob@example.org".into());
    drain(store).await;
    let ids = store.receive(first).await.unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    assert!(woken(&store.wake.received).await);

    let mut forwarded = to(&[DE, US], None);
    forwarded.origin = Some("peer-b/17".into());
    forwarded.trace = vec!["peer-b".into()];
    let taken = store.receive(forwarded.clone()).await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(taken[0] > ids[1]);
    let again = store.receive(forwarded).await.unwrap();
    assert_eq!(again, taken, "a forward seen before gets the ids it got then");

    let rows = store.list(QueueFilter::default()).await.unwrap();
    let listed: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(
        listed,
        [ids[0], ids[1], taken[0], taken[1]],
        "one request per recipient, oldest first"
    );
    let row = &rows[0];
    assert_eq!(row.state, State::Received);
    assert_eq!(row.number, FR);
    assert_eq!(row.recipient, format!("{FR}@sms"));
    assert_eq!(row.sender, "a@example.com");
    assert_eq!(row.parts, 2);
    assert_eq!(row.encoding, "gsm7");
    assert_eq!(row.attempts, 0);
    assert_eq!(row.status, None);
    assert_eq!(row.reason, None);
    assert_eq!(row.instance.as_deref(), Some(INSTANCE));
    assert_eq!(row.modem, None);
    assert_rfc3339(&row.created);
    assert_eq!(row.updated, row.created);
    assert_eq!(rows[2].instance.as_deref(), Some(INSTANCE));

    let queued = QueueFilter {
        state: Some(State::Queued),
    };
    assert!(store.list(queued).await.unwrap().is_empty());
    let received = QueueFilter {
        state: Some(State::Received),
    };
    assert_eq!(store.list(received).await.unwrap().len(), 4);

    let shown = store.show(ids[0]).await.unwrap();
    assert_eq!(shown.request.id, ids[0]);
    assert_eq!(shown.text, "x");
    assert_eq!(shown.client, "127.0.0.1");
    assert_eq!(shown.helo, "test");
    assert_eq!(shown.auth_user.as_deref(), Some("alice"));
    assert_eq!(shown.envid.as_deref(), Some("env-1"));
    assert_eq!(shown.ret.as_deref(), Some("HDRS"));
    assert_eq!(shown.notify.as_deref(), Some("SUCCESS,FAILURE"));
    assert_eq!(shown.orcpt.as_deref(), Some("rfc822;bob@example.org"));
    assert!(shown.sent_parts.is_empty());
    assert_eq!(shown.events.len(), 1);
    assert_eq!(shown.events[0].state, "received");
    assert_rfc3339(&shown.events[0].time);
    let detail = &shown.events[0].detail;
    assert!(
        detail.contains("from <a@example.com> via 127.0.0.1 (test), 2 part(s) gsm7"),
        "{detail}"
    );
    assert_eq!(store.show(ids[1]).await.unwrap().notify, None);

    let (state, detail) = last_event(store, taken[0]).await;
    assert_eq!(state, "received");
    assert!(
        detail.contains("forwarded: request peer-b/17, through peer-b"),
        "{detail}"
    );
    assert_eq!(
        history(store, taken[0]).await.len(),
        1,
        "the retried forward added nothing"
    );
    let due = store.due_for_routing(10).await.unwrap();
    assert_eq!(due[2].trace, ["peer-b"]);
    assert!(due[0].trace.is_empty());

    let missing = ids[0] + 1_000;
    match store.show(missing).await {
        Err(StoreError::NotFound(id)) => assert_eq!(id, missing),
        other => panic!("{:?}", other.map(|d| d.request.id)),
    }
}

async fn queue_received_queues_every_received_request(store: &Store) {
    let ids = store.receive(to(&[FR, UK], None)).await.unwrap();
    drain(store).await;
    assert_eq!(store.queue_received().await.unwrap(), 2);
    assert!(woken(&store.wake.queued).await);
    for &id in &ids {
        assert_eq!(state(store, id).await, State::Queued);
        assert_eq!(
            last_event(store, id).await,
            ("queued".into(), "routed to this instance's modems".into())
        );
    }
    assert_eq!(store.queue_received().await.unwrap(), 0);
    assert!(!woken(&store.wake.queued).await, "nothing new for the modems");
    const COUNTED: &[State] = &[State::Received, State::Queued, State::Sending];
    assert_eq!(
        store.count_in_states(COUNTED).await.unwrap(),
        [("queued".to_string(), 2)]
    );
}

async fn routes_move_requests_to_their_stage(store: &Store) {
    let ids = store.receive(to(&[FR, UK, DE, US, NL], None)).await.unwrap();
    let due = store.due_for_routing(10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), ids, "oldest first");
    assert_eq!(due[1].number, UK);
    assert!(due[1].refused.is_empty() && due[1].tried.is_empty());
    let first_two: Vec<i64> = store.due_for_routing(2).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(first_two, ids[..2]);

    drain(store).await;
    let now = now_ms();
    store
        .route(vec![
            (
                ids[0],
                Route::Local {
                    detail: "to the modems".into(),
                },
            ),
            (
                ids[1],
                Route::Peer {
                    name: "b".into(),
                    detail: "to peer b".into(),
                },
            ),
            (
                ids[2],
                Route::Wait {
                    at: now + MINUTE,
                    detail: "every peer is down".into(),
                },
            ),
            (
                ids[3],
                Route::Nowhere {
                    reason: "no instance sends to +1".into(),
                },
            ),
            (
                ids[4],
                Route::Wait {
                    at: now - 1,
                    detail: "look again".into(),
                },
            ),
        ])
        .await
        .unwrap();
    assert!(woken(&store.wake.queued).await);
    assert!(woken(&store.wake.forwarding).await);
    assert!(woken(&store.wake.outbound).await);

    assert_eq!(state(store, ids[0]).await, State::Queued);
    assert_eq!(
        last_event(store, ids[0]).await,
        ("queued".into(), "to the modems".into())
    );
    assert_eq!(state(store, ids[1]).await, State::Forwarding);
    assert_eq!(
        last_event(store, ids[1]).await,
        ("forwarding".into(), "to peer b".into())
    );
    assert_eq!(state(store, ids[2]).await, State::Received);
    assert_eq!(
        last_event(store, ids[2]).await,
        ("received".into(), "every peer is down".into())
    );
    let waiting = store.show(ids[2]).await.unwrap().request;
    assert_eq!(waiting.reason.as_deref(), Some("every peer is down"));
    let failed = store.show(ids[3]).await.unwrap().request;
    assert_eq!(failed.state, State::Failed);
    assert_eq!(failed.status.as_deref(), Some("5.4.4"));
    assert_eq!(failed.reason.as_deref(), Some("no instance sends to +1"));
    assert_eq!(
        history(store, ids[3]).await[1..],
        [
            ("failed".into(), "5.4.4 no instance sends to +1".into()),
            ("dsn".into(), "failed DSN queued for the sender".into())
        ]
    );
    assert_eq!(
        dsns(store).await,
        [(ids[3], DsnAction::Failed)],
        "no NOTIFY: failures only"
    );

    // One waits a minute; the other's wait is over already.
    let due: Vec<i64> = store.due_for_routing(10).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(due, [ids[4]]);
    // The same reason again adds no line; another one does.
    let lines = history(store, ids[4]).await.len();
    let wait = |detail: &str| Route::Wait {
        at: now_ms() - 1,
        detail: detail.into(),
    };
    store.route(vec![(ids[4], wait("look again"))]).await.unwrap();
    assert_eq!(history(store, ids[4]).await.len(), lines);
    store.route(vec![(ids[4], wait("still nothing"))]).await.unwrap();
    assert_eq!(history(store, ids[4]).await.len(), lines + 1);

    // A route for a request that moved on changes nothing.
    let peer = Route::Peer {
        name: "b".into(),
        detail: "late".into(),
    };
    store.route(vec![(ids[0], peer)]).await.unwrap();
    assert_eq!(state(store, ids[0]).await, State::Queued);

    const ALL: &[State] = &State::ALL;
    let mut counts = store.count_in_states(ALL).await.unwrap();
    counts.sort();
    let expected: Vec<(String, i64)> = [("failed", 1), ("forwarding", 1), ("queued", 1), ("received", 2)]
        .iter()
        .map(|&(s, n)| (s.to_string(), n))
        .collect();
    assert_eq!(counts, expected);
}

async fn reach_lists_reroutes_and_fails_what_the_tariffs_no_longer_cover(store: &Store) {
    let ids = store.receive(to(&[FR, UK, DE, NL], None)).await.unwrap();
    let outside = |prefixes: &[&str]| {
        let prefixes = prefixes.iter().map(|p| p.to_string()).collect();
        async move {
            let found = store.waiting_outside(prefixes).await.unwrap();
            found
                .into_iter()
                .map(|(id, number)| (id, number.as_str().to_string()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        outside(&["+33", "+31"]).await,
        [(ids[1], UK.to_string()), (ids[2], DE.to_string())],
        "received ones, oldest first"
    );
    let routes = ids[1..]
        .iter()
        .map(|&id| (id, Route::Local { detail: "here".into() }))
        .collect();
    store.route(routes).await.unwrap();
    assert_eq!(
        outside(&["+33", "+49", "+31"]).await,
        [(ids[1], UK.to_string())],
        "queued ones too"
    );
    assert!(outside(&["+"]).await.is_empty(), "\"+\" covers every number");
    assert_eq!(outside(&[]).await.len(), 4);

    drain(store).await;
    assert!(store.reroute_queued(ids[1]).await.unwrap());
    assert!(woken(&store.wake.received).await);
    assert_eq!(state(store, ids[1]).await, State::Received);
    assert_eq!(
        last_event(store, ids[1]).await,
        (
            "received".into(),
            "no modem of this instance sends it any more: routed again".into()
        )
    );
    assert!(!store.reroute_queued(ids[1]).await.unwrap(), "no longer queued");

    store
        .fail_unroutable(ids[1], "no instance covers +44".into())
        .await
        .unwrap();
    let failed = store.show(ids[1]).await.unwrap().request;
    assert_eq!(failed.state, State::Failed);
    assert_eq!(failed.status.as_deref(), Some("5.4.4"));
    assert_eq!(failed.reason.as_deref(), Some("no instance covers +44"));
    assert_eq!(dsns(store).await, [(ids[1], DsnAction::Failed)]);

    // Moved on since it was listed: left alone.
    assert!(store.claim(ids[2], "m49", MINUTE).await.unwrap());
    store.fail_unroutable(ids[2], "too late".into()).await.unwrap();
    assert_eq!(state(store, ids[2]).await, State::Sending);
    assert_eq!(dsns(store).await.len(), 1);

    // A part of it reached a modem: its parts leave from one SIM, it stays.
    assert!(store.claim(ids[3], "m31", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(ids[3], 1, "m31", MINUTE).await.unwrap());
    assert_eq!(store.mark_part_sent(ids[3], 1, 2, 5, false).await.unwrap(), None);
    store.requeue(ids[3], 0, "modem reset".into()).await.unwrap();
    assert_eq!(state(store, ids[3]).await, State::Queued);
    assert!(!store.reroute_queued(ids[3]).await.unwrap());
    assert_eq!(state(store, ids[3]).await, State::Queued);
}

async fn dispatch_finds_the_oldest_request_each_modem_may_send(store: &Store) {
    let before = now_ms();
    let ids = queue(store, to(&[FR, UK, DE, US], None)).await;
    let after = now_ms();
    let (fr, uk, de, us) = (ids[0], ids[1], ids[2], ids[3]);
    let modem = |name: &str, prefixes: &[&str]| (name.to_string(), prefixes.iter().map(|p| p.to_string()).collect());
    let modems = vec![
        modem("m33", &["+33"]),
        modem("m44", &["+44"]),
        modem("m4", &["+4"]),
        modem("m447", &["+447"]),
        modem("m448", &["+448"]),
        modem("mall", &["+"]),
        modem("m1", &["+1", "+12"]),
        modem("m49-44", &["+49", "+44"]),
        modem("none", &[]),
    ];
    let found = store.next_for_modems(modems.clone(), DAY).await.unwrap();
    let found_ids: Vec<Option<i64>> = found.iter().map(|f| f.as_ref().map(|r| r.id)).collect();
    assert_eq!(
        found_ids,
        [
            Some(fr),
            Some(uk),
            Some(uk),
            Some(uk),
            None,
            Some(fr),
            Some(us),
            Some(uk),
            None
        ]
    );
    let first = found[0].as_ref().unwrap();
    assert_eq!(first.number, FR);
    assert_eq!(first.text, "x");
    assert_eq!(first.parts, 1);
    assert_eq!(first.attempts, 0);
    assert!(first.sent_parts.is_empty());
    assert_eq!(first.last_modem, None);
    assert!((before..=after).contains(&first.valid_from), "{}", first.valid_from);

    // Past their validity: none.
    let late = store.next_for_modems(modems[..6].to_vec(), -MINUTE).await.unwrap();
    assert!(late.iter().all(Option::is_none));

    // Not due yet: skipped; `next_due_in` says when.
    assert_eq!(store.next_due_in().await.unwrap(), None);
    assert!(store.claim(fr, "m33", MINUTE).await.unwrap());
    assert_eq!(next(store, "m33", &["+33"]).await.map(|r| r.id), None, "claimed");
    drain(store).await;
    store.requeue(fr, MINUTE, "modem busy".into()).await.unwrap();
    assert!(woken(&store.wake.queued).await);
    assert_eq!(next(store, "m33", &["+33"]).await.map(|r| r.id), None, "not due");
    assert_eq!(next(store, "mall", &["+"]).await.map(|r| r.id), Some(uk));
    let due_in = store.next_due_in().await.unwrap().unwrap();
    assert!((MINUTE as u64 - 10_000..=MINUTE as u64).contains(&due_in), "{due_in}");
    store.claim(uk, "m44", MINUTE).await.unwrap();
    assert_eq!(next(store, "m4", &["+4"]).await.map(|r| r.id), Some(de));

    // A part sent by one modem pins the request to it.
    let nl = queue(store, mail(&[NL], 2)).await[0];
    assert!(store.claim(nl, "m31", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(nl, 1, "m31", MINUTE).await.unwrap());
    assert_eq!(store.mark_part_sent(nl, 1, 2, 9, false).await.unwrap(), None);
    store.requeue(nl, -1, "modem reset".into()).await.unwrap();
    assert_eq!(
        next(store, "other", &["+31"]).await.map(|r| r.id),
        None,
        "pinned to m31"
    );
    let pinned = next(store, "m31", &["+31"]).await.unwrap();
    assert_eq!(pinned.id, nl);
    assert_eq!(pinned.sent_parts, [1]);
    assert_eq!(pinned.last_modem.as_deref(), Some("m31"));
    assert_eq!(pinned.attempts, 1);
    assert_eq!(pinned.parts, 2);
    // Still its, once its prefixes no longer cover the number (a cheaper modem of the
    // site took them over): the rest of the SMS must leave from the same SIM.
    let pinned = next(store, "m31", &["+44"]).await.unwrap();
    assert_eq!(pinned.id, nl);
}

async fn sending_holds_a_lease_and_marks_parts(store: &Store) {
    let ids = queue(store, to(&[FR, UK, DE, US], None)).await;
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);

    assert!(store.claim(a, "m1", MINUTE).await.unwrap());
    assert!(!store.claim(a, "m2", MINUTE).await.unwrap(), "claimed already");
    let row = store.show(a).await.unwrap().request;
    assert_eq!(row.state, State::Sending);
    assert_eq!(row.modem.as_deref(), Some("m1"));
    assert_eq!(row.attempts, 1);
    assert_eq!(
        last_event(store, a).await,
        ("sending".into(), "claimed by modem m1".into())
    );

    assert!(
        !store.mark_part_submitting(a, 1, "m2", MINUTE).await.unwrap(),
        "m2 holds no lease"
    );
    assert!(parts(store, a).await.is_empty());
    assert!(store.mark_part_submitting(a, 1, "m1", MINUTE).await.unwrap());
    assert_eq!(parts(store, a).await, [(1, "m1".into(), None, PartStatus::Submitting)]);
    let sent_after = store.mark_part_sent(a, 1, 1, 42, false).await.unwrap();
    assert!(
        sent_after.is_some_and(|d| d < Duration::from_secs(60)),
        "{sent_after:?}"
    );
    let row = store.show(a).await.unwrap().request;
    assert_eq!(row.state, State::Sent);
    assert_eq!(row.reason, None);
    assert_eq!(parts(store, a).await, [(1, "m1".into(), Some(42), PartStatus::Sent)]);
    assert_eq!(last_event(store, a).await, ("sent".into(), "sent".into()));
    assert!(dsns(store).await.is_empty(), "no NOTIFY: nothing for a success");

    // A lease that ran out: the modem must not send.
    assert!(store.claim(b, "m1", -1).await.unwrap());
    assert!(!store.mark_part_submitting(b, 1, "m1", MINUTE).await.unwrap());
    // Each part renews the lease, for as long as it says.
    assert!(store.claim(c, "m1", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(c, 1, "m1", -1).await.unwrap());
    assert!(!store.mark_part_submitting(c, 1, "m1", MINUTE).await.unwrap());

    // A temporary failure: queued again, due later, the reason kept until it is sent.
    drain(store).await;
    store.requeue(b, MINUTE, "modem busy".into()).await.unwrap();
    assert!(woken(&store.wake.queued).await);
    let row = store.show(b).await.unwrap().request;
    assert_eq!(row.state, State::Queued);
    assert_eq!(row.reason.as_deref(), Some("modem busy"));
    assert_eq!(last_event(store, b).await, ("queued".into(), "modem busy".into()));
    let due_in = store.next_due_in().await.unwrap().unwrap();
    assert!((MINUTE as u64 - 10_000..=MINUTE as u64).contains(&due_in), "{due_in}");
    let lines = history(store, b).await.len();
    store.requeue(b, 0, "again".into()).await.unwrap();
    assert_eq!(history(store, b).await.len(), lines, "not sending: nothing");
    assert_eq!(state(store, b).await, State::Queued);

    // The submitting part of a requeued request is forgotten.
    store.requeue(c, 0, "modem reset".into()).await.unwrap();
    assert!(parts(store, c).await.is_empty());

    // No answer to AT+CMGS: uncertain, never handed out again.
    assert!(store.claim(d, "m1", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(d, 1, "m1", MINUTE).await.unwrap());
    store.mark_uncertain(d, "no answer to AT+CMGS".into()).await.unwrap();
    let row = store.show(d).await.unwrap().request;
    assert_eq!(row.state, State::Uncertain);
    assert_eq!(row.reason.as_deref(), Some("no answer to AT+CMGS"));
    store.mark_uncertain(b, "not sending".into()).await.unwrap();
    assert_eq!(
        state(store, b).await,
        State::Queued,
        "only a sending request becomes uncertain"
    );
    assert_eq!(next(store, "m1", &["+"]).await.map(|r| r.id), Some(c));
    assert!(store.claim(c, "m1", MINUTE).await.unwrap());
    assert_eq!(
        next(store, "m1", &["+"]).await.map(|r| r.id),
        None,
        "b not due, d uncertain"
    );
}

async fn a_request_is_sent_once_all_its_parts_reached_the_network(store: &Store) {
    let mut two = to(&[FR], Some("SUCCESS"));
    two.parts = 2;
    let a = queue(store, two).await[0];
    let b = queue(store, to(&[UK], Some("SUCCESS"))).await[0];
    let c = queue(store, to(&[DE], None)).await[0];

    // Parts in any order; the last one completes the request.
    assert!(store.claim(a, "m1", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(a, 2, "m1", MINUTE).await.unwrap());
    assert_eq!(store.mark_part_sent(a, 2, 2, 8, true).await.unwrap(), None);
    assert_eq!(state(store, a).await, State::Sending);
    assert!(dsns(store).await.is_empty());
    assert!(store.mark_part_submitting(a, 1, "m1", MINUTE).await.unwrap());
    drain(store).await;
    assert!(store.mark_part_sent(a, 1, 2, 7, true).await.unwrap().is_some());
    assert!(woken(&store.wake.outbound).await);
    assert_eq!(state(store, a).await, State::Sent);
    assert_eq!(
        dsns(store).await,
        [(a, DsnAction::Relayed)],
        "unreported: relayed at once"
    );
    let lines = history(store, a).await;
    let n = lines.len();
    assert_eq!(
        lines[n - 2..],
        [
            ("sent".into(), "all 2 parts sent".into()),
            ("dsn".into(), "relayed DSN queued for the sender".into())
        ],
        "{lines:?}"
    );

    // Every part went out in an earlier attempt: the next claim only completes it.
    assert!(store.claim(b, "m1", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(b, 1, "m1", MINUTE).await.unwrap());
    assert_eq!(store.mark_part_sent(b, 1, 2, 3, false).await.unwrap(), None);
    store.requeue(b, -1, "modem reset".into()).await.unwrap();
    assert!(store.claim(b, "m1", MINUTE).await.unwrap());
    assert!(store.mark_sent_if_complete(b, 1, true).await.unwrap().is_some());
    assert_eq!(state(store, b).await, State::Sent);
    assert!(dsns(store).await.contains(&(b, DsnAction::Relayed)));
    assert_eq!(
        store.mark_sent_if_complete(b, 1, true).await.unwrap(),
        None,
        "sent already"
    );

    // Nothing sent yet: not complete.
    assert!(store.claim(c, "m1", MINUTE).await.unwrap());
    assert_eq!(store.mark_sent_if_complete(c, 1, false).await.unwrap(), None);
    assert_eq!(state(store, c).await, State::Sending);
}

async fn status_reports_settle_parts_and_requests(store: &Store) {
    let a = queue(store, to(&[FR], Some("SUCCESS,FAILURE"))).await[0];
    let b = queue(store, to(&[UK], None)).await[0];
    let mut two = to(&[DE], Some("SUCCESS"));
    two.parts = 2;
    let c = queue(store, two).await[0];
    let d = queue(store, to(&[US], Some("SUCCESS"))).await[0];
    send(store, a, "m1", 1, 10, false).await.unwrap();
    send(store, b, "m1", 1, 11, false).await.unwrap();
    send(store, c, "m2", 2, 12, false).await.unwrap();
    send(store, d, "m2", 1, 20, true).await.unwrap();
    assert_eq!(dsns(store).await, [(d, DsnAction::Relayed)]);

    // The SMS centre writes the number in national form: its last 8 digits match.
    drain(store).await;
    let report = store
        .record_status_report("m1", 10, "0477858589".into(), true, "delivered".into())
        .await
        .unwrap()
        .unwrap();
    assert!(woken(&store.wake.outbound).await);
    assert_eq!(report.request, a);
    assert!(report.after < Duration::from_secs(60));
    assert_eq!(state(store, a).await, State::Delivered);
    assert_eq!(last_event(store, a).await.0, "dsn");
    assert!(
        history(store, a)
            .await
            .contains(&("delivered".into(), "delivered".into()))
    );
    assert_eq!(
        parts(store, a).await,
        [(1, "m1".into(), Some(10), PartStatus::Delivered)]
    );
    assert!(dsns(store).await.contains(&(a, DsnAction::Delivered)));

    let report = |modem: &'static str, mr: u8, number: &str, delivered: bool| {
        let number = number.to_string();
        async move {
            store
                .record_status_report(modem, mr, number, delivered, "absent subscriber".into())
                .await
                .unwrap()
                .map(|r| r.request)
        }
    };
    assert_eq!(report("m1", 10, FR, true).await, None, "reported already");
    assert_eq!(report("m2", 11, UK, true).await, None, "another modem's reference");
    assert_eq!(report("m1", 99, UK, true).await, None, "an unknown reference");
    assert_eq!(report("m1", 11, "+447700900999", true).await, None, "another number");

    assert_eq!(report("m1", 11, UK, false).await, Some(b));
    let failed = store.show(b).await.unwrap().request;
    assert_eq!(failed.state, State::Failed);
    assert_eq!(failed.status.as_deref(), Some("5.4.0"));
    assert_eq!(
        failed.reason.as_deref(),
        Some("part 1 not delivered: absent subscriber")
    );
    assert_eq!(parts(store, b).await[0].3, PartStatus::Failed);
    assert!(dsns(store).await.contains(&(b, DsnAction::Failed)));

    // Every part must be delivered.
    assert_eq!(report("m2", 12, DE, true).await, Some(c));
    assert_eq!(state(store, c).await, State::Sent);
    assert_eq!(report("m2", 13, DE, true).await, Some(c));
    assert_eq!(state(store, c).await, State::Delivered);

    // Told `relayed` already: not told `delivered` again.
    assert_eq!(report("m2", 20, US, true).await, Some(d));
    assert_eq!(state(store, d).await, State::Delivered);
    assert_eq!(
        dsns(store).await,
        [
            (a, DsnAction::Delivered),
            (b, DsnAction::Failed),
            (c, DsnAction::Delivered),
            (d, DsnAction::Relayed)
        ]
    );
}

async fn recovery_requeues_or_makes_uncertain(store: &Store) {
    let ids = queue(store, to(&[FR, UK, US, NL], None)).await;
    let (a, b, d, e) = (ids[0], ids[1], ids[2], ids[3]);
    let mut two = to(&[DE], None);
    two.parts = 2;
    let c = queue(store, two).await[0];
    assert!(store.claim(a, "m1", MINUTE).await.unwrap());
    assert!(store.claim(b, "m1", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(b, 1, "m1", MINUTE).await.unwrap());
    assert!(store.claim(c, "m2", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(c, 1, "m2", MINUTE).await.unwrap());
    assert_eq!(store.mark_part_sent(c, 1, 2, 1, false).await.unwrap(), None);

    // At start: every lease, run out or not.
    drain(store).await;
    assert_eq!(store.recover_leases(i64::MAX).await.unwrap(), 3);
    assert!(woken(&store.wake.queued).await);
    let row = store.show(a).await.unwrap().request;
    assert_eq!(row.state, State::Queued);
    assert_eq!(
        row.reason.as_deref(),
        Some("interrupted before any part reached the modem")
    );
    let row = store.show(b).await.unwrap().request;
    assert_eq!(row.state, State::Uncertain);
    assert_eq!(
        row.reason.as_deref(),
        Some("interrupted after AT+CMGS without an answer: may have been sent")
    );
    assert_eq!(state(store, c).await, State::Queued, "its sent part is not in doubt");
    assert_eq!(parts(store, c).await, [(1, "m2".into(), Some(1), PartStatus::Sent)]);

    // Later: only the leases that ran out.
    assert!(store.claim(d, "m1", MINUTE).await.unwrap());
    assert!(store.claim(e, "m2", -1).await.unwrap());
    assert_eq!(store.recover_leases(now_ms()).await.unwrap(), 1);
    assert_eq!(state(store, d).await, State::Sending);
    assert_eq!(state(store, e).await, State::Queued);
    assert_eq!(store.recover_leases(now_ms()).await.unwrap(), 0);
}

async fn lifecycle_fails_expires_and_retries(store: &Store) {
    let ids = store.receive(to(&[FR, UK, DE, US], None)).await.unwrap();
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    let routes = [c, d]
        .iter()
        .map(|&id| (id, Route::Local { detail: "here".into() }))
        .collect();
    store.route(routes).await.unwrap();

    drain(store).await;
    store
        .fail(a, State::Failed, "5.1.1", "no such number".into())
        .await
        .unwrap();
    assert!(woken(&store.wake.outbound).await);
    let row = store.show(a).await.unwrap().request;
    assert_eq!(row.state, State::Failed);
    assert_eq!(row.status.as_deref(), Some("5.1.1"));
    assert_eq!(row.reason.as_deref(), Some("no such number"));
    assert!(
        history(store, a)
            .await
            .contains(&("failed".into(), "5.1.1 no such number".into()))
    );
    assert_eq!(dsns(store).await, [(a, DsnAction::Failed)]);
    let lines = history(store, a).await.len();
    store.fail(a, State::Failed, "5.1.1", "again".into()).await.unwrap();
    assert_eq!(history(store, a).await.len(), lines, "failed already");
    assert_eq!(dsns(store).await.len(), 1, "one DSN");

    // Expiry: what waits for a route or a modem, not what a modem holds.
    assert!(store.claim(d, "m1", MINUTE).await.unwrap());
    assert_eq!(store.expire_overdue(DAY).await.unwrap(), 0);
    assert_eq!(store.expire_overdue(-MINUTE).await.unwrap(), 2);
    for id in [b, c] {
        let row = store.show(id).await.unwrap().request;
        assert_eq!(row.state, State::Expired);
        assert_eq!(row.status.as_deref(), Some("4.4.7"));
        assert_eq!(row.reason.as_deref(), Some("not sent within its validity"));
    }
    assert_eq!(state(store, d).await, State::Sending);
    assert_eq!(
        dsns(store).await,
        [(a, DsnAction::Failed), (b, DsnAction::Failed), (c, DsnAction::Failed)]
    );

    // Retry: routed afresh, with a validity of its own.
    drain(store).await;
    let before = now_ms();
    assert!(store.retry(b).await.unwrap());
    assert!(woken(&store.wake.received).await);
    assert!(woken(&store.wake.queued).await);
    let row = store.show(b).await.unwrap().request;
    assert_eq!(row.state, State::Received);
    assert_eq!((row.status, row.reason, row.attempts), (None, None, 0));
    assert_eq!(
        last_event(store, b).await,
        ("received".into(), "retried by the operator".into())
    );
    assert!(!store.retry(b).await.unwrap(), "received: nothing to retry");
    assert!(store.retry(a).await.unwrap());
    assert_eq!(state(store, a).await, State::Received);
    assert!(!store.retry(d).await.unwrap(), "sending: nothing to retry");
    store
        .route(vec![(b, Route::Local { detail: "here".into() })])
        .await
        .unwrap();
    let found = next(store, "m", &["+44"]).await.unwrap();
    assert_eq!(found.id, b);
    assert!(found.valid_from >= before, "validity from the retry");

    // An uncertain one whose network took a part: back to the queue, that part kept.
    let mut two = to(&[NL], None);
    two.parts = 2;
    let e = queue(store, two).await[0];
    assert!(store.claim(e, "m31", MINUTE).await.unwrap());
    assert!(store.mark_part_submitting(e, 1, "m31", MINUTE).await.unwrap());
    assert_eq!(store.mark_part_sent(e, 1, 2, 4, false).await.unwrap(), None);
    assert!(store.mark_part_submitting(e, 2, "m31", MINUTE).await.unwrap());
    store.mark_uncertain(e, "no answer".into()).await.unwrap();
    assert!(store.retry(e).await.unwrap());
    assert_eq!(state(store, e).await, State::Queued);
    assert_eq!(parts(store, e).await, [(1, "m31".into(), Some(4), PartStatus::Sent)]);
    let found = next(store, "m31", &["+31"]).await.unwrap();
    assert_eq!((found.id, found.sent_parts, found.attempts), (e, vec![1], 0));

    // A forward its peer may hold is released to routing; another one is not retried.
    let ids = store.receive(to(&[FR, UK], None)).await.unwrap();
    let (f, g) = (ids[0], ids[1]);
    let to_b = |id| {
        (
            id,
            Route::Peer {
                name: "b".into(),
                detail: "to b".into(),
            },
        )
    };
    store.route(vec![to_b(f), to_b(g)]).await.unwrap();
    assert!(
        !store.retry(g).await.unwrap(),
        "a forward on its way is not the operator's"
    );
    let taken: Vec<i64> = store
        .due_for_forwarding(10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(taken, [f, g]);
    let unanswered = ForwardOutcome::Unanswered {
        at: now_ms() + MINUTE,
        reason: "no answer after the data".into(),
    };
    store.record_forward(f, "b".into(), unanswered).await.unwrap();
    store.release_forwards(vec![g]).await.unwrap();
    assert!(store.retry(f).await.unwrap());
    assert_eq!(state(store, f).await, State::Received);
    let due = store.due_for_routing(10).await.unwrap();
    let routed = due.iter().find(|r| r.id == f).unwrap();
    assert!(routed.tried.is_empty() && routed.refused.is_empty());
    assert!(!store.retry(g).await.unwrap());
}

async fn forwarding_records_each_outcome(store: &Store) {
    let mut forwarded = to(&[FR, UK, DE, US, NL, FR], Some("SUCCESS,FAILURE"));
    forwarded.envid = Some("env-9".into());
    forwarded.ret = Some("FULL");
    forwarded.requests[0].orcpt = Some("rfc822;x@example.org".into());
    let raw = forwarded.raw.clone();
    let ids = store.receive(forwarded).await.unwrap();
    let (a, b, c, d, e, f) = (ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]);
    drain(store).await;
    let routes = ids
        .iter()
        .map(|&id| {
            (
                id,
                Route::Peer {
                    name: "b".into(),
                    detail: "to b".into(),
                },
            )
        })
        .collect();
    store.route(routes).await.unwrap();
    assert!(woken(&store.wake.forwarding).await);
    assert_eq!(store.next_forward_in().await.unwrap(), None, "none waits for a retry");

    let before = now_ms();
    let due = store.due_for_forwarding(10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), ids, "oldest first");
    let first = &due[0];
    assert_eq!(first.peer, "b");
    assert_eq!(first.attempts, 0);
    assert_eq!(first.number, FR);
    assert_eq!(first.recipient, format!("{FR}@sms"));
    assert_eq!(first.notify.as_deref(), Some("SUCCESS,FAILURE"));
    assert_eq!(first.orcpt.as_deref(), Some("rfc822;x@example.org"));
    assert_eq!(first.sender, "a@example.com");
    assert_eq!(first.envid.as_deref(), Some("env-9"));
    assert_eq!(first.ret.as_deref(), Some("FULL"));
    assert_eq!(&first.raw[..], &raw[..]);
    assert_eq!(first.origin, None);
    assert!(first.trace.is_empty());
    assert!(!first.unanswered);
    assert!(first.valid_from <= before);

    let record = |id: i64, peer: &str, outcome: ForwardOutcome| store.record_forward(id, peer.into(), outcome);
    record(a, "b", ForwardOutcome::Accepted("250 2.0.0 queued as 7".into()))
        .await
        .unwrap();
    let row = store.show(a).await.unwrap().request;
    assert_eq!(row.state, State::Forwarded);
    assert_eq!(row.reason, None);
    assert_eq!(
        last_event(store, a).await,
        ("forwarded".into(), "forwarded to b: 250 2.0.0 queued as 7".into())
    );
    assert!(dsns(store).await.is_empty(), "the peer owns it now: no DSN from here");

    let retry = ForwardOutcome::Retry {
        at: now_ms() + MINUTE,
        reason: "421 busy".into(),
    };
    record(b, "b", retry).await.unwrap();
    let row = store.show(b).await.unwrap().request;
    assert_eq!((row.state, row.attempts), (State::Forwarding, 1));
    let (_, detail) = last_event(store, b).await;
    assert!(
        detail.starts_with("forward to b failed: 421 busy; retry in "),
        "{detail}"
    );
    let due_in = store.next_forward_in().await.unwrap().unwrap();
    assert!((MINUTE as u64 - 10_000..=MINUTE as u64).contains(&due_in), "{due_in}");

    drain(store).await;
    let failover = |refused| ForwardOutcome::Failover {
        reason: "connection refused".into(),
        refused,
    };
    record(c, "b", failover(false)).await.unwrap();
    assert!(woken(&store.wake.received).await);
    record(d, "b", failover(true)).await.unwrap();
    assert_eq!(state(store, c).await, State::Received);
    assert_eq!(
        last_event(store, d).await,
        (
            "received".into(),
            "b refused it (connection refused): routing again without b".into()
        )
    );
    let routing = store.due_for_routing(10).await.unwrap();
    let (rc, rd) = (&routing[0], &routing[1]);
    assert_eq!((rc.id, rd.id), (c, d));
    assert_eq!((rc.tried.clone(), rc.refused.clone()), (vec!["b".to_string()], vec![]));
    assert_eq!((rd.tried.clone(), rd.refused.clone()), (vec![], vec!["b".to_string()]));
    // After a wait, peers that only failed are tried again; a refusal stands.
    let wait = |id| {
        (
            id,
            Route::Wait {
                at: now_ms() - 1,
                detail: "every peer is down".into(),
            },
        )
    };
    store.route(vec![wait(c), wait(d)]).await.unwrap();
    let routing = store.due_for_routing(10).await.unwrap();
    assert!(routing[0].tried.is_empty() && routing[0].refused.is_empty());
    assert_eq!(routing[1].refused, ["b"]);
    assert!(routing[1].tried.is_empty());

    let unanswered = ForwardOutcome::Unanswered {
        at: now_ms() - 1,
        reason: "timeout after the data".into(),
    };
    record(e, "b", unanswered).await.unwrap();
    let row = store.show(e).await.unwrap().request;
    assert_eq!((row.state, row.attempts), (State::Forwarding, 1));
    assert!(
        row.reason.as_deref().is_some_and(|r| r.starts_with("b may hold it")),
        "{row:?}"
    );

    record(
        f,
        "b",
        ForwardOutcome::Uncertain {
            reason: "the validity ended".into(),
        },
    )
    .await
    .unwrap();
    let row = store.show(f).await.unwrap().request;
    assert_eq!(row.state, State::Uncertain);
    assert_eq!(row.reason.as_deref(), Some("the validity ended"));

    // Outcomes for a request no longer forwarding to that peer are ignored.
    record(a, "b", failover(false)).await.unwrap();
    assert_eq!(state(store, a).await, State::Forwarded);
    record(e, "zz", ForwardOutcome::Accepted("250".into())).await.unwrap();
    assert_eq!(state(store, e).await, State::Forwarding);

    let again = store.due_for_forwarding(10).await.unwrap();
    assert_eq!(
        again.iter().map(|r| r.id).collect::<Vec<_>>(),
        [e],
        "b waits for its retry"
    );
    assert!(again[0].unanswered);
    assert_eq!(again[0].attempts, 1);
    record(e, "b", ForwardOutcome::Accepted("250 at last".into()))
        .await
        .unwrap();
    assert_eq!(state(store, e).await, State::Forwarded);
}

async fn forwards_in_flight_are_recovered_or_released(store: &Store) {
    let ids = store.receive(to(&[FR, UK, DE], None)).await.unwrap();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let to_b = |id| {
        (
            id,
            Route::Peer {
                name: "b".into(),
                detail: "to b".into(),
            },
        )
    };
    store.route(vec![to_b(a), to_b(b)]).await.unwrap();
    assert_eq!(store.recover_forwards().await.unwrap(), 0, "none in flight");

    // Taken, then the gateway stopped: a and b may have reached b.
    assert_eq!(store.due_for_forwarding(10).await.unwrap().len(), 2);
    assert_eq!(store.recover_forwards().await.unwrap(), 2);
    for id in [a, b] {
        let row = store.show(id).await.unwrap().request;
        assert_eq!(row.state, State::Forwarding);
        assert!(
            row.reason.as_deref().is_some_and(|r| r.starts_with("b may hold it")),
            "{row:?}"
        );
        let (state, detail) = last_event(store, id).await;
        assert_eq!(state, "forwarding");
        assert!(
            detail.starts_with("the gateway stopped during a forward to b"),
            "{detail}"
        );
    }
    assert_eq!(store.recover_forwards().await.unwrap(), 0, "recovered once");
    let due = store.due_for_forwarding(10).await.unwrap();
    assert!(due.iter().all(|r| r.unanswered), "tried on b only");
    store.release_forwards(vec![a, b]).await.unwrap();

    // Taken and released before their turn: nothing to recover.
    store.route(vec![to_b(c)]).await.unwrap();
    let due: Vec<i64> = store
        .due_for_forwarding(10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(due, [a, b, c]);
    store.release_forwards(due).await.unwrap();
    assert_eq!(store.recover_forwards().await.unwrap(), 0);
    let row = store.show(c).await.unwrap().request;
    assert_eq!((row.state, row.reason), (State::Forwarding, None));
}

async fn dsns_follow_notify_and_time(store: &Store) {
    // What each NOTIFY gets for a failure.
    let notifies = [
        None,
        Some("NEVER"),
        Some("SUCCESS"),
        Some("DELAY"),
        Some("FAILURE"),
        Some("SUCCESS,FAILURE,DELAY"),
    ];
    let mut failing = Vec::new();
    for notify in notifies {
        failing.push(store.receive(to(&[FR], notify)).await.unwrap()[0]);
    }
    let mut null_sender = to(&[FR], Some("FAILURE"));
    null_sender.sender = String::new();
    failing.push(store.receive(null_sender).await.unwrap()[0]);
    for &id in &failing {
        store.fail(id, State::Failed, "5.0.0", "refused".into()).await.unwrap();
    }
    let failed = |i: usize| (failing[i], DsnAction::Failed);
    assert_eq!(dsns(store).await, [failed(0), failed(4), failed(5)]);

    // `delayed`: once, for those that asked, while unsent.
    let mut waiting = Vec::new();
    for notify in [Some("DELAY"), Some("SUCCESS,FAILURE,DELAY"), None, Some("SUCCESS")] {
        waiting.push(store.receive(to(&[UK], notify)).await.unwrap()[0]);
    }
    let mut null_sender = to(&[UK], Some("DELAY"));
    null_sender.sender = String::new();
    waiting.push(store.receive(null_sender).await.unwrap()[0]);
    store
        .route(vec![(waiting[1], Route::Local { detail: "here".into() })])
        .await
        .unwrap();
    assert_eq!(
        store.queue_timed_dsns(Some(DAY), None).await.unwrap(),
        0,
        "not late yet"
    );
    assert_eq!(store.queue_timed_dsns(Some(-MINUTE), None).await.unwrap(), 2);
    assert_eq!(store.queue_timed_dsns(Some(-MINUTE), None).await.unwrap(), 0, "once");
    let due = dsns(store).await;
    assert!(due.contains(&(waiting[0], DsnAction::Delayed)));
    assert!(due.contains(&(waiting[1], DsnAction::Delayed)));
    assert!(
        history(store, waiting[0])
            .await
            .contains(&("dsn".into(), "delayed DSN queued for the sender".into()))
    );
    // A delay does not spare the failure.
    store
        .fail(waiting[1], State::Expired, "4.4.7", "too late".into())
        .await
        .unwrap();
    assert!(dsns(store).await.contains(&(waiting[1], DsnAction::Failed)));

    // `relayed`: for those sent without a status report for too long, once.
    let sent: Vec<i64> = queue(store, to(&[DE], Some("SUCCESS")))
        .await
        .into_iter()
        .chain(queue(store, to(&[DE], None)).await)
        .collect();
    send(store, sent[0], "m1", 1, 1, false).await.unwrap();
    send(store, sent[1], "m1", 1, 2, false).await.unwrap();
    let wait = |wait_ms, since| Some(ReportWait { wait_ms, since });
    assert_eq!(
        store.queue_timed_dsns(None, wait(DAY, 0)).await.unwrap(),
        0,
        "may still come"
    );
    assert_eq!(
        store
            .queue_timed_dsns(None, wait(-MINUTE, now_ms() + MINUTE))
            .await
            .unwrap(),
        0,
        "looked at by an earlier sweep"
    );
    assert_eq!(store.queue_timed_dsns(None, wait(-MINUTE, 0)).await.unwrap(), 1);
    assert_eq!(store.queue_timed_dsns(None, wait(-MINUTE, 0)).await.unwrap(), 0, "once");
    assert!(dsns(store).await.contains(&(sent[0], DsnAction::Relayed)));
    // Told `relayed`: a delivery report queues nothing more.
    let report = store
        .record_status_report("m1", 1, DE.into(), true, "delivered".into())
        .await
        .unwrap();
    assert_eq!(report.map(|r| r.request), Some(sent[0]));
    let theirs: Vec<_> = dsns(store).await.into_iter().filter(|(id, _)| *id == sent[0]).collect();
    assert_eq!(theirs, [(sent[0], DsnAction::Relayed)]);
}

async fn dsns_are_delivered_retried_or_dropped(store: &Store) {
    assert_eq!(store.next_dsn_in().await.unwrap(), None);
    assert!(store.dsns_due(10).await.unwrap().is_empty());
    let mut failing = to(&[FR, UK, DE], None);
    failing.envid = Some("env-3".into());
    failing.ret = Some("HDRS");
    failing.requests[0].orcpt = Some("rfc822;x@example.org".into());
    let raw = failing.raw.clone();
    let ids = store.receive(failing).await.unwrap();
    let before = now_ms();
    for &id in &ids {
        store
            .fail(id, State::Failed, "5.1.1", "no such number".into())
            .await
            .unwrap();
    }
    assert_eq!(store.next_dsn_in().await.unwrap(), Some(0), "due now");

    let due = store.dsns_due(10).await.unwrap();
    assert_eq!(due.iter().map(|d| d.request).collect::<Vec<_>>(), ids, "oldest first");
    assert_eq!(store.dsns_due(1).await.unwrap().len(), 1);
    let first = &due[0];
    assert_eq!(first.action, DsnAction::Failed);
    assert!(first.created >= before);
    assert_eq!(first.attempts, 0);
    assert_eq!(first.sender, "a@example.com");
    assert_eq!(first.envid.as_deref(), Some("env-3"));
    assert_eq!(first.ret.as_deref(), Some("HDRS"));
    assert!(first.arrival <= before);
    assert_eq!(first.raw, raw);
    assert_eq!(first.recipient, format!("{FR}@sms"));
    assert_eq!(first.orcpt.as_deref(), Some("rfc822;x@example.org"));
    assert_eq!(first.number, FR);
    assert_eq!(first.text, "x");
    assert_eq!(first.parts, 1);
    assert_eq!(first.modem, None);
    assert_eq!(first.status.as_deref(), Some("5.1.1"));
    assert_eq!(first.reason.as_deref(), Some("no such number"));
    assert!(first.updated >= before);

    let record = |dsn, outcome| store.record_dsn_attempt(dsn, outcome);
    // Retried at once: due again, its attempt counted.
    let error = "451 try later".to_string();
    let retry_now = DsnOutcome::Retry {
        at: now_ms() - 1,
        error: error.clone(),
    };
    record(due[0].clone(), retry_now).await.unwrap();
    let again = store.dsns_due(10).await.unwrap();
    let retried = again.iter().find(|d| d.id == due[0].id).unwrap();
    assert_eq!(retried.attempts, 1);
    let later = DsnOutcome::Retry {
        at: now_ms() + MINUTE,
        error,
    };
    record(retried.clone(), later).await.unwrap();
    record(due[1].clone(), DsnOutcome::Sent("mx.example.com said 250".into()))
        .await
        .unwrap();
    record(due[2].clone(), DsnOutcome::Dropped("550 no such user".into()))
        .await
        .unwrap();
    assert!(store.dsns_due(10).await.unwrap().is_empty());
    let due_in = store.next_dsn_in().await.unwrap().unwrap();
    assert!((MINUTE as u64 - 10_000..=MINUTE as u64).contains(&due_in), "{due_in}");

    assert_eq!(
        last_event(store, ids[1]).await,
        (
            "dsn".into(),
            "failed DSN delivered to <a@example.com>: mx.example.com said 250".into()
        )
    );
    assert_eq!(
        last_event(store, ids[2]).await,
        (
            "dsn".into(),
            "failed DSN to <a@example.com> dropped: 550 no such user".into()
        )
    );
    assert_eq!(
        last_event(store, ids[0]).await,
        ("dsn".into(), "failed DSN queued for the sender".into()),
        "a retry adds no line"
    );
    assert_eq!(
        state(store, ids[1]).await,
        State::Failed,
        "a DSN does not move its request"
    );
}

fn rules() -> InboundRules {
    InboundRules::new(&crate::config::Inbound::default(), "conf-a")
}

fn part(modem: &str, from: &str, concat: Option<(u16, u8, u8)>, text: &str) -> ReceivedPart {
    ReceivedPart {
        modem: modem.into(),
        originator: from.into(),
        sent: "2026-11-26T10:00:00+01:00".into(),
        concat,
        text: text.into(),
    }
}

async fn incoming_parts_are_kept_once_and_make_one_sms(store: &Store) {
    let rules = rules();
    let receive = |p: ReceivedPart| async { store.receive_part(p, &rules).await.unwrap() };
    // Part 2 of 2 first, then a copy of it, then part 1, then a copy of that.
    assert_eq!(
        receive(part("m1", FR, Some((7, 2, 2)), "world")).await,
        PartOutcome::Waiting
    );
    assert_eq!(
        receive(part("m1", FR, Some((7, 2, 2)), "world")).await,
        PartOutcome::Duplicate
    );
    // The same reference from another sender, or to another modem, is another SMS.
    assert_eq!(
        receive(part("m2", FR, Some((7, 2, 1)), "other ")).await,
        PartOutcome::Waiting
    );
    assert_eq!(
        receive(part("m1", UK, Some((7, 2, 1)), "other ")).await,
        PartOutcome::Waiting
    );
    let PartOutcome::Complete(id) = receive(part("m1", FR, Some((7, 2, 1)), "hello ")).await else {
        panic!("part 1 completes it")
    };
    assert_eq!(
        receive(part("m1", FR, Some((7, 2, 1)), "hello ")).await,
        PartOutcome::Duplicate
    );
    let entry = store.inbox_entry(id).await.unwrap().unwrap();
    assert_eq!(
        (entry.sms.text.as_str(), entry.sms.parts, entry.sms.missing.as_deref()),
        ("hello world", 2, None)
    );
    assert_eq!((entry.sms.modem.as_str(), entry.sms.originator.as_str()), ("m1", FR));
    assert_eq!(entry.sms.sent.as_deref(), Some("2026-11-26T10:00:00+01:00"));
    // No mail was sent to FR, and there is no default recipient: kept, saying why.
    assert_eq!(entry.state, InboxState::Kept);
    assert_eq!(entry.recipient, None);
    assert!(entry.outcome.unwrap().contains("inbound.default_recipient is empty"));
    // A single SMS: a copy has its centre time and text; the same text later is new.
    let single = part("m1", UK, None, "ok");
    assert!(matches!(receive(single.clone()).await, PartOutcome::Complete(_)));
    assert_eq!(receive(single.clone()).await, PartOutcome::Duplicate);
    let later = ReceivedPart {
        sent: "2026-11-26T10:05:00+01:00".into(),
        ..single
    };
    assert!(matches!(receive(later).await, PartOutcome::Complete(_)));
    assert_eq!(store.inbox(10).await.unwrap().len(), 3, "newest first, three whole SMS");
    assert!(store.inbound_due(10).await.unwrap().is_empty(), "nothing to mail");

    // The sender reuses reference 7 for a new SMS: its parts have their own time stamps,
    // and are no copies of the first one's.
    let at = |minute: &str, concat, text: &str| ReceivedPart {
        sent: format!("2026-11-26T11:{minute}:00+01:00"),
        ..part("m1", FR, concat, text)
    };
    assert_eq!(receive(at("00", Some((7, 2, 1)), "new ")).await, PartOutcome::Waiting);
    let PartOutcome::Complete(reused) = receive(at("01", Some((7, 2, 2)), "one")).await else {
        panic!("the second SMS of reference 7 completes")
    };
    assert_eq!(store.inbox_entry(reused).await.unwrap().unwrap().sms.text, "new one");
    // While one waits for its part 2, another SMS with its reference begins: the first is
    // stored as what arrived, and the second goes on.
    assert_eq!(receive(at("10", Some((5, 2, 1)), "lost ")).await, PartOutcome::Waiting);
    assert_eq!(receive(at("20", Some((5, 2, 1)), "fresh ")).await, PartOutcome::Waiting);
    let first = store.inbox(1).await.unwrap().pop().unwrap();
    assert_eq!(
        (first.sms.text.as_str(), first.sms.missing.as_deref()),
        ("lost […]", Some("2"))
    );
    let PartOutcome::Complete(second) = receive(at("21", Some((5, 2, 2)), "start")).await else {
        panic!("whole")
    };
    assert_eq!(
        store.inbox_entry(second).await.unwrap().unwrap().sms.text,
        "fresh start"
    );
}

async fn an_sms_is_mailed_to_the_latest_sender_to_its_number_with_retries(store: &Store) {
    let rules = InboundRules {
        default_recipient: Some("desk@example.com".into()),
        ..rules()
    };
    let ids = queue(store, to(&[FR], None)).await;
    send(store, ids[0], "m1", 1, 1, true).await;
    let PartOutcome::Complete(id) = store.receive_part(part("m1", FR, None, "yes"), &rules).await.unwrap() else {
        panic!("whole")
    };
    // Nobody wrote to UK: the default recipient gets it.
    store.receive_part(part("m1", UK, None, "who?"), &rules).await.unwrap();
    assert_eq!(store.next_inbound_in().await.unwrap(), Some(0));
    let due = store.inbound_due(10).await.unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    let reply = due.iter().find(|m| m.sms.id == id).unwrap();
    assert_eq!(reply.recipient, "a@example.com");
    assert_eq!(
        reply.original.as_deref(),
        Some(&b"Subject: x\r\n\r\ny"[..]),
        "the original mail, to thread under"
    );
    let other = due.iter().find(|m| m.sms.id != id).unwrap();
    assert_eq!(
        (other.recipient.as_str(), other.original.is_none()),
        ("desk@example.com", true)
    );
    assert_eq!(store.inbox_entry(id).await.unwrap().unwrap().reply_to, Some(ids[0]));

    let retry = DsnOutcome::Retry {
        at: now_ms() + MINUTE,
        error: "451 try later".into(),
    };
    store.record_inbound_attempt(reply, retry).await.unwrap();
    store
        .record_inbound_attempt(other, DsnOutcome::Dropped("550 no such user".into()))
        .await
        .unwrap();
    assert!(
        store.inbound_due(10).await.unwrap().is_empty(),
        "one waits a minute, one is dropped"
    );
    assert!(store.next_inbound_in().await.unwrap().unwrap() > 50_000);
    let entry = store.inbox_entry(id).await.unwrap().unwrap();
    assert_eq!(
        (entry.state, entry.attempts, entry.outcome.as_deref()),
        (InboxState::Pending, 1, Some("451 try later"))
    );
    let dropped = store.inbox_entry(other.sms.id).await.unwrap().unwrap();
    assert_eq!(dropped.state, InboxState::Dropped);
    assert_eq!(
        dropped.outcome.as_deref(),
        Some("not mailed to <desk@example.com>: 550 no such user")
    );
    let sent = PendingInbound {
        attempts: 1,
        ..reply.clone()
    };
    store
        .record_inbound_attempt(&sent, DsnOutcome::Sent("250 ok".into()))
        .await
        .unwrap();
    let entry = store.inbox_entry(id).await.unwrap().unwrap();
    assert_eq!(
        (entry.state, entry.outcome.as_deref()),
        (InboxState::Sent, Some("mailed to <a@example.com>: 250 ok"))
    );
    // A second outcome for a mail already settled changes nothing.
    store
        .record_inbound_attempt(&sent, DsnOutcome::Dropped("late".into()))
        .await
        .unwrap();
    assert_eq!(store.inbox_entry(id).await.unwrap().unwrap().state, InboxState::Sent);
}

async fn an_incomplete_sms_is_stored_as_what_arrived_after_its_time(store: &Store) {
    let waiting = rules();
    store
        .receive_part(part("m1", FR, Some((9, 3, 2)), "middle"), &waiting)
        .await
        .unwrap();
    assert_eq!(store.complete_overdue(&waiting).await.unwrap(), 0, "an hour to wait");
    let overdue = InboundRules {
        reassembly_timeout_ms: -1,
        ..rules()
    };
    assert_eq!(store.complete_overdue(&overdue).await.unwrap(), 1);
    let entry = store.inbox(1).await.unwrap().pop().unwrap();
    assert_eq!(
        (entry.sms.text.as_str(), entry.sms.missing.as_deref()),
        ("[…]middle[…]", Some("1,3"))
    );
    assert_eq!(store.complete_overdue(&overdue).await.unwrap(), 0, "stored once");
    // Parts of a stored SMS are kept for their copies (a week at least): a copy of this
    // one, read again from a SIM after a crash, is known.
    assert_eq!(
        store
            .receive_part(part("m1", FR, Some((9, 3, 2)), "middle"), &waiting)
            .await
            .unwrap(),
        PartOutcome::Duplicate
    );
}

async fn stop_and_start_words_change_the_opt_out_list(store: &Store) {
    let rules = InboundRules {
        stop_reply: Some("No more SMS from us.".into()),
        ..rules()
    };
    let list = store.optout_list();
    let number: crate::e164::E164 = FR.parse().unwrap();
    let waiting = store.receive(to(&[FR, UK], Some("FAILURE"))).await.unwrap();
    store
        .receive_part(part("m1", FR, None, "  Stop \n"), &rules)
        .await
        .unwrap();
    // The confirmation: a request of its own, from the null sender, waiting for routing.
    let confirmations = |rows: Vec<crate::store::RequestRow>| -> Vec<(String, State)> {
        rows.into_iter()
            .filter(|r| r.sender.is_empty())
            .map(|r| (r.number, r.state))
            .collect()
    };
    let rows = store.list(QueueFilter::default()).await.unwrap();
    assert_eq!(confirmations(rows), [(FR.to_string(), State::Received)]);
    let again = ReceivedPart {
        sent: "2026-11-26T10:09:00+01:00".into(),
        ..part("m1", FR, None, "STOP")
    };
    store.receive_part(again, &rules).await.unwrap();
    let rows = store.list(QueueFilter::default()).await.unwrap();
    assert_eq!(confirmations(rows).len(), 1, "a second STOP is not confirmed again");
    // A mail let in at RCPT just before the STOP committed: failed in the transaction
    // that routes it (in a cluster), its route then changing nothing; the confirmation
    // (from the null sender) is routed.
    let late = store.receive(to(&[FR], None)).await.unwrap();
    let confirmation = store.list(QueueFilter::default()).await.unwrap();
    let confirmation = confirmation.iter().find(|r| r.sender.is_empty()).unwrap().id;
    let local = || Route::Local {
        detail: "routed to this instance's modems".into(),
    };
    store
        .route(vec![(late[0], local()), (confirmation, local())])
        .await
        .unwrap();
    assert_eq!(state(store, late[0]).await, State::Failed);
    assert_eq!(state(store, confirmation).await, State::Queued);
    // Alone (no peers), routing queues what was received: such a request fails in that
    // same transaction.
    let later = store.receive(to(&[FR], None)).await.unwrap();
    store.queue_received().await.unwrap();
    assert_eq!(state(store, later[0]).await, State::Failed);
    assert_eq!(
        state(store, waiting[1]).await,
        State::Queued,
        "another number is queued"
    );
    assert!(list.contains(&number), "in memory at once");
    assert_eq!(state(store, waiting[0]).await, State::Failed);
    assert_ne!(state(store, waiting[1]).await, State::Failed, "another number waits on");
    let failed = history(store, waiting[0]).await;
    assert!(
        failed
            .iter()
            .any(|(_, detail)| detail.contains("opted out of SMS from this gateway")),
        "{failed:?}"
    );
    assert!(dsns(store).await.contains(&(waiting[0], DsnAction::Failed)));
    let entry = store.inbox(1).await.unwrap().pop().unwrap();
    assert_eq!(entry.sms.kind, InboxKind::Stop);
    let listed = store.optouts(false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].source.as_str(), listed[0].seq),
        ("STOP texted to modem m1", Some(1))
    );
    assert_eq!(store.optout_feed(0).await.unwrap().len(), 1);
    assert!(store.optout_feed(1).await.unwrap().is_empty());

    store.receive_part(part("m1", FR, None, "START"), &rules).await.unwrap();
    assert!(!list.contains(&number));
    assert!(store.optouts(false).await.unwrap().is_empty());
    let feed = store.optout_feed(1).await.unwrap();
    assert_eq!(
        (feed.len(), feed[0].opted_out, feed[0].seq),
        (1, false, Some(2)),
        "{feed:?}"
    );
    // A peer's older change does not undo it; its newer one does, and is not passed on.
    let from_peer = |opted_out, changed| OptOut {
        number: number.clone(),
        opted_out,
        changed,
        source: "STOP texted to modem fr1".into(),
        origin: None,
        seq: Some(77),
    };
    assert_eq!(
        store.apply_peer_optouts("fr", vec![from_peer(true, 1)]).await.unwrap(),
        0
    );
    assert!(!list.contains(&number));
    assert_eq!(
        store
            .apply_peer_optouts("fr", vec![from_peer(true, now_ms() + 1000)])
            .await
            .unwrap(),
        1
    );
    assert!(list.contains(&number));
    let listed = store.optouts(false).await.unwrap();
    assert_eq!((listed[0].origin.as_deref(), listed[0].seq), (Some("fr"), Some(3)));
    assert!(
        store.optout_feed(2).await.unwrap().is_empty(),
        "a peer's change is not fed on"
    );
    // The next change of this instance's own takes the next seq: a peer that read up to
    // 2 gets it, none is given twice.
    let uk: crate::e164::E164 = UK.parse().unwrap();
    assert!(store.set_optout(uk, true, "smsgw optout add".into()).await.unwrap());
    let feed = store.optout_feed(2).await.unwrap();
    assert_eq!((feed.len(), feed[0].number.as_str(), feed[0].seq), (1, UK, Some(4)));
    // By hand: already out; then in.
    assert!(
        !store
            .set_optout(number.clone(), true, "smsgw optout add".into())
            .await
            .unwrap()
    );
    assert!(
        store
            .set_optout(number.clone(), false, "smsgw optout del".into())
            .await
            .unwrap()
    );
    assert!(!list.contains(&number));
}

async fn queue_summary_counts_states_and_the_oldest_waiting(store: &Store) {
    let empty = store.queue_summary().await.unwrap();
    assert!(empty.by_state.is_empty());
    assert_eq!(empty.oldest_waiting, None);

    let ids = store.receive(to(&[FR, UK, DE, US, NL], None)).await.unwrap();
    let routes = ids[1..4]
        .iter()
        .map(|&id| (id, Route::Local { detail: "here".into() }))
        .collect();
    store.route(routes).await.unwrap();
    assert!(store.claim(ids[2], "m1", MINUTE).await.unwrap());
    send(store, ids[3], "m1", 1, 1, false).await.unwrap();
    store.fail(ids[4], State::Failed, "5.0.0", "no".into()).await.unwrap();
    let summary = store.queue_summary().await.unwrap();
    let mut by_state = summary.by_state.clone();
    by_state.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(
        by_state,
        [
            (State::Failed, 1),
            (State::Queued, 1),
            (State::Received, 1),
            (State::Sending, 1),
            (State::Sent, 1)
        ]
    );
    let oldest = summary.oldest_waiting.unwrap();
    assert!(oldest < Duration::from_secs(60), "{oldest:?}");

    // Nothing waits any more.
    for &id in &ids[..3] {
        store.fail(id, State::Failed, "5.0.0", "no".into()).await.unwrap();
    }
    assert_eq!(store.queue_summary().await.unwrap().oldest_waiting, None);
}

async fn two_modems_claiming_one_request_at_once_get_it_once(store: &Store) {
    let ids = queue(store, to(&[FR, UK, DE, US], None)).await;
    for &id in &ids {
        let (one, two) = tokio::join!(store.claim(id, "m1", MINUTE), store.claim(id, "m2", MINUTE));
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(one != two, "request {id}: claimed by m1 {one}, by m2 {two}");
        let row = store.show(id).await.unwrap().request;
        assert_eq!(row.attempts, 1);
        assert_eq!(row.modem.as_deref(), Some(if one { "m1" } else { "m2" }));
        assert_eq!(history(store, id).await.len(), 3, "received, queued, one claim");
    }
}

async fn a_status_report_matches_the_latest_part_with_its_reference(store: &Store) {
    // References wrap at 256: an old part and a new one may share one.
    let old = queue(store, to(&[FR], None)).await[0];
    send(store, old, "m1", 1, 77, false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let new = queue(store, to(&[FR], None)).await[0];
    send(store, new, "m1", 1, 77, false).await.unwrap();
    let matched = store
        .record_status_report("m1", 77, FR.into(), true, "delivered".into())
        .await
        .unwrap();
    assert_eq!(matched.map(|r| r.request), Some(new));
    assert_eq!(state(store, new).await, State::Delivered);
    assert_eq!(state(store, old).await, State::Sent);

    // Parts sent out of order are listed in order.
    let mut three = to(&[UK], None);
    three.parts = 3;
    let id = queue(store, three).await[0];
    assert!(store.claim(id, "m2", MINUTE).await.unwrap());
    for part in [3, 1] {
        assert!(store.mark_part_submitting(id, part, "m2", MINUTE).await.unwrap());
        assert_eq!(
            store.mark_part_sent(id, part, 3, part as u8, false).await.unwrap(),
            None
        );
    }
    store.requeue(id, -1, "modem reset".into()).await.unwrap();
    let again = next(store, "m2", &["+44"]).await.unwrap();
    assert_eq!(again.sent_parts, [1, 3]);
}

/// The forwarding stage's rounds do not overlap on one instance, but an attempt whose
/// outcome could not be recorded stays in flight: what the next round does with it
/// depends on whether the store hands it out again.
/// A forward whose outcome could not be recorded is in flight still, and due: the stage
/// (after a backoff) takes it again, but as unanswered (its end of data may have left),
/// so it is tried on its peer only, which keeps one copy by its origin.
async fn a_forward_taken_again_while_in_flight_stays_on_its_peer(store: &Store) {
    let id = store.receive(to(&[FR], None)).await.unwrap()[0];
    let peer = Route::Peer {
        name: "b".into(),
        detail: "to b".into(),
    };
    store.route(vec![(id, peer)]).await.unwrap();
    let first = store.due_for_forwarding(10).await.unwrap();
    assert_eq!((first.len(), first[0].unanswered), (1, false));
    let again = store.due_for_forwarding(10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].unanswered, "taken again while in flight: its peer may hold it");
    assert_eq!(again[0].peer, "b");
}

/// A peer's retry may arrive while its first attempt is still being committed: both
/// get the same ids, neither an error (raced ten times, for the race to show).
async fn a_forward_received_twice_at_once_makes_one_request(store: &Store) {
    for n in 0..10 {
        let mut forwarded = to(&[FR, UK], None);
        forwarded.origin = Some(format!("peer-b/{n}"));
        forwarded.trace = vec!["peer-b".into()];
        let (one, two) = tokio::join!(store.receive(forwarded.clone()), store.receive(forwarded));
        match (one, two) {
            (Ok(one), Ok(two)) => assert_eq!(one, two),
            (one, two) => panic!("origin peer-b/{n} received twice at once: {one:?} / {two:?}"),
        }
    }
    assert_eq!(store.list(QueueFilter::default()).await.unwrap().len(), 20);
}

/// `queue list` and `queue show` write the stored unix milliseconds as RFC 3339, exactly.
async fn times_show_the_stored_milliseconds(store: &Store) {
    for _ in 0..40 {
        let id = store.receive(to(&[FR], None)).await.unwrap()[0];
        store.fail(id, State::Failed, "5.0.0", "no".into()).await.unwrap();
    }
    let due = store.dsns_due(100).await.unwrap();
    assert_eq!(due.len(), 40);
    for dsn in due {
        let shown = store.show(dsn.request).await.unwrap();
        let updated = crate::utc::Utc::of_millis(dsn.updated).rfc3339();
        assert_eq!(
            shown.request.updated, updated,
            "request {}: updated {}",
            dsn.request, dsn.updated
        );
        assert_eq!(shown.events[1].time, updated, "the failure's line");
        let created = crate::utc::Utc::of_millis(dsn.arrival).rfc3339();
        assert_eq!(
            shown.request.created, created,
            "request {}: created {}",
            dsn.request, dsn.arrival
        );
    }
}
