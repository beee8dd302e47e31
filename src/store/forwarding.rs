//! Forwarding's side of the queue: a request routed to a peer is handed over, retried,
//! or routed again without the peer that failed it. A forward left unanswered after its
//! end of data stays with its peer: the peer may hold it. So does one taken and never
//! recorded (`in_flight`), which the forwarding stage finds at its start: the gateway
//! stopped or crashed while it was on its way.

use super::{Store, StoreError, now_ms, transact, until};
use crate::e164::E164;
use std::sync::Arc;

impl Store {
    /// Forwarding requests that are due, oldest first, with their envelope and mail;
    /// each is marked in flight until its outcome is recorded.
    pub async fn due_for_forwarding(&self, limit: usize) -> Result<Vec<ForwardRequest>, StoreError> {
        transact!(self, forwarding::due_for_forwarding(now_ms(), limit))
    }

    /// Milliseconds until the next forwarding attempt falls due, if one waits.
    pub async fn next_forward_in(&self) -> Result<Option<u64>, StoreError> {
        Ok(until(transact!(self, forwarding::next_forward())?))
    }

    /// At the forwarding stage's start: a forward taken by the previous run and never
    /// recorded may have reached its peer, which is then tried alone
    /// ([`ForwardOutcome::Unanswered`]). Returns how many.
    pub async fn recover_forwards(&self) -> Result<usize, StoreError> {
        transact!(self, forwarding::recover_forwards(now_ms()))
    }

    /// Forwards taken but not attempted (their connection broke before their turn):
    /// no longer in flight, so a stop before their next attempt leaves them free to fail over.
    pub async fn release_forwards(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        transact!(self, forwarding::release_forwards(&ids))
    }

    /// Records what became of one forwarding attempt to `peer`; ignored unless the
    /// request is still `forwarding` to `peer` (an operator may have released it, and
    /// routing sent it elsewhere, while the attempt was on its way).
    pub async fn record_forward(&self, id: i64, peer: String, outcome: ForwardOutcome) -> Result<(), StoreError> {
        let failover = matches!(outcome, ForwardOutcome::Failover { .. });
        transact!(self, forwarding::record_forward(id, &peer, &outcome, now_ms()))?;
        if failover {
            self.wake.received.notify_one();
        }
        Ok(())
    }
}

/// A request to forward, with its envelope and message.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    /// The request id.
    pub id: i64,
    /// The `[[peer]]` name it goes to.
    pub peer: String,
    /// Attempts on this peer so far, for the retry schedule.
    pub attempts: i64,
    /// The number.
    pub number: E164,
    /// The recipient address as the client wrote it (`RCPT TO` at the peer).
    pub recipient: String,
    /// RFC 3461 `NOTIFY`, passed on.
    pub notify: Option<String>,
    /// RFC 3461 `ORCPT`, passed on.
    pub orcpt: Option<String>,
    /// The envelope sender, passed on.
    pub sender: String,
    /// RFC 3461 `ENVID`, passed on.
    pub envid: Option<String>,
    /// RFC 3461 `RET`, passed on.
    pub ret: Option<String>,
    /// The mail as received, read once and shared by every request of the mail in a
    /// batch: a mail to 100 numbers is held once, not 100 times.
    pub raw: Arc<[u8]>,
    /// Where it was first accepted ("<instance>/<id>"), if not here.
    pub origin: Option<String>,
    /// The instances it passed through before this one.
    pub trace: Vec<String>,
    /// An earlier attempt's end of data left without an answer: the peer may hold it.
    pub unanswered: bool,
    /// When its validity began (unix milliseconds): it is not tried past its end.
    pub valid_from: i64,
}

/// What became of one forwarding attempt.
#[derive(Debug, Clone)]
pub enum ForwardOutcome {
    /// The peer said 250: it owns the request now.
    Accepted(String),
    /// Try this peer again at `at`.
    Retry {
        /// When, unix milliseconds.
        at: i64,
        /// What went wrong this time.
        reason: String,
    },
    /// Give up on this peer for now (down, out of retries), or for good (`refused`):
    /// route the request again without it.
    Failover {
        /// What went wrong.
        reason: String,
        /// A 5xx: the peer is never tried again for this request.
        refused: bool,
    },
    /// The end of data left and no answer came, on this attempt or an earlier one: the
    /// peer may hold the request. Try this peer again at `at`, never another.
    Unanswered {
        /// When, unix milliseconds.
        at: i64,
        /// What went wrong this time.
        reason: String,
    },
    /// The peer may hold the request and is not tried again (the validity ended, it is
    /// no longer a peer, it refused the retry): `uncertain`, until the operator decides.
    Uncertain {
        /// Why it is not tried again.
        reason: String,
    },
}

impl ForwardOutcome {
    /// The history line of this outcome of a forward of request `id` to `peer`, at `now`.
    pub(in crate::store) fn detail(&self, id: i64, peer: &str, now: i64) -> String {
        let wait = |at: i64| (at - now).max(0) / 1000;
        match self {
            ForwardOutcome::Accepted(answer) => format!("forwarded to {peer}: {answer}"),
            ForwardOutcome::Retry { at, reason } => {
                format!("forward to {peer} failed: {reason}; retry in {} s", wait(*at))
            }
            ForwardOutcome::Failover { reason, refused } => {
                let how = if *refused { "refused" } else { "failed" };
                format!("{peer} {how} it ({reason}): routing again without {peer}")
            }
            ForwardOutcome::Unanswered { at, reason } => format!(
                "forward to {peer} failed: {reason}; {peer} may hold it: retry on {peer} only, in {} s",
                wait(*at)
            ),
            ForwardOutcome::Uncertain { reason } => {
                format!("{reason}: only the operator sends it again (`smsgw queue retry {id}`)")
            }
        }
    }
}

/// Why request `id` waits for `peer` alone: `peer` may hold it, `because` of what.
pub(in crate::store) fn held_by(peer: &str, id: i64, because: &str) -> String {
    format!(
        "{peer} may hold it ({because}): tried on {peer} only, until it answers or the validity ends; \
         `smsgw queue retry {id}` routes it again"
    )
}

/// The history line of a forward to `peer` that a stop or a crash cut off.
pub(in crate::store) fn cut_off(peer: &str) -> String {
    format!("the gateway stopped during a forward to {peer}: {peer} may hold it: retry on {peer} only")
}
