//! What `/metrics` shows: the store's requests by state, the counters the stages bump,
//! each modem's health and each peer's reachability.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::prometheus::{Exposition, Kind};
use crate::metrics;
use crate::modem::{Board, Health, ModemState};
use crate::routing::view::Cluster;
use crate::store::{QueueSummary, State, Store, StoreError};

/// How long one reading of the store's counts answers scrapes.
const QUEUE_FRESH: Duration = Duration::from_secs(1);

/// One scan at a time, its result shared: reading the store's counts is a scan of the
/// requests table, and `/metrics` is open to anyone who reaches it.
pub(super) struct SingleFlight<T> {
    last: Arc<Mutex<Last<T>>>,
}

/// The last result and when its scan ended.
type Last<T> = Option<(Instant, Arc<T>)>;

// By hand: derived, it would ask `T: Default`.
impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            last: Arc::new(Mutex::new(None)),
        }
    }
}

impl<T: Send + Sync + 'static> SingleFlight<T> {
    /// The last result if younger than `fresh`, else that of `scan`, run on a blocking
    /// thread while later callers wait for it. The scan and the wait for it run in a
    /// task of their own: a caller that goes away (a scraper that hung up) neither
    /// leaves a scan unaccounted for nor lets the next caller start a second one.
    pub(super) async fn get<F>(&self, fresh: Duration, scan: F) -> Result<Arc<T>, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let mut last = self.last.clone().lock_owned().await;
        if let Some((at, value)) = last.as_ref()
            && at.elapsed() < fresh
        {
            return Ok(value.clone());
        }
        tokio::spawn(async move {
            let value = Arc::new(scan.await?);
            *last = Some((Instant::now(), value.clone()));
            Ok(value)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// The metrics now, as Prometheus text; the queue is scanned at most once per
/// [`QUEUE_FRESH`] (`queues`), off the SQLite writer.
pub(super) async fn metrics(
    store: &Store,
    queues: &SingleFlight<QueueSummary>,
    board: &Board,
    cluster: &Cluster,
) -> Result<String, StoreError> {
    let store = store.clone();
    let queue = queues
        .get(QUEUE_FRESH, async move { store.queue_summary().await })
        .await?;
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
    // A modem whose value is None (a signal not read yet) has no sample in that family.
    let mut per_modem = |name, kind, help, value: fn(&Health) -> Option<f64>| {
        let family = text.family(name, kind, help);
        for (modem, health) in &modems {
            if let Some(value) = value(health) {
                family.sample_float(&[("modem", modem)], value);
            }
        }
    };
    per_modem(
        "smsgw_modem_parts_sent_total",
        Kind::Counter,
        "SMS parts accepted by the network.",
        |h| Some(h.parts_sent as f64),
    );
    per_modem(
        "smsgw_modem_send_errors_total",
        Kind::Counter,
        "Failed send attempts.",
        |h| Some(h.send_errors as f64),
    );
    per_modem(
        "smsgw_modem_ready",
        Kind::Gauge,
        "1 when the modem is initialised and sending.",
        |h| Some(flag(h.state == ModemState::Ready)),
    );
    per_modem(
        "smsgw_modem_registered",
        Kind::Gauge,
        "1 when the last AT+CREG? said registered, at home or roaming.",
        |h| Some(flag(h.registration().is_some_and(|r| r.is_registered()))),
    );
    per_modem(
        "smsgw_modem_signal_dbm",
        Kind::Gauge,
        "Signal strength from the last AT+CSQ, in dBm (-113 to -51); absent while unknown.",
        |h| h.signal_quality().and_then(|quality| quality.dbm()).map(f64::from),
    );
    per_modem(
        "smsgw_modem_registration",
        Kind::Gauge,
        "Network registration from the last AT+CREG? (TS 27.007: 0 not registered, 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming); absent while unknown.",
        |h| h.registration().map(|status| f64::from(status.code())),
    );
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
    text.family(
        "smsgw_sms_parts_received_total",
        Kind::Counter,
        "Incoming SMS parts stored (a copy the network delivered again is not counted).",
    )
    .sample(&[], metrics::read(&metrics::SMS_PARTS_RECEIVED));
    let mailed = text.family(
        "smsgw_sms_mails_total",
        Kind::Counter,
        "Mails made of incoming SMS, by result.",
    );
    for (result, counter) in [
        ("delivered", &metrics::SMS_MAILED),
        ("dropped", &metrics::SMS_MAIL_DROPPED),
    ] {
        mailed.sample(&[("result", result)], metrics::read(counter));
    }
    let peers = text.family("smsgw_peer_up", Kind::Gauge, "1 when the peer's status answered.");
    for peer in cluster.peers() {
        peers.sample(&[("peer", &peer.name)], u64::from(peer.up));
    }
    Ok(text.to_string())
}

/// 1 or 0, as a Prometheus gauge says yes or no.
fn flag(set: bool) -> f64 {
    f64::from(u8::from(set))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::SingleFlight;

    /// Scrapers that hang up mid-scan start no second scan; a scan's result answers
    /// the scrapes that waited for it and those of the next second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_scan_at_a_time_its_result_shared() {
        let flight = Arc::new(SingleFlight::<usize>::default());
        let scans = Arc::new(AtomicUsize::new(0));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(released));
        let scan = |scans: Arc<AtomicUsize>, released: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>| {
            async move {
                tokio::task::spawn_blocking(move || {
                    let n = scans.fetch_add(1, Ordering::SeqCst) + 1;
                    // Held until the test lets it go: a long scan.
                    released.lock().unwrap().recv_timeout(Duration::from_secs(30)).unwrap();
                    Ok(n)
                })
                .await
                .unwrap()
            }
        };
        // Ten scrapers that each give up after a moment, the scan still running.
        for _ in 0..10 {
            let (flight, scan) = (flight.clone(), scan(scans.clone(), released.clone()));
            let gave_up =
                tokio::time::timeout(Duration::from_millis(20), flight.get(Duration::from_secs(60), scan)).await;
            assert!(gave_up.is_err());
        }
        assert_eq!(scans.load(Ordering::SeqCst), 1, "one scan, however many gave up");
        let waiting = {
            let (flight, scan) = (flight.clone(), scan(scans.clone(), released.clone()));
            tokio::spawn(async move { flight.get(Duration::from_secs(60), scan).await.unwrap() })
        };
        release.send(()).unwrap();
        assert_eq!(*waiting.await.unwrap(), 1);
        let again = flight.get(Duration::from_secs(60), scan(scans.clone(), released.clone()));
        assert_eq!(*again.await.unwrap(), 1);
        assert_eq!(scans.load(Ordering::SeqCst), 1);
    }
}
