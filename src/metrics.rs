//! Counters for `/metrics`: plain atomics that the stages bump, read only by `http`.

use std::sync::atomic::{AtomicU64, Ordering};

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
/// Forwards that failed and went back to routing, without that peer.
pub static FORWARD_FAILED_OVER: AtomicU64 = AtomicU64::new(0);
/// DSN mails delivered.
pub static DSN_DELIVERED: AtomicU64 = AtomicU64::new(0);
/// DSN mails given up: refused for good, or not delivered within their lifetime.
pub static DSN_DROPPED: AtomicU64 = AtomicU64::new(0);

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
