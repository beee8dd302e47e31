//! Deadlines on progress, not on each read: a session must complete an exchange (a
//! command and the whole of its answer written, or [`DATA_PROGRESS`] more octets of a
//! message kept) within its timeout, whatever it does meanwhile. Trickling bytes, a
//! command line that never ends, data being discarded, or answers the client never
//! reads (a write that blocks) do not move the deadline, so none of them keeps a
//! session open for ever. Under stress every timeout is at most [`STRESS_TIMEOUT`].

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The timeout of every session while the gateway is under stress (Postfix's stress
/// mode uses 10 s too).
pub(super) const STRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// Octets of a message kept that count as progress: a client sending a message must
/// send this much within each data timeout (at 300 s, about 220 octets a second; under
/// stress, 6.5 KiB a second).
pub(super) const DATA_PROGRESS: usize = 64 * 1024;

/// How long a session closing for a reason may spend writing its last reply.
pub(super) const LAST_WORDS: Duration = Duration::from_secs(2);

/// When the session in progress must have made its next progress.
pub(super) struct Clock {
    since: Instant,
    timeout: Duration,
    stress: watch::Receiver<bool>,
    /// `false` once the stress sender is gone (the server is ending): no more changes.
    watching: bool,
}

impl Clock {
    /// A clock that starts now with `timeout`, shortened while `stress` says so.
    pub(super) fn new(timeout: Duration, stress: watch::Receiver<bool>) -> Clock {
        Clock {
            since: Instant::now(),
            timeout,
            stress,
            watching: true,
        }
    }

    /// Progress was made: the next must come within `timeout` from now.
    pub(super) fn progress(&mut self, timeout: Duration) {
        self.since = Instant::now();
        self.timeout = timeout;
    }

    fn deadline(&self) -> Instant {
        let timeout = match *self.stress.borrow() {
            true => self.timeout.min(STRESS_TIMEOUT),
            false => self.timeout,
        };
        self.since + timeout
    }

    /// `work`'s output, or `None` if the deadline passed first (the deadline shrinks if
    /// the stress begins meanwhile).
    pub(super) async fn within<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let mut work = pin!(work);
        loop {
            let deadline = self.deadline();
            let watching = self.watching;
            tokio::select! {
                done = &mut work => return Some(done),
                () = tokio::time::sleep_until(deadline) => {
                    if self.deadline() <= Instant::now() {
                        return None;
                    }
                }
                changed = self.stress.changed(), if watching => {
                    self.watching = changed.is_ok();
                }
            }
        }
    }
}

/// `work`'s output, or `None` after `limit`: for the last words of a closing session.
pub(super) async fn bounded<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    tokio::time::timeout(limit, work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_last_progress_and_shrinks_under_stress() {
        let (stress, watched) = watch::channel(false);
        let mut clock = Clock::new(Duration::from_secs(300), watched);
        let never = std::future::pending::<()>;
        let started = Instant::now();
        assert!(
            clock
                .within(tokio::time::sleep(Duration::from_secs(200)))
                .await
                .is_some()
        );
        // No progress since the start: 100 s are left, not 300.
        assert!(clock.within(never()).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(300));
        clock.progress(Duration::from_secs(300));
        let waited = Instant::now();
        let stressing = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stress.send_replace(true);
            std::future::pending::<()>().await
        };
        tokio::select! {
            timed_out = clock.within(never()) => assert!(timed_out.is_none()),
            () = stressing => unreachable!(),
        }
        // The stress began 30 s after the progress: past 10 s already, so at once.
        assert_eq!(waited.elapsed(), Duration::from_secs(30));
    }
}
