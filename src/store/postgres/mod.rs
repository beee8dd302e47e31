//! The store on PostgreSQL: several instances of one site share one queue.
//!
//! Each file holds, under the name of the SQLite file it mirrors, the same functions
//! with the same results, taking a [`Tx`] instead of a `Connection`; the facade runs
//! them inside one transaction per call.

pub(in crate::store) mod copy;
pub(in crate::store) mod dispatch;
pub(in crate::store) mod dsn;
pub(in crate::store) mod forwarding;
pub(in crate::store) mod inbox;
pub(in crate::store) mod intake;
pub(in crate::store) mod lifecycle;
pub(in crate::store) mod optout;
pub(in crate::store) mod query;
pub(in crate::store) mod reach;
pub(in crate::store) mod routing;
pub(in crate::store) mod sending;
pub(in crate::store) mod site;
#[cfg(test)]
pub(in crate::store) mod testing;
#[cfg(test)]
mod tests;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::store::StoreError;

/// Migrations, applied in order; `schema_migrations` holds the versions applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_site.sql"),
    include_str!("../../../migrations/postgres/0003_inbound.sql"),
];

/// The advisory lock instances take while they migrate: one at a time.
const MIGRATION_LOCK: i64 = 0x736d_7367_775f_6d69;

/// How long a caller waits for a connection (pool full, or server down) before
/// [`StoreError::Unavailable`].
const WAIT: Duration = Duration::from_secs(5);

/// Connections per instance.
const POOL_SIZE: usize = 16;

/// Parameters of a statement.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A pool of connections to one PostgreSQL database; clones share it.
#[derive(Clone)]
pub(in crate::store) struct Pg {
    pool: Pool,
}

impl Pg {
    /// Connects as `instance` (its name is the `smsgw.instance` setting of every
    /// connection: the columns that say which instance wrote a row default to it) and
    /// migrates.
    pub(in crate::store) async fn connect(config: &tokio_postgres::Config, instance: &str) -> Result<Pg, StoreError> {
        let config = session_config(config, instance);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // Fast: a connection the server closed (a restart) fails its next
                // statement, and is then dropped instead of returning to the pool.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .build()
            .map_err(|e| StoreError::Unavailable(with_causes(&e)))?;
        let pg = Pg { pool };
        pg.migrate().await?;
        Ok(pg)
    }

    /// A transaction on a pooled connection. READ COMMITTED: every statement sees what
    /// other instances committed before it, and the guarded updates (`WHERE state IN
    /// …`) re-check their row once it is theirs. `synchronous_commit` stays the
    /// server's default, `on`: a commit is on disk before we say `250`.
    pub(in crate::store) async fn begin(&self) -> Result<Tx, StoreError> {
        // After a server restart, pooled connections may not know yet that they were
        // closed: BEGIN finds out, and the next connection is tried (a BEGIN that
        // failed changed nothing). At most every pooled connection, then a new one.
        let mut broken = 0;
        loop {
            let conn = self
                .pool
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(with_causes(&e)))?;
            let tx = Tx { conn: Some(conn) };
            match tx.client().batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED").await {
                Ok(()) => return Ok(tx),
                Err(e) if broken < POOL_SIZE && connection_lost(&e) => broken += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A pooled connection, outside any transaction (a statement alone commits).
    pub(in crate::store) async fn connection(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(with_causes(&e)))
    }

    /// Applies the migrations the database lacks, each in its own transaction under an
    /// advisory lock, so that instances starting together apply each once.
    async fn migrate(&self) -> Result<(), StoreError> {
        loop {
            let tx = self.begin().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.client()
                .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY)")
                .await?;
            let applied: i32 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
                .await?
                .get(0);
            let applied = usize::try_from(applied).unwrap_or(0);
            if applied > MIGRATIONS.len() {
                return Err(StoreError::TooNew {
                    found: applied,
                    known: MIGRATIONS.len(),
                });
            }
            let Some(sql) = MIGRATIONS.get(applied) else {
                return tx.commit().await;
            };
            tx.client().batch_execute(sql).await?;
            let version = i32::try_from(applied + 1).unwrap_or(i32::MAX);
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version])
                .await?;
            tx.commit().await?;
        }
    }
}

