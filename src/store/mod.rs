//! The store: SQLite in WAL mode, the only way stages talk to each other.
//!
//! Writes go through one writer thread that batches them ([`writer`]); each state change
//! is one function in [`transitions`]; reads for the CLI are in [`query`].

mod cluster;
mod dsn;
pub mod query;
mod transitions;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::sync::Notify;

pub use cluster::{Forward, Forwarded, Route, Unrouted};
pub use dsn::{DsnAction, DsnJob, DsnOutcome, ReportWait};
pub use query::{Event, QueueFilter, RequestDetail, RequestRow};
pub use transitions::{NewMail, NewRequest, Waiting};

/// Migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_dsn.sql"),
    include_str!("../../migrations/0003_cluster.sql"),
    include_str!("../../migrations/0004_meta.sql"),
    include_str!("../../migrations/0005_sent_by_time.sql"),
    include_str!("../../migrations/0006_valid_from.sql"),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the store is shut down")]
    Closed,
    #[error("the database was written by a newer smsgw (schema {found}, this one knows {known})")]
    TooNew { found: usize, known: usize },
    #[error("no request {0}")]
    NotFound(i64),
}

/// The states of a request (DESIGN.md, "Message states").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Received,
    Routed,
    Forwarding,
    Forwarded,
    Queued,
    Sending,
    Sent,
    Delivered,
    Uncertain,
    Failed,
    Expired,
}

impl State {
    pub const ALL: [State; 11] = [
        State::Received,
        State::Routed,
        State::Forwarding,
        State::Forwarded,
        State::Queued,
        State::Sending,
        State::Sent,
        State::Delivered,
        State::Uncertain,
        State::Failed,
        State::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Routed => "routed",
            State::Forwarding => "forwarding",
            State::Forwarded => "forwarded",
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Delivered => "delivered",
            State::Uncertain => "uncertain",
            State::Failed => "failed",
            State::Expired => "expired",
        }
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// A handle on the store; cheap to clone, one per task.
#[derive(Clone)]
pub struct Store {
    writer: writer::Writer,
    /// Random, chosen when the database was created: see [`Store::id`].
    id: Arc<str>,
    /// Stages wake each other through these after writing a new state.
    pub wake: Arc<Wakeups>,
}

#[derive(Debug, Default)]
pub struct Wakeups {
    /// New requests in `received`.
    pub received: Notify,
    /// New requests in `queued`.
    pub queued: Notify,
    /// New DSNs to deliver.
    pub dsn: Notify,
    /// New requests in `forwarding`.
    pub forwarding: Notify,
}

impl Store {
    /// Opens (creating if needed) the database, applies pending migrations and starts
    /// the writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = connect(path)?;
        migrate(&conn)?;
        let id = store_id(&conn)?.into();
        let writer = writer::Writer::start(conn).map_err(|e| StoreError::DataDir(path.display().to_string(), e))?;
        Ok(Store {
            writer,
            id,
            wake: Arc::default(),
        })
    }

    /// This database's own random id (16 hex digits): with a request id, it names the
    /// request uniquely across the cluster, even after the database is recreated.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stores an accepted mail as one request per recipient; returns their ids once the
    /// rows are durably committed.
    pub async fn receive(&self, mail: NewMail) -> Result<Vec<i64>, StoreError> {
        let ids = self
            .writer
            .write(move |conn| transitions::receive(conn, &mail, now_ms()))
            .await?;
        self.wake.received.notify_one();
        Ok(ids)
    }

    /// `received → queued` for all received requests; wakes the modems.
    pub async fn queue_received(&self) -> Result<usize, StoreError> {
        let count = self
            .writer
            .write(|conn| transitions::queue_received(conn, now_ms()))
            .await?;
        if count > 0 {
            self.wake.queued.notify_one();
        }
        Ok(count)
    }

    /// Received requests due for routing, oldest first.
    pub async fn unrouted(&self, limit: usize) -> Result<Vec<Unrouted>, StoreError> {
        self.writer
            .write(move |conn| cluster::unrouted(conn, now_ms(), limit))
            .await
    }

