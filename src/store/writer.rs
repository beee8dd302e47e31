//! The one writer: a thread that owns the write connection and commits queued jobs in
//! batches, so that concurrent sessions share one fsync instead of paying one each.
//!
//! A job's result is handed back only after the commit that contains it returned: a
//! caller that gets `Ok` knows its rows are on disk.

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;

/// Most jobs in one transaction: bounds the latency a big batch adds to its first job.
const MAX_BATCH: usize = 512;

/// Hands a piece of work its result once the batch's commit is known.
type Acknowledge = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// Called with the connection inside the batch's transaction, or with `None` when no
/// transaction could be begun (the work must then write nothing).
type Work = Box<dyn FnOnce(Option<&Connection>) -> Acknowledge + Send>;

/// A handle on the writer thread; cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Work>,
}

impl Writer {
    /// Starts the writer thread; it ends when the last `Writer` is dropped, after
    /// committing what was queued.
    pub(super) fn start(conn: Connection) -> std::io::Result<Writer> {
        let (queue, pending) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, pending))?;
        Ok(Writer { queue })
    }

    /// Runs `work` inside the next batch and returns its result once committed.
    /// `work` runs in a savepoint: its error rolls back its own writes only.
    pub(super) async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Work = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => in_savepoint(conn, work),
                None => Err(StoreError::Closed),
            };
            Box::new(move |commit_error| {
                let result = match commit_error {
                    Some(e) => Err(StoreError::Commit(e.to_string())),
                    None => result,
                };
                // The caller may have gone away (connection dropped); the rows stay.
                let _ = tx.send(result);
            })
        });
        self.queue.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn in_savepoint<R>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    match work(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn run(conn: Connection, queue: mpsc::Receiver<Work>) {
    while let Ok(first) = queue.recv() {
        let mut replies = Vec::new();
        let begun = conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::from);
        if let Err(e) = &begun {
            tracing::error!(error = %e, "store cannot begin a transaction");
            first(None)(Some(e));
            continue;
        }
        replies.push(first(Some(&conn)));
        while replies.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => replies.push(job(Some(&conn))),
                Err(_) => break,
            }
        }
        let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = ?committed, "store commit failed; batch refused");
        }
        for reply in replies {
            reply(committed.as_ref().err());
        }
    }
}
