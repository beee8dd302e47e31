//! A gateway's state read straight from its database, through a read-only connection:
//! the same JSON as `queue list --json` and `queue show --json`, without starting the
//! CLI each time a test looks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row, params};
use serde_json::{Value, json};

/// Times as the CLI shows them: RFC 3339 UTC, from the stored milliseconds.
macro_rules! rfc3339 {
    ($column:literal) => {
        concat!("strftime('%Y-%m-%dT%H:%M:%fZ', ", $column, " / 1000.0, 'unixepoch')")
    };
}

const ROW: &str = concat!(
    "SELECT r.id, r.state, r.number, r.recipient, m.sender, r.parts, r.encoding, ",
    rfc3339!("r.created"),
    ", ",
    rfc3339!("r.updated"),
    ", r.attempts, r.status, r.reason, r.text, m.client, m.helo, m.auth_user, m.envid, m.ret, \
     r.notify, r.orcpt FROM requests r JOIN messages m ON m.id = r.message_id"
);

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

    /// A new connection each time: the gateway may have been restarted meanwhile.
    fn connect(&self) -> Connection {
        let connection = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {} read-only: {e}", self.path.display()));
        connection.busy_timeout(Duration::from_secs(5)).unwrap();
        connection
    }

    /// Every request, oldest first, as `queue list --json` gives them.
    pub(crate) fn requests(&self) -> Vec<Value> {
        let connection = self.connect();
        let mut statement = connection.prepare(&format!("{ROW} ORDER BY r.id")).unwrap();
        statement
            .query_map([], |row| Ok(summary(row)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// One request with its parts and history, as `queue show --json` gives it.
    pub(crate) fn request(&self, id: i64) -> Option<Value> {
        let connection = self.connect();
        let detail = connection.query_row(&format!("{ROW} WHERE r.id = ?1"), params![id], |row| {
            let mut detail = summary(row);
            let more = json!({
                "text": row.get::<_, String>(12)?,
                "client": row.get::<_, String>(13)?,
                "helo": row.get::<_, String>(14)?,
                "auth_user": row.get::<_, Option<String>>(15)?,
                "envid": row.get::<_, Option<String>>(16)?,
                "ret": row.get::<_, Option<String>>(17)?,
                "notify": row.get::<_, Option<String>>(18)?,
                "orcpt": row.get::<_, Option<String>>(19)?,
            });
            detail
                .as_object_mut()
                .unwrap()
                .extend(more.as_object().unwrap().clone());
            Ok(detail)
        });
        let mut detail = match detail {
            Ok(detail) => detail,
            Err(rusqlite::Error::QueryReturnedNoRows) => return None,
            Err(error) => panic!("reading request {id}: {error}"),
        };
        let parts = rows(
            &connection,
            "SELECT part, modem, mr, status FROM parts WHERE request_id = ?1 ORDER BY part",
            id,
            |row| {
                json!({
                    "part": row.get::<_, i64>(0).unwrap(),
                    "modem": row.get::<_, String>(1).unwrap(),
                    "mr": row.get::<_, Option<i64>>(2).unwrap(),
                    "status": row.get::<_, String>(3).unwrap(),
                })
            },
        );
        let events = rows(
            &connection,
            concat!(
                "SELECT ",
                rfc3339!("time"),
                ", state, detail FROM events WHERE request_id = ?1 ORDER BY id"
            ),
            id,
            |row| {
                json!({
                    "time": row.get::<_, String>(0).unwrap(),
                    "state": row.get::<_, String>(1).unwrap(),
                    "detail": row.get::<_, String>(2).unwrap(),
                })
            },
        );
        detail["sent_parts"] = Value::Array(parts);
        detail["events"] = Value::Array(events);
        Some(detail)
    }

    /// The DSNs owed for request `id`, in the order they were queued, each as its
    /// action and its state: "failed pending", "delivered sent", ...
    pub(crate) fn dsns(&self, id: i64) -> Vec<String> {
        let connection = self.connect();
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
        let connection = self.connect();
        let mut statement = connection.prepare("SELECT raw FROM messages ORDER BY id").unwrap();
        statement
            .query_map([], |row| row.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|raw| String::from_utf8_lossy(&raw.unwrap()).into_owned())
            .collect()
    }

    /// The SMS the modems received: (originator, text), oldest first.
    pub(crate) fn inbox(&self) -> Vec<(String, String)> {
        let connection = self.connect();
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

fn summary(row: &Row<'_>) -> Value {
    let text = |index: usize| row.get::<_, String>(index).unwrap();
    let optional = |index: usize| row.get::<_, Option<String>>(index).unwrap();
    json!({
        "id": row.get::<_, i64>(0).unwrap(),
        "state": text(1),
        "number": text(2),
        "recipient": text(3),
        "sender": text(4),
        "parts": row.get::<_, i64>(5).unwrap(),
        "encoding": text(6),
        "created": text(7),
        "updated": text(8),
        "attempts": row.get::<_, i64>(9).unwrap(),
        "status": optional(10),
        "reason": optional(11),
    })
}

fn rows(connection: &Connection, sql: &str, id: i64, read: impl Fn(&Row<'_>) -> Value) -> Vec<Value> {
    let mut statement = connection.prepare(sql).unwrap();
    statement
        .query_map(params![id], |row| Ok(read(row)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
