//! A gateway's state read straight from its store: `queue list --json` and `queue show
//! --json` through the store's own reads, as the CLI makes them, without starting the
//! CLI each time a test looks; and, on SQLite, the rows the CLI does not show.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use serde_json::Value;
use smsgw::config::Config;
use smsgw::store::{QueueFilter, StoreError};

pub(crate) struct Store {
    /// The gateway's config: where its store is (SQLite or PostgreSQL).
    config: PathBuf,
    /// Its SQLite file, for the rows the CLI does not show.
    path: PathBuf,
}

impl Store {
    /// The store of the gateway with this config and data directory.
    pub(crate) fn of(config: &Path, data: &Path) -> Store {
        Store {
            config: config.to_path_buf(),
            path: data.join("smsgw.db"),
        }
    }

    /// Runs `read` on the gateway's store, opened as the CLI opens it (anew each time:
    /// the gateway may have been restarted meanwhile).
    fn read<T>(&self, read: impl AsyncFnOnce(&smsgw::store::Store) -> T) -> T {
        let config = Config::load(&self.config).unwrap_or_else(|e| panic!("{}: {e}", self.config.display()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = smsgw::store::Store::open_existing(&config)
                .await
                .unwrap_or_else(|e| panic!("open the store of {}: {e}", self.config.display()));
            read(&store).await
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Every request, oldest first, as `queue list --json` gives them.
    pub(crate) fn requests(&self) -> Vec<Value> {
        let rows = self
            .read(async |store| store.list(QueueFilter::default()).await)
            .expect("queue list");
        serde_json::to_value(rows)
            .map(|v| v.as_array().cloned().unwrap_or_default())
            .unwrap()
    }

    /// One request with its parts and history, as `queue show --json` gives it.
    pub(crate) fn request(&self, id: i64) -> Option<Value> {
        match self.read(async |store| store.show(id).await) {
            Ok(detail) => Some(serde_json::to_value(detail).unwrap()),
            Err(StoreError::NotFound(_)) => None,
            Err(error) => panic!("reading request {id}: {error}"),
        }
    }

    /// The gateway's SQLite file, read-only beside the running gateway; a new
    /// connection each time, as the gateway may have been restarted meanwhile.
    fn read_only(&self) -> Connection {
        Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {} read-only: {e}", self.path.display()))
    }

    /// The DSNs owed for request `id`, in the order they were queued, each as its
    /// action and its state: "failed pending", "delivered sent", ...
    pub(crate) fn dsns(&self, id: i64) -> Vec<String> {
        let connection = self.read_only();
        let mut statement = connection
            .prepare("SELECT action || ' ' || state FROM dsns WHERE request_id = ?1 ORDER BY id")
            .unwrap();
        statement
            .query_map(params![id], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Every mail stored, as received (header and body), oldest first.
    pub(crate) fn messages(&self) -> Vec<String> {
        let connection = self.read_only();
        let mut statement = connection.prepare("SELECT raw FROM messages ORDER BY id").unwrap();
        statement
            .query_map([], |row| row.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|raw| String::from_utf8_lossy(&raw.unwrap()).into_owned())
            .collect()
    }

    /// The SMS the modems received: (originator, text), oldest first.
    pub(crate) fn inbox(&self) -> Vec<(String, String)> {
        let connection = self.read_only();
        let mut statement = connection
            .prepare("SELECT originator, text FROM inbox ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}
