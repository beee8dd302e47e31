//! The pool: a dispatcher gives each free modem the oldest due request that modem may
//! send (its tariff covers the number, its rate limit allows it, parts already sent are
//! pinned to it), by claiming it in the store; one worker task per modem owns its port.
//!
//! A request no free modem can take never holds up one that a free modem can: the store
//! is asked, per free modem, for that modem's own oldest candidate. When nothing can be
//! sent the dispatcher sleeps until something changes: a wake-up from the store, a
//! worker's event, the next retry time, or a rate limit's window opening. Recovery of
//! expired leases and expiry run on a timer of their own.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::ModemSpec;
use super::board::Board;
use super::protocol::{Assignment, Timing, WorkerEvent};
use super::worker;
use crate::store::{InboundRules, QueuedRequest, Store, StoreError};

/// How often expired leases are recovered and overdue requests expired, whatever else
/// happens; the dispatcher also looks again then, for what nobody announced (a
/// `queue retry` from the CLI, which runs in another process).
const SWEEP: Duration = Duration::from_secs(1);

/// The window of `per_minute`.
const MINUTE: Duration = Duration::from_secs(60);

struct Slot {
    spec: Arc<ModemSpec>,
    /// Its tariff's prefixes, as the store is asked for its candidates.
    prefixes: Vec<String>,
    assignments: mpsc::Sender<Assignment>,
    ready: bool,
    busy: bool,
    /// Parts sent in the last minute, for `per_minute`.
    recent: VecDeque<Instant>,
    /// Its failed sends as last counted (the board's `send_errors`), and until when a
    /// new one keeps it from being shown ready to the site: see [`share_the_site`].
    errors: (u64, Option<Instant>),
}

impl Slot {
    fn free(&self) -> bool {
        self.ready && !self.busy
    }

    /// How long until this modem may send `parts` more parts; `None`: now. A request
    /// of more parts than the limit waits for an empty window.
    fn rate_wait(&mut self, parts: usize, now: Instant) -> Option<Duration> {
        let limit = self.spec.per_minute as usize;
        if limit == 0 {
            return None;
        }
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= MINUTE) {
            self.recent.pop_front();
        }
        let parts = parts.clamp(1, limit);
        if self.recent.len() + parts <= limit {
            return None;
        }
        let oldest = self.recent[self.recent.len() + parts - limit - 1];
        Some(MINUTE.saturating_sub(now.duration_since(oldest)))
    }
}

/// Starts one worker per modem and dispatches due requests to them until `shutdown`;
/// then waits for the workers to finish the SMS in hand.
pub(super) async fn run(
    specs: Vec<Arc<ModemSpec>>,
    board: Arc<Board>,
    store: Store,
    timing: Timing,
    inbound: Arc<InboundRules>,
    shutdown: CancellationToken,
) {
    let (events, mut incoming) = mpsc::channel(64);
    let mut slots = Vec::new();
    let mut workers = Vec::new();
    for (index, spec) in specs.into_iter().enumerate() {
        let (assignments, queue) = mpsc::channel(1);
        let context = worker::Context {
            index,
            spec: spec.clone(),
            board: board.clone(),
            store: store.clone(),
            events: events.clone(),
            timing: timing.clone(),
            inbound: inbound.clone(),
            shutdown: shutdown.clone(),
        };
        workers.push(tokio::spawn(worker::run(context, queue)));
        slots.push(Slot {
            prefixes: spec.prefixes(),
            spec,
            assignments,
            ready: false,
            busy: false,
            recent: VecDeque::new(),
            errors: (0, None),
        });
    }
    if let Err(error) = store.recover_leases(i64::MAX).await {
        tracing::error!(%error, "cannot recover requests left sending");
    }
    let validity_ms = timing.validity.as_millis() as i64;
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let wait = match assign(&mut slots, &store, validity_ms).await {
            Ok(wait) => wait,
            Err(error) => {
                tracing::error!(%error, "dispatcher cannot read the queue");
                None
            }
        };
        // Nothing to wait for but events: only they (or the sweep) can change anything.
        let later = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = store.wake.queued.notified() => {}
            Some(event) = incoming.recv() => apply(&mut slots, event),
            () = later => {}
            _ = sweep.tick() => {
                if let Err(error) = share_the_site(&mut slots, &store, &board).await {
                    tracing::error!(%error, "cannot record this instance's modems in the site");
                }
                if let Err(error) = store.recover_leases(crate::store::now_ms()).await {
                    tracing::error!(%error, "cannot recover expired leases");
                }
                if let Err(error) = store.expire_overdue(validity_ms).await {
                    tracing::error!(%error, "cannot expire overdue requests");
                }
            }
            () = shutdown.cancelled() => break,
        }
        while let Ok(event) = incoming.try_recv() {
            apply(&mut slots, event);
        }
    }
    // Workers finish the SMS in hand (bounded by their own timeouts) and stop.
    drop(slots);
    for worker in workers {
        let _ = worker.await;
    }
}

