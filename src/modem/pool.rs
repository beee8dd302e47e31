//! The pool: a dispatcher hands each due request to the cheapest free modem that may
//! send it (tariff prefix, rate limit), by claiming it in the store; one worker task per
//! modem owns its port.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ModemSpec;
use super::board::Board;
use super::protocol::{Assignment, Timing, WorkerEvent};
use super::worker;
use crate::store::{QueuedRequest, Store, StoreError};

/// How often the dispatcher looks again even if nobody woke it (operator retries from
/// the CLI, expired leases).
const SWEEP: Duration = Duration::from_secs(1);

struct Slot {
    spec: Arc<ModemSpec>,
    assignments: mpsc::Sender<Assignment>,
    ready: bool,
    busy: bool,
    /// Parts sent in the last minute, for `per_minute`.
    recent: VecDeque<Instant>,
}

impl Slot {
    fn free(&self) -> bool {
        self.ready && !self.busy
    }

    /// How long until this modem may send `parts` more parts; `None`: now.
    fn rate_wait(&mut self, parts: usize, now: Instant) -> Option<Duration> {
        let limit = self.spec.per_minute as usize;
        if limit == 0 {
            return None;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        if self.recent.len() + parts.min(limit) <= limit {
            return None;
        }
        let oldest = self.recent[self.recent.len() + parts.min(limit) - limit - 1];
        Some(Duration::from_secs(60).saturating_sub(now.duration_since(oldest)))
    }
}

/// Starts one worker per modem and dispatches due requests to them until `shutdown`;
/// then waits for the workers to finish the SMS in hand.
pub(super) async fn run(
    specs: Vec<Arc<ModemSpec>>,
    board: Arc<Board>,
    store: Store,
    timing: Timing,
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
            shutdown: shutdown.clone(),
        };
        workers.push(tokio::spawn(worker::run(context, queue)));
        slots.push(Slot {
            spec,
            assignments,
            ready: false,
            busy: false,
            recent: VecDeque::new(),
        });
    }
    if let Err(error) = store.recover_leases(i64::MAX).await {
        tracing::error!(%error, "cannot recover requests left sending");
    }
    loop {
        let wait = match assign(&mut slots, &store, &timing).await {
            Ok(wait) => wait.unwrap_or(SWEEP).min(SWEEP),
            Err(error) => {
                tracing::error!(%error, "dispatcher cannot read the queue");
                SWEEP
            }
        };
        tokio::select! {
            () = store.wake.queued.notified() => {}
            Some(event) = incoming.recv() => apply(&mut slots, event),
            () = tokio::time::sleep(wait) => {
                let _ = store.recover_leases(crate::store::now_ms()).await;
                let _ = store.expire_overdue(timing.validity.as_millis() as i64).await;
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

/// Hands due requests to free modems; returns how long until a rate limit or a retry
/// time could let more go.
async fn assign(slots: &mut [Slot], store: &Store, timing: &Timing) -> Result<Option<Duration>, StoreError> {
    if !slots.iter().any(Slot::free) {
        return Ok(None);
    }
    let mut wait = store.next_due_in().await?.map(Duration::from_millis);
    for request in store.due_for_modems(256, timing.validity.as_millis() as i64).await? {
        let now = Instant::now();
        match cheapest_free(slots, &request, now) {
            Choice::Modem(index) => {
                let slot = &mut slots[index];
                let lease = slot.spec.lease().as_millis() as i64;
                if !store.claim(request.id, &slot.spec.name, lease).await? {
                    continue;
                }
                slot.busy = true;
                slot.recent.extend(std::iter::repeat_n(now, request.parts));
                if slot.assignments.send(Assignment { request }).await.is_err() {
                    slot.ready = false;
                }
            }
            Choice::Later(delay) => wait = Some(wait.map_or(delay, |w| w.min(delay))),
            Choice::None => {}
        }
        if !slots.iter().any(Slot::free) {
            break;
        }
    }
    Ok(wait)
}

enum Choice {
    Modem(usize),
    /// A modem could take it once its rate limit allows.
    Later(Duration),
    /// No free modem has a tariff for this number.
    None,
}

/// The free modem with the lowest tariff for the number (ties: by name); the modem that
/// last failed it comes last, so a retry tries another one when there is one.
fn cheapest_free(slots: &mut [Slot], request: &QueuedRequest, now: Instant) -> Choice {
    let mut candidates: Vec<(bool, f64, usize)> = slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.free())
        // Parts of one SMS must leave from one SIM, or the phone cannot join them.
        .filter(|(_, slot)| {
            request.sent_parts.is_empty() || request.last_modem.as_deref() == Some(slot.spec.name.as_str())
        })
        .filter_map(|(index, slot)| {
            let failed_last = request.last_modem.as_deref() == Some(slot.spec.name.as_str());
            slot.spec
                .tariff_for(&request.number)
                .map(|cost| (failed_last, cost, index))
        })
        .collect();
    candidates.sort_by(|a, b| {
        (a.0.cmp(&b.0))
            .then(a.1.total_cmp(&b.1))
            .then_with(|| slots[a.2].spec.name.cmp(&slots[b.2].spec.name))
    });
    let mut later: Option<Duration> = None;
    for (_, _, index) in candidates {
        match slots[index].rate_wait(request.parts, now) {
            None => return Choice::Modem(index),
            Some(delay) => later = Some(later.map_or(delay, |l| l.min(delay))),
        }
    }
    later.map_or(Choice::None, Choice::Later)
}
