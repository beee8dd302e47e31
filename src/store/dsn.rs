//! Delivery status notifications owed to senders: decided here, in the transaction of
//! the state change they report, and handed to the notify stage as [`PendingDsn`]s.
//!
//! Which DSN a sender gets follows RFC 3461: NOTIFY=SUCCESS gives `delivered` (or
//! `relayed` when no status report can be had), FAILURE gives `failed`, DELAY gives one
//! `delayed`; without NOTIFY only failures are reported; NEVER and the null sender get
//! nothing (a DSN is never sent about a DSN).

use super::{DsnState, Store, StoreError, now_ms, transact, until};
use crate::e164::E164;

/// The `events.state` of a line about a DSN (not a request state: the request's own
/// state does not change when its DSN is queued or delivered).
pub(in crate::store) const DSN_EVENT: &str = "dsn";

/// What a DSN tells (RFC 3464 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    /// Every part was reported delivered.
    Delivered,
    /// Handed to the network, and no status report will tell more.
    Relayed,
    /// Failed or expired.
    Failed,
    /// Still not handed to the network after `dsn.delay_after_secs`.
    Delayed,
}

impl DsnAction {
    /// The RFC 3464 `Action` value, also the name stored in `dsns.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
        }
    }

    pub(in crate::store) fn parse(s: &str) -> DsnAction {
        match s {
            "delivered" => DsnAction::Delivered,
            "relayed" => DsnAction::Relayed,
            "delayed" => DsnAction::Delayed,
            _ => DsnAction::Failed,
        }
    }

    /// The RFC 3461 NOTIFY keyword that asks for this DSN.
    pub(in crate::store) fn notify_keyword(self) -> &'static str {
        match self {
            DsnAction::Delivered | DsnAction::Relayed => "SUCCESS",
            DsnAction::Failed => "FAILURE",
            DsnAction::Delayed => "DELAY",
        }
    }

    /// DSNs already queued that make this one pointless: after `relayed`, the sender is
    /// not told `delivered` again, but a later failure still reaches them.
    pub(in crate::store) fn superseded_by(self) -> &'static str {
        match self {
            DsnAction::Delivered | DsnAction::Relayed => "'delivered', 'relayed'",
            DsnAction::Failed => "'failed'",
            DsnAction::Delayed => "'delayed'",
        }
    }
}

impl Store {
    /// Queues the DSNs that time brings (`delayed`, `relayed`); see [`queue_timed`].
    pub async fn queue_timed_dsns(
        &self,
        delay_ms: Option<i64>,
        report_wait: Option<ReportWait>,
    ) -> Result<usize, StoreError> {
        transact!(self, dsn::queue_timed(delay_ms, report_wait, now_ms()))
    }

    /// Pending DSNs whose time has come, oldest first, at most `limit`.
    pub async fn dsns_due(&self, limit: usize) -> Result<Vec<PendingDsn>, StoreError> {
        transact!(self, dsn::dsns_due(now_ms(), limit))
    }

    /// Milliseconds until the next pending DSN falls due, if one waits.
    pub async fn next_dsn_in(&self) -> Result<Option<u64>, StoreError> {
        Ok(until(transact!(self, dsn::next_due())?))
    }

    /// Records what became of one delivery attempt of `dsn`.
    pub async fn record_dsn_attempt(&self, dsn: PendingDsn, outcome: DsnOutcome) -> Result<(), StoreError> {
        transact!(self, dsn::record_dsn_attempt(&dsn, &outcome, now_ms()))
    }
}

/// How long a sent request may wait for its status report before its sender is told
/// `relayed`, and the send times already looked at.
#[derive(Debug, Clone, Copy)]
pub struct ReportWait {
    /// How long a sent request waits for its report, in milliseconds.
    pub wait_ms: i64,
    /// Requests sent before this were looked at by an earlier sweep.
    pub since: i64,
}

/// A DSN to deliver, with everything its mail is made of.
#[derive(Debug, Clone)]
pub struct PendingDsn {
    /// The DSN's id (`dsns.id`).
    pub id: i64,
    /// What it tells.
    pub action: DsnAction,
    /// When the DSN was decided (its `Date`), unix milliseconds.
    pub created: i64,
    /// Delivery attempts so far, for the retry schedule.
    pub attempts: i64,
    /// The request it reports on.
    pub request: i64,
    /// The envelope sender of the original mail: the DSN's recipient.
    pub sender: String,
    /// RFC 3461 `ENVID` of the original mail, echoed.
    pub envid: Option<String>,
    /// RFC 3461 `RET` of the original mail: how much of it to return.
    pub ret: Option<String>,
    /// When the original mail arrived, unix milliseconds.
    pub arrival: i64,
    /// The original mail.
    pub raw: Vec<u8>,
    /// The recipient address as the client wrote it.
    pub recipient: String,
    /// RFC 3461 `ORCPT`, echoed.
    pub orcpt: Option<String>,
    /// The number.
    pub number: E164,
    /// The SMS text.
    pub text: String,
    /// How many SMS parts.
    pub parts: i64,
    /// The modem that sent it, if one did.
    pub modem: Option<String>,
    /// Enhanced status code of a failure.
    pub status: Option<String>,
    /// The words of a failure, or why it is delayed.
    pub reason: Option<String>,
    /// When the request last changed (its last attempt), unix milliseconds.
    pub updated: i64,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
pub enum DsnOutcome {
    /// Accepted by the receiving server; the text says by whom and what it answered.
    Sent(String),
    /// Try again at this time (unix milliseconds).
    Retry {
        /// When, unix milliseconds.
        at: i64,
        /// What went wrong this time.
        error: String,
    },
    /// Never delivered: refused for good, or its lifetime ran out.
    Dropped(String),
}

impl DsnOutcome {
    /// What an attempt at `dsn` with this outcome, at `now`, writes: the DSN's new state,
    /// its next attempt, its last error, and the request's history line when it is final.
    pub(in crate::store) fn record<'a>(
        &'a self,
        dsn: &PendingDsn,
        now: i64,
    ) -> (DsnState, i64, Option<&'a str>, Option<String>) {
        let action = dsn.action.as_str();
        match self {
            DsnOutcome::Sent(how) => (
                DsnState::Sent,
                now,
                None,
                Some(format!("{action} DSN delivered to <{}>: {how}", dsn.sender)),
            ),
            DsnOutcome::Retry { at, error } => (DsnState::Pending, *at, Some(error.as_str()), None),
            DsnOutcome::Dropped(why) => (
                DsnState::Dropped,
                now,
                Some(why.as_str()),
                Some(format!("{action} DSN to <{}> dropped: {why}", dsn.sender)),
            ),
        }
    }
}
