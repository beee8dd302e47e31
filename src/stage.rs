//! The one loop of the routing, forwarding and DSN stages: a round of work, then a
//! pause until a wake-up, the next due time, a sweep, or shutdown.

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What a round tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// More may be due at once (the batch was full): another round now.
    Now,
    /// Pause: until a wake-up, the next piece of work falls due in this many
    /// milliseconds (if known), or the sweep.
    Pause(Option<u64>),
    /// The store refused a read or a write: back off (1 s, doubling up to the sweep)
    /// whatever is due, for a due time the stage could not record would bring the same
    /// work back at once, in a loop.
    Trouble,
}

/// How a round of a stage that delivers (forwarding, DSNs) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Every outcome recorded, and the batch was full: more may be due now.
    Full,
    /// Every outcome recorded; the batch was not full.
    Done,
    /// An outcome could not be recorded: what it was about is due again at once, so
    /// the stage must back off ([`Next::Trouble`]) rather than deliver it again.
    Unrecorded,
}

/// What follows a round of a delivering stage: another at once after a full batch, a
/// pause until `next_due` (read only then) after one that was not, and a backoff when the
/// store refused a read or a write, or an outcome could not be recorded. `stage` names
/// the stage in the log.
pub async fn after_round<E: std::fmt::Display>(
    stage: &str,
    round: Result<Round, E>,
    next_due: impl Future<Output = Result<Option<u64>, E>>,
) -> Next {
    let error = match round {
        Ok(Round::Full) => return Next::Now,
        Ok(Round::Unrecorded) => return Next::Trouble,
        Ok(Round::Done) => match next_due.await {
            Ok(due) => return Next::Pause(due),
            Err(error) => error,
        },
        Err(error) => error,
    };
    tracing::error!(%error, "{stage} cannot read the store");
    Next::Trouble
}

/// The first pause after a round in trouble; each further one doubles, up to the sweep.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Runs `round` until `shutdown`, pausing between two rounds as each asks ([`Next`]).
/// `wake` is the stage's wake-up; `sweep` the longest pause, the safety net for what
/// nobody announced. A round under way when `shutdown` comes is its own to finish (or
/// cut short); after it the loop ends.
///
/// `round` is a closure that returns the round's future, not an async closure: the
/// future of an async closure is not known to be `Send`, which a spawned stage must be.
pub async fn run<F>(wake: &Notify, sweep: Duration, shutdown: &CancellationToken, mut round: impl FnMut() -> F)
where
    F: Future<Output = Next>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let next = round().await;
        if shutdown.is_cancelled() {
            return;
        }
        let carry_on = match next {
            Next::Now => true,
            Next::Pause(due_in_ms) => pause(wake, due_in_ms, sweep, shutdown).await,
            // Not woken by the stage's wake-up: new work would only meet the same trouble.
            Next::Trouble => tokio::select! {
                () = tokio::time::sleep(backoff) => true,
                () = shutdown.cancelled() => false,
            },
        };
        if !carry_on {
            return;
        }
        backoff = match next {
            Next::Trouble => (backoff * 2).min(sweep),
            _ => FIRST_BACKOFF,
        };
    }
}

/// Waits until `wake` is told, the next piece of work falls due (`due_in_ms`, if known;
/// at most `sweep`), or `shutdown`: false then.
async fn pause(wake: &Notify, due_in_ms: Option<u64>, sweep: Duration, shutdown: &CancellationToken) -> bool {
    let wait = due_in_ms.map_or(sweep, |ms| sweep.min(Duration::from_millis(ms)));
    tokio::select! {
        () = wake.notified() => true,
        () = tokio::time::sleep(wait) => true,
        () = shutdown.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_round_in_trouble_backs_off_and_is_not_woken() {
        let (wake, shutdown) = (Notify::new(), CancellationToken::new());
        let mut starts = Vec::new();
        let begun = tokio::time::Instant::now();
        run(&wake, Duration::from_secs(5), &shutdown, || {
            starts.push(begun.elapsed().as_secs());
            wake.notify_one();
            if starts.len() == 6 {
                shutdown.cancel();
            }
            async { Next::Trouble }
        })
        .await;
        // 1, 2, 4, then the sweep (5): each wait doubles, the wake-ups change nothing.
        assert_eq!(starts, [0, 1, 3, 7, 12, 17]);
    }

    #[tokio::test]
    async fn a_full_round_is_followed_by_another_at_once() {
        let (wake, shutdown) = (Notify::new(), CancellationToken::new());
        let mut rounds = 0;
        let started = Instant::now();
        run(&wake, LONG, &shutdown, || {
            rounds += 1;
            if rounds == 3 {
                shutdown.cancel();
            }
            async { Next::Now }
        })
        .await;
        assert_eq!(rounds, 3);
        assert!(started.elapsed() < LONG);
    }

    #[tokio::test]
    async fn a_pause_ends_at_the_due_time_or_the_sweep() {
        let short = Duration::from_millis(10);
        // (what the first rounds return, the sweep)
        let table = [
            (Next::Pause(Some(10)), LONG),
            (Next::Pause(None), short),
            (Next::Pause(Some(60_000)), short),
        ];
        for (next, sweep) in table {
            let (wake, shutdown) = (Notify::new(), CancellationToken::new());
            let mut rounds = 0;
            let started = Instant::now();
            run(&wake, sweep, &shutdown, || {
                rounds += 1;
                if rounds == 3 {
                    shutdown.cancel();
                }
                async move { next }
            })
            .await;
            assert_eq!(rounds, 3, "{next:?}");
            assert!(started.elapsed() < LONG, "{next:?}");
        }
    }

    #[tokio::test]
    async fn a_wake_up_ends_a_pause() {
        let (wake, shutdown) = (Notify::new(), CancellationToken::new());
        let mut rounds = 0;
        let started = Instant::now();
        run(&wake, LONG, &shutdown, || {
            rounds += 1;
            match rounds {
                1 => wake.notify_one(),
                _ => shutdown.cancel(),
            }
            async { Next::Pause(None) }
        })
        .await;
        assert_eq!(rounds, 2);
        assert!(started.elapsed() < LONG);
    }

    #[tokio::test]
    async fn shutdown_ends_a_pause() {
        let (wake, shutdown) = (Notify::new(), CancellationToken::new());
        let mut rounds = 0;
        let stop = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            shutdown.cancel();
        };
        let stage = run(&wake, LONG, &shutdown, || {
            rounds += 1;
            async { Next::Pause(None) }
        });
        tokio::join!(stage, stop);
        assert_eq!(rounds, 1);
    }
}
