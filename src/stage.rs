//! What every stage loop does between two rounds of work.

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Waits until `wake` is told, the next piece of work falls due (`due_in_ms`, if known;
/// at most `sweep`, the safety net for what nobody announced), or `shutdown`: false then.
pub async fn pause(wake: &Notify, due_in_ms: Option<u64>, sweep: Duration, shutdown: &CancellationToken) -> bool {
    let wait = due_in_ms.map_or(sweep, |ms| sweep.min(Duration::from_millis(ms)));
    tokio::select! {
        () = wake.notified() => true,
        () = tokio::time::sleep(wait) => true,
        () = shutdown.cancelled() => false,
    }
}
