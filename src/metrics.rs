//! Counters and histograms for `/metrics`: plain atomics that the stages bump, read
//! only by `http`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// SMTP connections accepted since start.
pub static SMTP_SESSIONS: AtomicU64 = AtomicU64::new(0);
/// SMTP connections open now (see [`OpenSession`]).
pub static SMTP_SESSIONS_OPEN: AtomicU64 = AtomicU64::new(0);
/// Mails stored (each with one request per recipient).
pub static SMTP_MAILS: AtomicU64 = AtomicU64::new(0);
/// Forwards a peer accepted.
pub static FORWARD_ACCEPTED: AtomicU64 = AtomicU64::new(0);
/// Forwards that failed and wait to be tried again with the same peer.
pub static FORWARD_RETRIED: AtomicU64 = AtomicU64::new(0);
/// Forwards whose answer was lost after the end of data: the peer may have the
/// request, so it is offered again to that peer only.
pub static FORWARD_UNANSWERED: AtomicU64 = AtomicU64::new(0);
/// Forwards that failed and went back to routing, without that peer.
pub static FORWARD_FAILED_OVER: AtomicU64 = AtomicU64::new(0);
/// DSN mails delivered.
pub static DSN_DELIVERED: AtomicU64 = AtomicU64::new(0);
/// DSN mails given up: refused for good, or not delivered within their lifetime.
pub static DSN_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Incoming SMS mailed.
pub static SMS_MAILED: AtomicU64 = AtomicU64::new(0);
/// Mails of incoming SMS given up: refused for good, or not delivered within their lifetime.
pub static SMS_MAIL_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Incoming SMS parts committed (copies the network delivered again not counted).
pub static SMS_PARTS_RECEIVED: AtomicU64 = AtomicU64::new(0);

/// Adds one to `counter`.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The value of `counter` now.
pub fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Counts an open SMTP session for as long as it lives.
pub struct OpenSession;

impl OpenSession {
    /// Counts one more session, accepted and open.
    pub fn start() -> OpenSession {
        bump(&SMTP_SESSIONS);
        bump(&SMTP_SESSIONS_OPEN);
        OpenSession
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        SMTP_SESSIONS_OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// From acceptance (`250`) to the network taking the last part (`+CMGS`), for requests
/// this instance's modems sent; an operator's retry does not reset the start.
pub static SENT_AFTER: Histogram<12> =
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 3600.0, 86400.0]);
/// From a part's hand-over to the modem (just before `AT+CMGS`) to its status report
/// saying delivered.
pub static DELIVERED_AFTER: Histogram<10> =
    Histogram::new([1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0]);

/// Durations counted in buckets by upper bound (seconds), with their sum: a Prometheus
/// histogram, lock-free so that a stage never waits on a scrape.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: [f64; N],
    /// Observations that fell in each bucket alone (not cumulative); past the last
    /// bound they are only in `count`.
    counts: [AtomicU64; N],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// (upper bound in seconds, observations at most that), bounds increasing.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of every observation, in seconds.
    pub sum: f64,
    /// How many observations.
    pub count: u64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram with these upper bounds, in seconds, increasing.
    pub const fn new(bounds: [f64; N]) -> Histogram<N> {
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(bucket) = self.bounds.iter().position(|&bound| seconds <= bound) {
            self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The cumulative counts now. Read without a lock, a bucket may lag `count` by an
    /// observation in flight, which Prometheus tolerates.
    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(&bound, count)| {
                total += count.load(Ordering::Relaxed);
                (bound, total)
            })
            .collect();
        Snapshot {
            buckets,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed).max(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_add_up() {
        let histogram = Histogram::new([0.5, 1.0, 10.0]);
        for millis in [0, 500, 501, 1000, 9_999, 60_000] {
            histogram.observe(Duration::from_millis(millis));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, [(0.5, 2), (1.0, 4), (10.0, 5)]);
        assert_eq!(snapshot.count, 6);
        assert!((snapshot.sum - 72.0).abs() < 1e-9, "{}", snapshot.sum);
    }
}