    /// Routes received requests; wakes the stage each one goes to.
    pub async fn route(&self, routes: Vec<(i64, Route)>) -> Result<(), StoreError> {
        let wakes = (
            routes.iter().any(|(_, r)| matches!(r, Route::Local { .. })),
            routes.iter().any(|(_, r)| matches!(r, Route::Peer { .. })),
            routes.iter().any(|(_, r)| matches!(r, Route::Nowhere { .. })),
        );
        self.writer
            .write(move |conn| {
                let now = now_ms();
                routes
                    .iter()
                    .try_for_each(|(id, route)| cluster::route(conn, *id, route, now))
            })
            .await?;
        let (local, peer, failed) = wakes;
        if local {
            self.wake.queued.notify_one();
        }
        if peer {
            self.wake.forwarding.notify_one();
        }
        if failed {
            self.wake.dsn.notify_one();
        }
        Ok(())
    }

    pub async fn forwarding_due(&self, limit: usize) -> Result<Vec<Forward>, StoreError> {
        self.writer
            .write(move |conn| cluster::forwarding_due(conn, now_ms(), limit))
            .await
    }

    /// Milliseconds until the next forwarding attempt falls due, if one waits.
    pub async fn next_forward_in(&self) -> Result<Option<u64>, StoreError> {
        Ok(until(self.writer.write(cluster::next_forward).await?))
    }

    pub async fn forwarded(&self, id: i64, peer: String, outcome: Forwarded) -> Result<(), StoreError> {
        let failover = matches!(outcome, Forwarded::Failover { .. });
        self.writer
            .write(move |conn| cluster::forwarded(conn, id, &peer, &outcome, now_ms()))
            .await?;
        if failover {
            self.wake.received.notify_one();
        }
        Ok(())
    }

    /// Requests in each of `states`.
    pub async fn counts(&self, states: &'static [State]) -> Result<Vec<(String, i64)>, StoreError> {
        self.writer.write(move |conn| cluster::counts(conn, states)).await
    }

    pub async fn waiting(&self, limit: usize) -> Result<Vec<Waiting>, StoreError> {
        self.writer
            .write(move |conn| transitions::waiting(conn, now_ms(), limit))
            .await
    }

    /// Milliseconds until the next queued request falls due, if one waits for time.
    pub async fn next_due_in(&self) -> Result<Option<u64>, StoreError> {
        Ok(until(self.writer.write(transitions::next_due).await?))
    }

    pub async fn claim(&self, id: i64, modem: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let modem = modem.to_string();
        self.writer
            .write(move |conn| {
                let now = now_ms();
                transitions::claim(conn, id, &modem, now + lease_ms, now)
            })
            .await
    }

    /// Just before `AT+CMGS`: false if this modem no longer holds the request (do not
    /// send); else the lease is renewed for `lease_ms`.
    pub async fn part_submitting(&self, id: i64, part: usize, modem: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let modem = modem.to_string();
        self.writer
            .write(move |conn| {
                let now = now_ms();
                transitions::part_submitting(conn, id, part, &modem, now + lease_ms, now)
            })
            .await
    }

    pub async fn expire_overdue(&self, validity_ms: i64) -> Result<usize, StoreError> {
        let expired = self
            .writer
            .write(move |conn| transitions::expire_overdue(conn, validity_ms, now_ms()))
            .await?;
        if expired > 0 {
            self.wake.dsn.notify_one();
        }
        Ok(expired)
    }

