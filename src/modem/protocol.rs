//! What the dispatcher (`pool`) and the modem workers (`worker`) say to each other: the
//! dispatcher assigns a claimed request to a worker, each worker tells the dispatcher
//! when it is free again, and both follow the same retry timing.

use std::time::Duration;

use crate::retry::RetrySchedule;
use crate::store::QueuedRequest;

/// A request the dispatcher claimed in the store for one modem: its worker sends it.
pub(super) struct Assignment {
    /// Already claimed for this modem, with its lease; carries the parts already sent.
    pub request: QueuedRequest,
}

/// What workers tell the dispatcher.
#[derive(Debug)]
pub(super) enum WorkerEvent {
    /// Initialised and idle.
    Ready(usize),
    /// Finished an assignment and idle again.
    Done(usize),
    /// Closed; reopening with backoff (or disabled).
    Down(usize),
}

/// Retry timing, from the config.
#[derive(Debug, Clone)]
pub(super) struct Timing {
    /// The wait before the next attempt, by the attempts made (the claim counts each).
    pub retry: RetrySchedule,
    /// After this long since it was received, a request is expired instead of retried.
    pub validity: Duration,
}