/// In a site (PostgreSQL): records this instance's modems and whether each is ready, and
/// leaves to the site's other ready modems the prefixes they send for less, so that a
/// request goes to the cheapest modem of the whole site. A modem whose send failed in
/// the last minute is not shown ready: the dearer modems then take its prefixes too,
/// and its retries go to them (the modem that failed a request comes last for it).
/// Alone, nothing changes.
async fn share_the_site(slots: &mut [Slot], store: &Store, board: &Board) -> Result<(), StoreError> {
    let now = Instant::now();
    let health = board.snapshot();
    for slot in slots.iter_mut() {
        let errors = health.get(&slot.spec.name).map_or(0, |h| h.send_errors);
        if errors > slot.errors.0 {
            slot.errors = (errors, Some(now + MINUTE));
        }
    }
    let own = slots
        .iter()
        .map(|slot| {
            let tariff = slot.spec.tariff.iter().map(|(p, c)| (p.clone(), *c)).collect();
            let failing = slot.errors.1.is_some_and(|until| now < until);
            (slot.spec.name.clone(), tariff, slot.ready && !failing)
        })
        .collect();
    store.register_modems(own).await?;
    let Some(site) = store.site_modems().await? else {
        return Ok(());
    };
    for slot in slots.iter_mut() {
        let others: Vec<&BTreeMap<String, f64>> = site
            .iter()
            .filter(|m| m.ready && m.name != slot.spec.name)
            .map(|m| &m.tariff)
            .collect();
        slot.prefixes = prefixes_left(&slot.spec.tariff, &others);
    }
    Ok(())
}

/// The prefixes of `own` (a modem's tariff) it still takes beside `others` (the tariffs
/// of the site's other ready modems): a prefix is left to another modem whose own
/// longest prefix above it costs less, unless that modem names a longer prefix under
/// it at a cost that is not less (then some numbers under it are not cheaper there,
/// and both take them: the first free sends).
fn prefixes_left(own: &[(String, f64)], others: &[&BTreeMap<String, f64>]) -> Vec<String> {
    own.iter()
        .filter(|(prefix, cost)| {
            !others.iter().any(|tariff| {
                let above = tariff
                    .iter()
                    .filter(|(p, _)| prefix.starts_with(p.as_str()))
                    .max_by_key(|(p, _)| p.len());
                let dearer_below = tariff
                    .iter()
                    .any(|(p, c)| p.len() > prefix.len() && p.starts_with(prefix.as_str()) && *c >= *cost);
                above.is_some_and(|(_, c)| c < cost) && !dearer_below
            })
        })
        .map(|(prefix, _)| prefix.clone())
        .collect()
}

fn apply(slots: &mut [Slot], event: WorkerEvent) {
    match event {
        WorkerEvent::Ready(i) | WorkerEvent::Done(i) => {
            slots[i].ready = true;
            slots[i].busy = false;
        }
        WorkerEvent::Down(i) => {
            slots[i].ready = false;
            slots[i].busy = false;
        }
    }
}

