//! What the SQLite store's unit tests start from: a migrated database in memory.

use rusqlite::Connection;

/// A fresh database in memory, migrated.
pub(in crate::store) fn database() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    super::migrate(&conn).unwrap();
    conn
}

pub(in crate::store) use crate::store::fixtures::mail;
