//! Routing: decides where each received request is sent. With no peers (the cluster
//! comes later), this instance's modems are the only route: `received → queued`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Looks again this often even without a wake-up (a safety net, not the mechanism).
const SWEEP: Duration = Duration::from_secs(5);

pub async fn run(store: Store, shutdown: CancellationToken) {
    loop {
        if let Err(error) = store.queue_received().await {
            tracing::error!(%error, "routing cannot update the queue");
        }
        tokio::select! {
            () = store.wake.received.notified() => {}
            () = tokio::time::sleep(SWEEP) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
