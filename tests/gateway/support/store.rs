//! A gateway's state read straight from its database, through a read-only connection:
//! `queue list --json` and `queue show --json` through the CLI's own queries, without
//! starting the CLI each time a test looks; and the rows the CLI does not show.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use serde_json::Value;
use smsgw::store::StoreError;
use smsgw::store::query::{self, QueueFilter};

pub(crate) struct Store {
    path: PathBuf,
}

impl Store {
    /// The database in a gateway's data directory.
    pub(crate) fn in_data_dir(data: &Path) -> Store {
        Store {
            path: data.join("smsgw.db"),
        }
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Every request, oldest first, as `queue list --json` gives them (the CLI's own
    /// query, on a read-only connection).
    pub(crate) fn requests(&self) -> Vec<Value> {
        let connection = self.read_only();
        let rows = query::list(&connection, QueueFilter::default()).expect("queue list");
        serde_json::to_value(rows)
            .map(|v| v.as_array().cloned().unwrap_or_default())
            .unwrap()
    }

    /// One request with its parts and history, as `queue show --json` gives it.
    pub(crate) fn request(&self, id: i64) -> Option<Value> {
        match query::show(&self.read_only(), id) {
            Ok(detail) => Some(serde_json::to_value(detail).unwrap()),
            Err(StoreError::NotFound(_)) => None,
            Err(error) => panic!("reading request {id}: {error}"),
        }
    }

    /// The gateway's database as the CLI opens it beside a running gateway; a new
    /// connection each time, as the gateway may have been restarted meanwhile.
    fn read_only(&self) -> Connection {
        smsgw::store::open_read_only(&self.path)
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