/// Gives each free modem the oldest due request it may send. Returns how long until a
/// rate limit's window or a retry time could let more go; `None`: nothing will change
/// before an event (a wake-up, a worker free again, the sweep).
async fn assign(slots: &mut [Slot], store: &Store, validity_ms: i64) -> Result<Option<Duration>, StoreError> {
    let mut wait: Option<Duration> = None;
    let mut later = |delay: Duration| wait = Some(wait.map_or(delay, |w: Duration| w.min(delay)));
    // Modems done for this round: nothing for them, or waiting for their rate limit.
    let mut settled = vec![false; slots.len()];
    loop {
        let now = Instant::now();
        let mut asking = Vec::new();
        for (index, slot) in slots.iter_mut().enumerate() {
            if !slot.free() || settled[index] {
                continue;
            }
            match slot.rate_wait(1, now) {
                Some(delay) => {
                    later(delay);
                    settled[index] = true;
                }
                None => asking.push(index),
            }
        }
        if asking.is_empty() {
            break;
        }
        let scopes = asking
            .iter()
            .map(|&i| (slots[i].spec.name.clone(), slots[i].prefixes.clone()))
            .collect();
        let candidates = store.next_for_modems(scopes, validity_ms).await?;
        // Each candidate with the modems that want it, oldest first.
        let mut wanted: BTreeMap<i64, (QueuedRequest, Vec<usize>)> = BTreeMap::new();
        for (&index, candidate) in asking.iter().zip(candidates) {
            match candidate {
                Some(request) => wanted.entry(request.id).or_insert((request, Vec::new())).1.push(index),
                None => settled[index] = true,
            }
        }
        let mut claimed = false;
        for (_, (mut request, modems)) in wanted {
            match cheapest(slots, &request, &modems, now) {
                Choice::Modem(index) => {
                    // The others that wanted it ask again.
                    claimed = true;
                    let slot = &mut slots[index];
                    let lease = slot.spec.lease().as_millis() as i64;
                    if !store.claim(request.id, &slot.spec.name, lease).await? {
                        continue;
                    }
                    // The claim counted this attempt: the retry delays go by it.
                    request.attempts += 1;
                    slot.busy = true;
                    slot.recent.extend(std::iter::repeat_n(now, request.parts));
                    if slot.assignments.send(Assignment { request }).await.is_err() {
                        slot.ready = false;
                    }
                }
                // Its oldest waits for the rate limit: it does not skip to a newer one.
                Choice::Later(delay) => {
                    later(delay);
                    modems.iter().for_each(|&i| settled[i] = true);
                }
            }
        }
        if !claimed {
            break;
        }
    }
    if slots.iter().any(Slot::free)
        && let Some(due_in) = store.next_due_in().await?
    {
        later(Duration::from_millis(due_in));
    }
    Ok(wait)
}

enum Choice {
    Modem(usize),
    /// Every modem that wants it waits for its rate limit; the first window opens then.
    Later(Duration),
}

/// Of the free modems whose oldest candidate is `request`, the one with the lowest
/// tariff for the number (ties: by name) whose rate limit allows its parts; the modem
/// that last failed it comes last, so a retry tries another one when there is one.
fn cheapest(slots: &mut [Slot], request: &QueuedRequest, modems: &[usize], now: Instant) -> Choice {
    let mut candidates: Vec<(bool, f64, usize)> = modems
        .iter()
        .map(|&index| {
            let spec = &slots[index].spec;
            let failed_last = request.last_modem.as_deref() == Some(spec.name.as_str());
            (failed_last, spec.tariff_for(&request.number).unwrap_or(f64::MAX), index)
        })
        .collect();
    candidates.sort_by(|a, b| {
        (a.0.cmp(&b.0))
            .then(a.1.total_cmp(&b.1))
            .then_with(|| slots[a.2].spec.name.cmp(&slots[b.2].spec.name))
    });
    let mut later = Duration::MAX;
    for (_, _, index) in candidates {
        match slots[index].rate_wait(request.parts, now) {
            None => return Choice::Modem(index),
            Some(delay) => later = later.min(delay),
        }
    }
    Choice::Later(later)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tariff(entries: &[(&str, f64)]) -> BTreeMap<String, f64> {
        entries.iter().map(|(p, c)| (p.to_string(), *c)).collect()
    }

    #[test]
    fn a_prefix_is_left_to_a_cheaper_modem_of_the_site() {
        let own: Vec<(String, f64)> = [("+33", 0.05), ("+44", 0.05), ("+336", 0.05)]
            .iter()
            .map(|(p, c)| (p.to_string(), *c))
            .collect();
        let left = |others: &[BTreeMap<String, f64>]| prefixes_left(&own, &others.iter().collect::<Vec<_>>());
        assert_eq!(left(&[]), ["+33", "+44", "+336"]);
        // Cheaper for every number of France: all of it goes there, mobiles included.
        assert_eq!(left(&[tariff(&[("+33", 0.01)])]), ["+44"]);
        // Cheaper everywhere ("+"), dearer nowhere.
        assert_eq!(left(&[tariff(&[("+", 0.02)])]), Vec::<String>::new());
        // The same price: both take them, the first free sends.
        assert_eq!(left(&[tariff(&[("+33", 0.05)])]), ["+33", "+44", "+336"]);
        // Cheaper for France but not for its mobiles: France is shared, mobiles kept.
        assert_eq!(
            left(&[tariff(&[("+33", 0.01), ("+336", 0.09)])]),
            ["+33", "+44", "+336"]
        );
        // Cheaper only for mobiles: that prefix is left, the rest of France kept; the
        // lane probe for "+33" still finds mobiles, so they are shared (first free).
        assert_eq!(left(&[tariff(&[("+336", 0.01)])]), ["+33", "+44"]);
    }
}
