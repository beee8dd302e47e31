//! The store: the queue, and the only way stages talk to each other.
//!
//! [`Store`] is the contract between stages: each stage reads what is due for it and
//! records what became of it, and every state change is one transaction that also
//! appends an event (`queue show`) and, where the sender asked, queues a DSN.
//!
//! Two backends keep the same queue ([`sqlite`], the default: one file, one instance;
//! [`postgres`]: several instances of one site on one database), each with the same
//! files by job, named for the stage they serve: `intake` (mail in), `routing`, `reach`
//! (requests a narrower tariff leaves without a route), `forwarding` (to peers),
//! `dispatch` (which request each free modem gets), `sending` (modems: leases, parts,
//! reports, recovery), `lifecycle` (the moves all share, expiry, the operator's retry),
//! `dsn` (what senders are owed), `inbox` (SMS received, and the mail each becomes),
//! `optout` (numbers that texted STOP), `query` (the CLI's reads).
//! The files of this module hold each stage's methods and types, and pass each call to
//! the backend's function of the same name ([`transact!`]); [`state`] holds the names.

#[cfg(test)]
mod conformance;
pub mod copy;
mod dispatch;
mod dsn;
#[cfg(test)]
mod fixtures;
mod forwarding;
mod inbox;
mod intake;
mod lifecycle;
mod optout;
mod postgres;
pub mod query;
mod reach;
mod routing;
mod sending;
mod site;
mod sqlite;
mod state;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::config::Config;
pub use dispatch::QueuedRequest;
pub use dsn::{DsnAction, DsnOutcome, PendingDsn, ReportWait};
pub use forwarding::{ForwardOutcome, ForwardRequest};
pub use inbox::{InboundRules, InboxEntry, PartOutcome, PendingInbound, ReceivedPart, ReceivedSms};
pub use intake::{NewMail, NewRequest};
pub use optout::{FEED_BATCH, OptOut, OptOutList, opted_out_reason};
pub use query::{HistoryLine, QueueFilter, RequestDetail, RequestRow};
pub use routing::{Route, UnroutedRequest};
pub use sending::ReportedPart;
pub use site::{SiteModem, Usage};
pub use state::{DsnState, InboxKind, InboxState, PartStatus, State};

/// Runs the PostgreSQL function `$module::$function` with the transaction first and
/// `$arg`s after, in a transaction of its own, and evaluates to its result once
/// committed (rolled back, as the transaction is dropped, on its error).
macro_rules! in_transaction {
    ($db:expr, $module:ident :: $function:ident ($($arg:expr),*)) => {
        async {
            let tx = $db.begin().await?;
            let value = $crate::store::postgres::$module::$function(&tx $(, $arg)*).await?;
            tx.commit().await?;
            Ok(value)
        }
        .await
    };
}
use in_transaction;

/// Runs the backend's function `$module::$function` with the connection first and
/// `$arg`s after, in one transaction, and evaluates to its result once committed. The
/// arguments are moved into the SQLite writer's job, so they must be owned values (or
/// borrows of them, written `&value`).
macro_rules! transact {
    ($store:expr, $module:ident :: $function:ident ($($arg:expr),* $(,)?)) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(db) => {
                db.write(move |conn| $crate::store::sqlite::$module::$function(conn $(, $arg)*)).await
            }
            $crate::store::Backend::Postgres(db) => {
                $crate::store::in_transaction!(db, $module::$function($($arg),*))
            }
        }
    };
}
use transact;

/// Like [`transact!`], for reads that may be long (the CLI's, `/metrics`'): on SQLite
/// they run on a connection of their own, off the writer.
macro_rules! read_only {
    ($store:expr, $module:ident :: $function:ident ($($arg:expr),* $(,)?)) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(db) => {
                db.read(move |conn| $crate::store::sqlite::$module::$function(conn $(, $arg)*)).await
            }
            $crate::store::Backend::Postgres(db) => {
                $crate::store::in_transaction!(db, $module::$function($($arg),*))
            }
        }
    };
}
use read_only;

/// Why the store could not do what was asked. Intake turns any of these into
/// `451 4.3.0`: nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused a statement.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused a statement, or the connection broke during it.
    #[error("database error: {}", postgres::with_causes(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had (it is down, or unreachable).
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// The database's directory could not be made, or the writer thread not started.
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    /// The batch holding this write did not commit: nothing of it is stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The CLI: the SQLite file does not exist (the gateway has not run here).
    #[error("no database at {0} (has the gateway run here?)")]
    NoDatabase(String),
    /// Another live instance of the site has this instance's name.
    #[error(
        "another running instance of the site is named {0:?}: every instance needs a name of its own (instance.name)"
    )]
    InstanceInUse(String),
    /// A modem name another live instance of the site has.
    #[error(
        "modem {modem:?} is a modem of instance {instance:?} already: every modem of the site needs a name of its own"
    )]
    ModemInUse {
        /// The name.
        modem: String,
        /// The instance that has it.
        instance: String,
    },
    /// The writer has stopped (shutdown).
    #[error("the store is shut down")]
    Closed,
    /// The database has migrations this binary does not know: refuse to touch it.
    #[error("the database was written by a newer smsgw (schema {found}, this one knows {known})")]
    TooNew {
        /// Migrations applied to the database.
        found: usize,
        /// Migrations this binary has.
        known: usize,
    },
    /// No request with this id.
    #[error("no request {0}")]
    NotFound(i64),
    /// Intake only: the mail would take the queue past `store.max_size_mb`. Nothing of
    /// it was written, and the rest of its batch commits.
    #[error("the queue is full (store.max_size_mb): try again later")]
    Full,
    /// `store copy`: this instance's store is on PostgreSQL already (`store.url`).
    #[error("this instance's store is PostgreSQL already (store.url = {0}): there is no SQLite store to copy")]
    NotSqlite(String),
    /// `store copy`: a request is being sent, so the gateway is running.
    #[error(
        "request {0} is being sent (state sending): stop the gateway before copying its store (one that crashed: start it, so that it recovers its requests, and stop it)"
    )]
    Sending(i64),
    /// `store copy`: the PostgreSQL database has rows already.
    #[error(
        "the PostgreSQL database is not empty (table {0} has rows): the store is copied only into an empty database"
    )]
    NotEmpty(&'static str),
}