/// One transaction on a pooled connection. Dropped without [`Tx::commit`] (an error,
/// or the caller's future dropped), its connection leaves the pool and closes, and the
/// server rolls the transaction back: no connection returns to the pool mid-transaction.
pub(in crate::store) struct Tx {
    conn: Option<Object>,
}

impl Tx {
    fn client(&self) -> &Object {
        self.conn.as_ref().expect("a Tx holds its connection until it ends")
    }

    /// Commits; the connection goes back to the pool.
    pub(in crate::store) async fn commit(mut self) -> Result<(), StoreError> {
        self.client().batch_execute("COMMIT").await?;
        // Committed: the connection is clean again.
        self.conn.take();
        Ok(())
    }

    /// Runs a statement; the rows it changed.
    pub(in crate::store) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let statement = self.client().prepare_cached(sql).await?;
        Ok(self.client().execute(&statement, params).await?)
    }

    /// Runs a query; its rows.
    pub(in crate::store) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let statement = self.client().prepare_cached(sql).await?;
        Ok(self.client().query(&statement, params).await?)
    }

    /// Runs a query that returns exactly one row.
    pub(in crate::store) async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
        let statement = self.client().prepare_cached(sql).await?;
        Ok(self.client().query_one(&statement, params).await?)
    }

    /// Runs a query that returns at most one row.
    pub(in crate::store) async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        let statement = self.client().prepare_cached(sql).await?;
        Ok(self.client().query_opt(&statement, params).await?)
    }

    /// Wakes the instances listening on `channel`, once this transaction commits.
    pub(in crate::store) async fn notify(&self, channel: &str) -> Result<(), StoreError> {
        self.execute("SELECT pg_notify($1, '')", &[&channel]).await?;
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Detached from the pool and closed: the server rolls back.
            drop(Object::take(conn));
        }
    }
}

/// `config` for a connection of `instance`: its name as the `smsgw.instance` setting,
/// and a connect timeout.
fn session_config(config: &tokio_postgres::Config, instance: &str) -> tokio_postgres::Config {
    let mut config = config.clone();
    // The server splits `options` at spaces; a backslash keeps one (or itself).
    let name: String = instance
        .chars()
        .flat_map(|c| match c {
            ' ' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    // The server's keepalives find a client whose host vanished within about 25 s, and
    // end its session: a dead instance's name (its session lock) is then free again.
    config.options(format!(
        "-c smsgw.instance={name} -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
    ));
    config.application_name(format!("smsgw {instance}"));
    config.connect_timeout(WAIT);
    // A server that vanished without closing the connection (its host died, the network
    // was cut) fails the statement within seconds instead of TCP's quarter of an hour:
    // intake answers 451, the stages back off.
    config.tcp_user_timeout(Duration::from_secs(10));
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    config
}

/// The connection, not the statement, failed: closed, or ended by the server (SQLSTATE
/// class 08, connection exception; 57P, operator intervention: a shutdown or restart).
pub(in crate::store) fn connection_lost(error: &tokio_postgres::Error) -> bool {
    error.is_closed()
        || error
            .code()
            .is_some_and(|code| code.code().starts_with("08") || code.code().starts_with("57P"))
}

/// An error with the causes it wraps ("error connecting to server: Connection refused"):
/// tokio-postgres shows only the outermost.
pub(in crate::store) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let words = inner.to_string();
        if !text.ends_with(&words) {
            text = format!("{text}: {words}");
        }
        cause = inner.source();
    }
    text
}

/// `n` random bytes in hex.
fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut random = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| StoreError::Commit("no randomness".into()))?;
    Ok(random.iter().map(|b| format!("{b:02x}")).collect())
}

/// The database's random id, chosen on first use.
pub(in crate::store) async fn store_id(tx: &Tx) -> Result<String, StoreError> {
    let fresh = random_hex(8)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('store_id', $1) ON CONFLICT (key) DO NOTHING",
        &[&fresh],
    )
    .await?;
    Ok(tx
        .query_one("SELECT value FROM meta WHERE key = 'store_id'", &[])
        .await?
        .get(0))
}
