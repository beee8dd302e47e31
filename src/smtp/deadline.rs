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

/// A message, from the moment it takes part of the shared budget (its first octets) to
/// its end stored or refused, may take at most this many data timeouts (15 minutes at
/// 300 s), however steadily it progresses: otherwise a client sending 64 KiB per data
/// timeout, or `BDAT 0` before each deadline, holds its part of the budget for ever
/// (1 MiB at 220 octets a second is 80 minutes).
pub(super) const MESSAGE_TIMEOUTS: u32 = 3;

/// How long a session closing for a reason may spend writing its last reply.
pub(super) const LAST_WORDS: Duration = Duration::from_secs(2);

/// When the session in progress must have made its next progress.
pub(super) struct Clock {
    since: Instant,
    timeout: Duration,
    stress: watch::Receiver<bool>,
    /// `false` once the stress sender is gone (the server is ending): no more changes.
    watching: bool,
    /// When the message in progress must be complete (see [`MESSAGE_TIMEOUTS`]).
    message_deadline: Option<Instant>,
}

/// `since + timeout`, or a time far enough never to come if that is past what an
/// `Instant` can hold (a huge timeout in the config must not panic).
fn after(since: Instant, timeout: Duration) -> Instant {
    since
        .checked_add(timeout)
        .unwrap_or_else(|| since + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl Clock {
    /// A clock that starts now with `timeout`, shortened while `stress` says so.
    pub(super) fn new(timeout: Duration, stress: watch::Receiver<bool>) -> Clock {
        Clock {
            since: Instant::now(),
            timeout,
            stress,
            watching: true,
            message_deadline: None,
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
        let deadline = after(self.since, timeout);
        match self.message_deadline {
            Some(message) => deadline.min(message),
            None => deadline,
        }
    }

    /// Whether the session holds part of the budget for a message now: from the first
    /// time it does, the message must be complete within [`MESSAGE_TIMEOUTS`] times
    /// `data_timeout`; once it holds nothing, that deadline is gone.
    pub(super) fn holding(&mut self, holding: bool, data_timeout: Duration) {
        match (holding, self.message_deadline) {
            (true, None) => {
                self.message_deadline = Some(after(Instant::now(), data_timeout.saturating_mul(MESSAGE_TIMEOUTS)));
            }
            (false, Some(_)) => self.message_deadline = None,
            _ => {}
        }
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

    #[tokio::test(start_paused = true)]
    async fn a_message_holding_the_budget_ends_within_its_deadline_however_it_progresses() {
        let (_stress, watched) = watch::channel(false);
        let timeout = Duration::from_secs(300);
        let mut clock = Clock::new(timeout, watched);
        let started = Instant::now();
        clock.holding(true, timeout);
        // Progress every 200 s (within each data timeout) never moves the message's end.
        loop {
            let progressed = clock.within(tokio::time::sleep(Duration::from_secs(200))).await;
            if progressed.is_none() {
                break;
            }
            clock.progress(timeout);
            clock.holding(true, timeout);
        }
        assert_eq!(started.elapsed(), timeout * MESSAGE_TIMEOUTS);
        // Once nothing is held, only the progress deadline is left.
        clock.progress(timeout);
        clock.holding(false, timeout);
        let since = Instant::now();
        assert!(clock.within(std::future::pending::<()>()).await.is_none());
        assert_eq!(since.elapsed(), timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_timeout_does_not_overflow() {
        let (_stress, watched) = watch::channel(false);
        let mut clock = Clock::new(Duration::from_secs(u64::MAX), watched);
        clock.holding(true, Duration::from_secs(u64::MAX));
        let done = clock.within(tokio::time::sleep(Duration::from_secs(1))).await;
        assert!(done.is_some());
    }
}