    /// `+CMGS` answered for one part; `unreported`: the modem gets no status reports, so
    /// the last part makes a `relayed` DSN due at once.
    pub async fn part_sent(
        &self,
        id: i64,
        part: usize,
        parts: usize,
        mr: u8,
        unreported: bool,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| transitions::part_sent(conn, id, part, parts, mr, unreported, now_ms()))
            .await?;
        if unreported {
            self.wake.dsn.notify_one();
        }
        Ok(())
    }

    /// A claimed request with no part left to send (all went out before): `sent`.
    pub async fn sent_if_complete(&self, id: i64, parts: usize, unreported: bool) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| transitions::sent_if_complete(conn, id, parts, unreported, now_ms()))
            .await
    }

    pub async fn requeue(&self, id: i64, delay_ms: i64, reason: String) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| {
                let now = now_ms();
                transitions::requeue(conn, id, now + delay_ms, &reason, now)
            })
            .await?;
        self.wake.queued.notify_one();
        Ok(())
    }

    pub async fn fail(&self, id: i64, to: State, status: &'static str, reason: String) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| transitions::fail(conn, id, to, status, &reason, now_ms()))
            .await?;
        self.wake.dsn.notify_one();
        Ok(())
    }

    pub async fn uncertain(&self, id: i64, reason: String) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| transitions::uncertain(conn, id, &reason, now_ms()))
            .await
    }

    pub async fn report(
        &self,
        modem: &str,
        mr: u8,
        number: String,
        delivered: bool,
        detail: String,
    ) -> Result<Option<i64>, StoreError> {
        let modem = modem.to_string();
        let matched = self
            .writer
            .write(move |conn| transitions::report(conn, &modem, mr, &number, delivered, &detail, now_ms()))
            .await?;
        self.wake.dsn.notify_one();
        Ok(matched)
    }

    /// Requests whose lease ended before `lease_before_ms` (all, at start: `i64::MAX`).
    pub async fn recover(&self, lease_before_ms: i64) -> Result<usize, StoreError> {
        let count = self
            .writer
            .write(move |conn| transitions::recover(conn, lease_before_ms, now_ms()))
            .await?;
        if count > 0 {
            self.wake.queued.notify_one();
        }
        Ok(count)
    }

    /// Queues the DSNs that time brings (`delayed`, `relayed`); see [`dsn`].
    pub async fn queue_timed_dsns(
        &self,
        delay_ms: Option<i64>,
        report_wait: Option<ReportWait>,
    ) -> Result<usize, StoreError> {
        self.writer
            .write(move |conn| dsn::queue_timed(conn, delay_ms, report_wait, now_ms()))
            .await
    }

    pub async fn due_dsns(&self, limit: usize) -> Result<Vec<DsnJob>, StoreError> {
        self.writer.write(move |conn| dsn::due(conn, now_ms(), limit)).await
    }

    /// Milliseconds until the next pending DSN falls due, if one waits.
    pub async fn next_dsn_in(&self) -> Result<Option<u64>, StoreError> {
        Ok(until(self.writer.write(dsn::next_due).await?))
    }

    pub async fn dsn_attempted(&self, job: DsnJob, outcome: DsnOutcome) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| dsn::record(conn, &job, &outcome, now_ms()))
            .await
    }

    pub async fn inbox(&self, modem: &str, originator: String, text: String) -> Result<i64, StoreError> {
        let modem = modem.to_string();
        self.writer
            .write(move |conn| transitions::inbox(conn, &modem, &originator, &text, now_ms()))
            .await
    }
}

/// A connection with the settings every user of the database needs.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::DataDir(dir.display().to_string(), e))?;
    }
    let conn = Connection::open(path)?;
    // WAL lets the CLI read while the gateway writes; synchronous=FULL makes every
    // commit reach the disk before we say 250 (NORMAL would not survive a power cut).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// The database's random id, chosen on first use.
fn store_id(conn: &Connection) -> Result<String, StoreError> {
    let mut random = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| StoreError::Commit("no randomness for the store id".into()))?;
    let fresh: String = random.iter().map(|b| format!("{b:02x}")).collect();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('store_id', ?1) ON CONFLICT (key) DO NOTHING",
        [&fresh],
    )?;
    Ok(conn.query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |row| row.get(0))?)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            found: applied,
            known: MIGRATIONS.len(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", index + 1))?;
    }
    Ok(())
}

/// `smsgw queue retry`: queues an uncertain, failed or expired request again, from the
/// CLI beside a running gateway (which picks it up at its next sweep).
pub fn retry(path: &Path, id: i64) -> Result<bool, StoreError> {
    let conn = connect(path)?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let retried = transitions::retry(&conn, id, now_ms())?;
    conn.execute_batch("COMMIT")?;
    Ok(retried)
}

/// Requests per state, read beside the gateway (for `/metrics`: a scan of the whole
/// table, kept off the writer so that intake commits never wait for it).
pub fn counts_by_state(path: &Path) -> Result<Vec<(String, i64)>, StoreError> {
    let conn = open_read_only(path)?;
    let mut statement = conn.prepare("SELECT state, count(*) FROM requests GROUP BY state")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Opens the database for reading, as the CLI does beside a running gateway.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Milliseconds from now until `at` (0 if past).
fn until(at: Option<i64>) -> Option<u64> {
    at.map(|at| at.saturating_sub(now_ms()).max(0) as u64)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