impl StoreError {
    /// Whether the same write may succeed if tried again soon: PostgreSQL was out of
    /// reach, or the connection broke under the statement (a restart). Every store
    /// method is a guarded transition, so one that did commit before the connection
    /// broke changes nothing the second time.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Postgres(error) => postgres::connection_lost(error),
            _ => false,
        }
    }
}

/// A handle on the store; cheap to clone, one per task. Its methods, grouped by the
/// stage that calls them, live in the files named in the module docs.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Random, chosen when the database was created: see [`Store::id`].
    id: Arc<str>,
    /// Stages wake each other through these after writing a new state.
    pub wake: Arc<Wakeups>,
    /// The numbers opted out, in memory for RCPT.
    optouts: Arc<OptOutList>,
}

/// Where the queue is kept.
#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Pg),
}

/// One wake-up per stage: a store method that hands a stage new work notifies it, so
/// no stage polls faster than its own timers.
#[derive(Debug, Default)]
pub struct Wakeups {
    /// New requests in `received`.
    pub received: Notify,
    /// New requests in `queued`.
    pub queued: Notify,
    /// New mail to deliver: DSNs, and mails made from incoming SMS.
    pub outbound: Notify,
    /// New requests in `forwarding`.
    pub forwarding: Notify,
}

impl Store {
    /// Opens the queue `[store]` names (creating and migrating it if needed): the SQLite
    /// file in `instance.data_dir`, or the PostgreSQL database of `store.url`. For the
    /// tools (the CLI); a running instance [joins](Store::join) it.
    pub async fn open(config: &Config) -> Result<Store, StoreError> {
        let wake = Arc::<Wakeups>::default();
        let (backend, id) = match &config.store.url {
            None => {
                let (db, id) =
                    sqlite::Sqlite::open(&config.database_path(), config.store_max_bytes(), &config.instance.name)?;
                (Backend::Sqlite(db), id)
            }
            Some(url) => {
                let db = postgres::Pg::connect(url.config(), &config.instance.name).await?;
                let tx = db.begin().await?;
                let id = postgres::store_id(&tx).await?;
                tx.commit().await?;
                (Backend::Postgres(db), id)
            }
        };
        Ok(Store {
            backend,
            id: id.into(),
            wake,
            optouts: Arc::default(),
        })
    }

    /// Opens the queue as the running instance `instance.name`. On PostgreSQL it joins
    /// the site: it takes the instance's name (refused while another live instance holds
    /// it: [`StoreError::InstanceInUse`]), beats every second so that the others know it
    /// lives, and wakes its modems when another instance queues requests.
    pub async fn join(config: &Config) -> Result<Store, StoreError> {
        let store = Store::open(config).await?;
        if let (Some(url), Backend::Postgres(db)) = (&config.store.url, &store.backend) {
            postgres::site::join(db, url.config(), &config.instance.name, store.wake.clone()).await?;
        }
        store.reload_optouts().await?;
        Ok(store)
    }

    /// Opens the queue of an instance that has run: as [`Store::open`], but a SQLite
    /// file that does not exist yet is [`StoreError::NoDatabase`], not made (the CLI).
    pub async fn open_existing(config: &Config) -> Result<Store, StoreError> {
        let path = config.database_path();
        if config.store.url.is_none() && !path.exists() {
            return Err(StoreError::NoDatabase(path.display().to_string()));
        }
        Store::open(config).await
    }

    /// This database's own random id (16 hex digits): with a request id, it names the
    /// request uniquely across the cluster, even after the database is recreated.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The queue's figures, for `/metrics`: a scan of the whole table, kept off the
    /// SQLite writer so that intake commits never wait for it.
    pub async fn queue_summary(&self) -> Result<QueueSummary, StoreError> {
        let (by_state, oldest) = read_only!(self, query::queue_summary())?;
        Ok(QueueSummary {
            by_state,
            oldest_waiting: oldest
                .map(|since: i64| Duration::from_millis(now_ms().saturating_sub(since).max(0) as u64)),
        })
    }
}

/// What `/metrics` shows of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSummary {
    /// Requests per state (states with none are absent).
    pub by_state: Vec<(State, u64)>,
    /// How long the oldest request not yet handed to a modem's network or a peer has
    /// waited since it was accepted, or since an operator's retry.
    pub oldest_waiting: Option<Duration>,
}

/// What the backends' `query::queue_summary` reads: requests per state, and when the
/// oldest waiting one was accepted (or retried), unix milliseconds.
type QueueCounts = (Vec<(State, u64)>, Option<i64>);

/// States in which a request still waits for this site to send or hand it on.
const WAITING: [State; 5] = [
    State::Received,
    State::Routed,
    State::Forwarding,
    State::Queued,
    State::Sending,
];

/// Milliseconds from now until `at` (0 if past).
fn until(at: Option<i64>) -> Option<u64> {
    at.map(|at| at.saturating_sub(now_ms()).max(0) as u64)
}

/// The store's clock: unix milliseconds, as every time column holds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
