//! What `/metrics` shows: the store's requests by state, the counters the stages bump,
//! each modem's health and each peer's reachability.

use std::path::Path;

use super::prometheus::{Exposition, Kind};
use crate::metrics;
use crate::modem::{Board, Health, ModemState};
use crate::routing::view::Cluster;
use crate::store::{self, State, StoreError};

/// The metrics now, as Prometheus text; the store is read on a connection of its own
/// to `database`, on a blocking thread.
pub(super) async fn metrics(database: &Path, board: &Board, cluster: &Cluster) -> Result<String, StoreError> {
    let database = database.to_path_buf();
    let queue = tokio::task::spawn_blocking(move || store::queue_summary(&database))
        .await
        .map_err(|_| StoreError::Closed)??;
    let mut text = Exposition::default();
    let requests = text.family("smsgw_requests", Kind::Gauge, "Requests in the store by state.");
    for state in State::ALL {
        let count = queue.by_state.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
        requests.sample(&[("state", state.as_str())], count);
    }
    text.family(
        "smsgw_oldest_waiting_seconds",
        Kind::Gauge,
        "How long the oldest request not yet sent or handed to a peer has waited (0: none waits).",
    )
    .sample_float(&[], queue.oldest_waiting.map_or(0.0, |age| age.as_secs_f64()));
    text.family(
        "smsgw_sent_after_seconds",
        Kind::Histogram,
        "From a mail's 250 to the network taking the request's last part, on this instance's modems.",
    )
    .histogram(&[], &metrics::SENT_AFTER.snapshot());
    text.family(
        "smsgw_delivered_after_seconds",
        Kind::Histogram,
        "From a part's hand-over to the modem (AT+CMGS) to its status report saying delivered.",
    )
    .histogram(&[], &metrics::DELIVERED_AFTER.snapshot());
    let counters = [
        (
            "smsgw_smtp_sessions_total",
            Kind::Counter,
            "SMTP connections accepted.",
            &metrics::SMTP_SESSIONS,
        ),
        (
            "smsgw_smtp_sessions_open",
            Kind::Gauge,
            "SMTP connections open now.",
            &metrics::SMTP_SESSIONS_OPEN,
        ),
        (
            "smsgw_smtp_mails_total",
            Kind::Counter,
            "Mails accepted and stored.",
            &metrics::SMTP_MAILS,
        ),
    ];
    for (name, kind, help, counter) in counters {
        text.family(name, kind, help).sample(&[], metrics::read(counter));
    }
    let modems = board.snapshot();
    let mut per_modem = |name, kind, help, value: fn(&Health) -> u64| {
        let family = text.family(name, kind, help);
        for (modem, health) in &modems {
            family.sample(&[("modem", modem)], value(health));
        }
    };
    per_modem(
        "smsgw_modem_parts_sent_total",
        Kind::Counter,
        "SMS parts accepted by the network.",
        |h| h.parts_sent,
    );
    per_modem(
        "smsgw_modem_send_errors_total",
        Kind::Counter,
        "Failed send attempts.",
        |h| h.send_errors,
    );
    per_modem(
        "smsgw_modem_ready",
        Kind::Gauge,
        "1 when the modem is initialised and sending.",
        |h| u64::from(h.state == ModemState::Ready),
    );
    per_modem(
        "smsgw_modem_registered",
        Kind::Gauge,
        "1 when the last AT+CREG? said registered, at home or roaming.",
        |h| u64::from(h.registration().is_some_and(|r| r.is_registered())),
    );
    let signal = text.family(
        "smsgw_modem_signal_dbm",
        Kind::Gauge,
        "Signal strength from the last AT+CSQ, in dBm (-113 to -51); absent while unknown.",
    );
    for (modem, health) in &modems {
        if let Some(dbm) = health.signal_quality().and_then(|quality| quality.dbm()) {
            signal.sample_float(&[("modem", modem)], f64::from(dbm));
        }
    }
    let registration = text.family(
        "smsgw_modem_registration",
        Kind::Gauge,
        "Network registration from the last AT+CREG? (TS 27.007: 0 not registered, 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming); absent while unknown.",
    );
    for (modem, health) in &modems {
        if let Some(status) = health.registration() {
            registration.sample(&[("modem", modem)], u64::from(status.code()));
        }
    }
    let forwards = text.family(
        "smsgw_forward_attempts_total",
        Kind::Counter,
        "Forwarding attempts to peers, by result.",
    );
    for (result, counter) in [
        ("accepted", &metrics::FORWARD_ACCEPTED),
        ("retried", &metrics::FORWARD_RETRIED),
        ("unanswered", &metrics::FORWARD_UNANSWERED),
        ("failed_over", &metrics::FORWARD_FAILED_OVER),
    ] {
        forwards.sample(&[("result", result)], metrics::read(counter));
    }
    let dsns = text.family("smsgw_dsn_total", Kind::Counter, "DSN mails by result.");
    for (result, counter) in [
        ("delivered", &metrics::DSN_DELIVERED),
        ("dropped", &metrics::DSN_DROPPED),
    ] {
        dsns.sample(&[("result", result)], metrics::read(counter));
    }
    let peers = text.family("smsgw_peer_up", Kind::Gauge, "1 when the peer's status answered.");
    for peer in cluster.peers() {
        peers.sample(&[("peer", &peer.name)], u64::from(peer.up));
    }
    Ok(text.to_string())
}
