//! Routing: decides where each received request is sent. Alone (no `[[peer]]`), this
//! instance's modems are the only route: `received → queued`, set-wise. In a cluster,
//! each request gets a [`plan`] over the [`view`], and goes to the cheapest instance.
//!
//! A request waiting for a route or a modem whose number no instance can send to (the
//! tariffs were narrowed since it was accepted) fails at once with `5.4.4`: looked for at
//! start, once the peers have been polled, and again every minute.

pub mod explain;
pub mod plan;
pub mod view;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::stage::{self, Next};
use crate::store::{Route, Store, StoreError, now_ms};
use plan::{Plan, Reach};
use view::Cluster;

/// Looks again this often even without a wake-up (a safety net, not the mechanism).
const SWEEP: Duration = Duration::from_secs(1);
/// How often the site's modems are read again (the instances record theirs this often).
const SITE_READ: Duration = Duration::from_secs(1);
/// Requests planned per round.
const BATCH: usize = 256;
/// How often waiting requests are checked again for a number no instance can send to
/// (one that a modem stage gave back to the queue after the check at start, say).
const UNROUTABLE_CHECK: Duration = Duration::from_secs(60);

/// Routes until `shutdown`; requests with no instance able to send them now are looked
/// at again after `retry`. In a site, every live instance's modems count as this
/// instance's (read again at most every [`SITE_READ`], not at every round: rounds follow
/// every mail accepted).
pub async fn run(cluster: Arc<Cluster>, store: Store, retry: Duration, shutdown: CancellationToken) {
    if cluster.has_peers() {
        cluster.first_poll(retry).await;
    }
    let mut next_check = Instant::now();
    let mut next_site_read = Instant::now();
    let (cluster, store) = (&cluster, &store);
    stage::run(&store.wake.received, SWEEP, &shutdown, || {
        let check = Instant::now() >= next_check;
        if check {
            next_check = Instant::now() + UNROUTABLE_CHECK;
        }
        let read_site = Instant::now() >= next_site_read;
        if read_site {
            next_site_read = Instant::now() + SITE_READ;
        }
        async move {
            if read_site && let Err(error) = cluster.refresh_site().await {
                tracing::error!(%error, "routing cannot read the site's modems");
            }
            if check && let Err(error) = fail_unroutable(cluster, store).await {
                tracing::error!(%error, "routing cannot check the queue for unroutable numbers");
            }
            match round(cluster, store, retry).await {
                Ok(true) => return Next::Now,
                Ok(false) => {}
                Err(error) => tracing::error!(%error, "routing cannot update the queue"),
            }
            // No due time: a request waiting for a route is looked at again by the sweep.
            Next::Pause(None)
        }
    })
    .await;
}

/// Fails the requests waiting (`received`, `queued`) for a number no instance can send
/// to, by this instance's tariffs and its peers' last known ones; returns how many.
/// Nothing to do when this instance's tariffs cover every number.
async fn fail_unroutable(cluster: &Cluster, store: &Store) -> Result<usize, StoreError> {
    let Some(prefixes) = cluster.local_prefixes() else {
        return Ok(0);
    };
    let mut unroutable: Vec<(i64, String)> = Vec::new();
    for (id, number) in store.waiting_outside(prefixes).await? {
        match cluster.reach(&number) {
            Reach::Nowhere(reason) => unroutable.push((id, reason)),
            // Outside this instance's tariffs, so a peer's: a queued one would wait for
            // a modem that never takes it.
            Reach::Covered => {
                if store.reroute_queued(id).await? {
                    tracing::info!(request = id, "no local modem sends it any more: routed again");
                }
            }
            Reach::Unknown => {}
        }
    }
    // At once, so that the writer commits them in a few batches, not one by one.
    for chunk in unroutable.chunks(BATCH) {
        let mut failing = tokio::task::JoinSet::new();
        for (id, reason) in chunk.iter().cloned() {
            tracing::info!(request = id, %reason, "request unroutable: failed");
            let store = store.clone();
            failing.spawn(async move { store.fail_unroutable(id, reason).await });
        }
        while let Some(done) = failing.join_next().await {
            match done {
                Ok(result) => result?,
                Err(error) => tracing::error!(%error, "failing an unroutable request panicked"),
            }
        }
    }
    Ok(unroutable.len())
}

/// One round; true if there may be more to route at once.
async fn round(cluster: &Cluster, store: &Store, retry: Duration) -> Result<bool, StoreError> {
    // Either way, a request whose number opted out after its RCPT fails in the
    // transaction that queues or routes the others.
    if !cluster.has_peers() {
        store.queue_received().await?;
        return Ok(false);
    }
    let requests = store.due_for_routing(BATCH).await?;
    if requests.is_empty() {
        return Ok(false);
    }
    let view = cluster.view().await?;
    let wait_until = now_ms() + retry.as_millis() as i64;
    let routes = requests
        .iter()
        .map(|request| {
            let past = plan::Past {
                trace: &request.trace,
                refused: &request.refused,
                tried: &request.tried,
            };
            let plan = plan::plan(&request.number, &view, past);
            (request.id, decide(&request.number, &plan, wait_until))
        })
        .collect();
    store.route(routes).await?;
    Ok(requests.len() == BATCH)
}

/// The cheapest candidate; with none, wait if one may come back (down, no working
/// modem, failed a moment ago), else fail naming why each instance could not.
pub fn decide(number: &str, plan: &Plan, wait_until: i64) -> Route {
    if let Some(best) = plan.ranked.first() {
        let cost = format!(
            "cost {:.4} = tariff {:.4} + link {:.4} + workload {:.4}",
            best.total, best.tariff, best.link, best.workload
        );
        return if best.local {
            Route::Local {
                detail: format!("routed to this instance's modems ({cost})"),
            }
        } else {
            Route::Peer {
                name: best.name.clone(),
                detail: format!("routed to {} ({cost})", best.name),
            }
        };
    }
    let why: Vec<String> = plan.skipped.iter().map(|s| format!("{}: {}", s.name, s.why)).collect();
    let why = why.join("; ");
    if plan.skipped.iter().any(|s| s.why.may_recover()) {
        Route::Wait {
            at: wait_until,
            detail: format!("no instance can send it now ({why}); waiting"),
        }
    } else {
        Route::Nowhere {
            reason: format!("no instance can send to {number} ({why})"),
        }
    }
}
