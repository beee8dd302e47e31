//! What a copy carries from SQLite to PostgreSQL: the rows, a batch at a time, and the
//! counts it checks.

use std::fmt;

/// Most rows read and written at once.
pub(in crate::store) const BATCH_ROWS: usize = 2_000;
/// Most bytes of mail (`messages.raw`) read and written at once; a batch holds at least
/// one message, however large.
pub(in crate::store) const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// A row of `messages`.
pub(in crate::store) struct MessageRow {
    pub(in crate::store) id: i64,
    pub(in crate::store) received: i64,
    pub(in crate::store) sender: String,
    pub(in crate::store) envid: Option<String>,
    pub(in crate::store) ret: Option<String>,
    pub(in crate::store) client: String,
    pub(in crate::store) helo: String,
    pub(in crate::store) auth_user: Option<String>,
    pub(in crate::store) size: i64,
    pub(in crate::store) raw: Vec<u8>,
    pub(in crate::store) origin: Option<String>,
    pub(in crate::store) trace: String,
}

/// A row of `requests`, as SQLite has it.
pub(in crate::store) struct RequestRow {
    pub(in crate::store) id: i64,
    pub(in crate::store) message_id: i64,
    pub(in crate::store) recipient: String,
    pub(in crate::store) number: String,
    pub(in crate::store) notify: Option<String>,
    pub(in crate::store) orcpt: Option<String>,
    pub(in crate::store) text: String,
    pub(in crate::store) encoding: String,
    pub(in crate::store) parts: i64,
    pub(in crate::store) state: String,
    pub(in crate::store) status: Option<String>,
    pub(in crate::store) reason: Option<String>,
    pub(in crate::store) attempts: i64,
    pub(in crate::store) next_attempt: Option<i64>,
    pub(in crate::store) lease_until: Option<i64>,
    pub(in crate::store) modem: Option<String>,
    pub(in crate::store) created: i64,
    pub(in crate::store) updated: i64,
    pub(in crate::store) route: Option<String>,
    pub(in crate::store) tried: String,
    pub(in crate::store) valid_from: Option<i64>,
    pub(in crate::store) unanswered: bool,
    pub(in crate::store) in_flight: bool,
    /// NULL for requests accepted before SQLite recorded it.
    pub(in crate::store) instance: Option<String>,
}

/// A row of `events`.
pub(in crate::store) struct EventRow {
    pub(in crate::store) id: i64,
    pub(in crate::store) request_id: i64,
    pub(in crate::store) time: i64,
    pub(in crate::store) state: String,
    pub(in crate::store) detail: String,
}

/// A row of `parts`.
pub(in crate::store) struct PartRow {
    pub(in crate::store) request_id: i64,
    pub(in crate::store) part: i64,
    pub(in crate::store) modem: String,
    pub(in crate::store) mr: Option<i64>,
    pub(in crate::store) status: String,
    pub(in crate::store) submitted: i64,
    pub(in crate::store) reported: Option<i64>,
}

/// A row of `dsns`, as SQLite has it.
pub(in crate::store) struct DsnRow {
    pub(in crate::store) id: i64,
    pub(in crate::store) request_id: i64,
    pub(in crate::store) action: String,
    pub(in crate::store) created: i64,
    pub(in crate::store) state: String,
    pub(in crate::store) attempts: i64,
    pub(in crate::store) next_attempt: i64,
    pub(in crate::store) last_error: Option<String>,
}

/// A row of `inbox`.
pub(in crate::store) struct InboxRow {
    pub(in crate::store) id: i64,
    pub(in crate::store) received: i64,
    pub(in crate::store) modem: String,
    pub(in crate::store) originator: String,
    pub(in crate::store) text: String,
    pub(in crate::store) sent: Option<String>,
    pub(in crate::store) parts: i64,
    pub(in crate::store) missing: Option<String>,
    pub(in crate::store) kind: String,
    pub(in crate::store) reply_to: Option<i64>,
    pub(in crate::store) recipient: Option<String>,
    pub(in crate::store) others: i64,
    pub(in crate::store) state: String,
    pub(in crate::store) outcome: Option<String>,
    pub(in crate::store) attempts: i64,
    pub(in crate::store) next_attempt: Option<i64>,
}

/// A row of `inbox_parts`.
pub(in crate::store) struct InboxPartRow {
    pub(in crate::store) id: i64,
    pub(in crate::store) modem: String,
    pub(in crate::store) originator: String,
    pub(in crate::store) copy_key: String,
    pub(in crate::store) reference: Option<i64>,
    pub(in crate::store) parts: i64,
    pub(in crate::store) part: i64,
    pub(in crate::store) text: String,
    pub(in crate::store) sent: String,
    pub(in crate::store) received: i64,
    pub(in crate::store) inbox_id: Option<i64>,
}

/// A row of `optouts`.
pub(in crate::store) struct OptOutRow {
    pub(in crate::store) number: String,
    pub(in crate::store) opted_out: bool,
    pub(in crate::store) changed: i64,
    pub(in crate::store) source: String,
    pub(in crate::store) origin: Option<String>,
    pub(in crate::store) seq: Option<i64>,
}

/// Rows per table of one store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// `messages`: mails accepted.
    pub messages: u64,
    /// `requests`: one per mail and recipient.
    pub requests: u64,
    /// `events`: the requests' history.
    pub events: u64,
    /// `parts`: SMS parts handed to modems.
    pub parts: u64,
    /// `dsns`: DSNs owed or delivered.
    pub dsns: u64,
    /// `inbox`: SMS received.
    pub inbox: u64,
    /// `inbox_parts`: parts of SMS received, kept for reassembly and their copies.
    pub inbox_parts: u64,
    /// `optouts`: numbers that opted out (or in again).
    pub optouts: u64,
}

impl fmt::Display for TableCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "messages {}, requests {}, events {}, parts {}, dsns {}, inbox {}, inbox_parts {}, optouts {}",
            self.messages,
            self.requests,
            self.events,
            self.parts,
            self.dsns,
            self.inbox,
            self.inbox_parts,
            self.optouts
        )
    }
}

/// What a copy found on each side: equal when it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyCounts {
    /// Rows of the SQLite store.
    pub sqlite: TableCounts,
    /// Rows the PostgreSQL transaction held before its commit.
    pub postgres: TableCounts,
    /// Whether the copy committed (the counts agreed); if not, nothing was copied.
    pub committed: bool,
}

/// The tables copied, in the order they are written (each row's references first).
pub(in crate::store) const TABLES: [&str; 8] = [
    "messages",
    "requests",
    "events",
    "parts",
    "dsns",
    "inbox",
    "inbox_parts",
    "optouts",
];
