//! The one writer: a thread that owns the write connection and commits queued jobs in
//! batches, so that concurrent sessions share one fsync instead of paying one each.
//!
//! A job's result is handed back only after the commit that contains it returned: a
//! caller that gets `Ok` knows its rows are on disk. A caller that gets an error knows
//! they are not: when a job's error makes SQLite roll back the whole transaction (disk
//! full, I/O error), every job of the batch so far hears it, and the batch stops there.

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
        let (job, answer) = job(work);
        self.queue.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// `work` as a job for the writer thread, and where its result will arrive.
fn job<R, F>(work: F) -> (Work, oneshot::Receiver<Result<R, StoreError>>)
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Work = Box::new(move |conn| {
        // `None`: no transaction could be begun, and the work did not run.
        let result = conn.map(|conn| in_savepoint(conn, work));
        Box::new(move |batch_error| {
            // A job's own error stands (it wrote nothing); its success only if the
            // batch committed.
            let result = match (result, batch_error) {
                (Some(Err(e)), _) => Err(e),
                (_, Some(e)) => Err(StoreError::Commit(e.to_string())),
                (Some(Ok(value)), None) => Ok(value),
                (None, None) => Err(StoreError::Closed),
            };
            // The caller may have gone away (connection dropped); the rows stay.
            let _ = tx.send(result);
        })
    });
    (job, rx)
}

fn in_savepoint<R>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = work(conn);
    // SQLite rolled back the whole transaction, the savepoint with it: the job's error
    // is the cause, and `run` answers the batch.
    if conn.is_autocommit() {
        return result;
    }
    let closed = match &result {
        Ok(_) => conn.execute_batch("RELEASE job"),
        Err(_) => conn.execute_batch("ROLLBACK TO job; RELEASE job"),
    };
    if let Err(error) = closed {
        // The job's writes can no longer be told apart from the batch's: the whole
        // transaction goes, so that nothing commits whose caller hears it failed
        // (`run` sees the rollback and refuses the batch).
        let _ = conn.execute_batch("ROLLBACK");
        return Err(result.err().unwrap_or(StoreError::from(error)));
    }
    result
}

fn run(conn: Connection, queue: mpsc::Receiver<Work>) {
    while let Ok(first) = queue.recv() {
        // A commit and its rollback both failed: the transaction still open would make
        // every BEGIN fail, and the store would stop for good.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let begun = conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::from);
        if let Err(e) = &begun {
            tracing::error!(error = %e, "store cannot begin a transaction");
            first(None)(Some(e));
            continue;
        }
        let mut replies = vec![first(Some(&conn))];
        let mut rolled_back = conn.is_autocommit();
        while !rolled_back && replies.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => {
                    replies.push(job(Some(&conn)));
                    rolled_back = conn.is_autocommit();
                }
                Err(_) => break,
            }
        }
        let committed = if rolled_back {
            // An error that SQLite cannot undo alone (disk full, I/O error) rolled back
            // the whole transaction: every job of the batch so far is lost. The batch
            // stops here, and the jobs still queued begin a transaction of their own, so
            // none commits while its caller hears that it failed.
            tracing::error!("store transaction rolled back by SQLite (disk full or I/O error); batch refused");
            Err(StoreError::Commit(
                "SQLite rolled back the transaction (disk full or I/O error)".into(),
            ))
        } else {
            let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
            if committed.is_err() {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(error = ?committed, "store commit failed; batch refused");
            }
            committed
        };
        for reply in replies {
            reply(committed.as_ref().err());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rusqlite::Connection;

    use super::{Work, job, run};
    use crate::store::NewMail;
    use crate::store::sqlite::fixtures;
    use crate::store::sqlite::intake::{receive, receive_within};
    use crate::store::sqlite::lifecycle::fail;
    use crate::store::sqlite::{connect, migrate};
    use crate::store::{State, StoreError};

    /// A database file of its own, removed when dropped.
    struct Database(PathBuf);

    impl Database {
        fn new(name: &str) -> Database {
            let dir = std::env::temp_dir().join(format!("smsgw-writer-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let database = Database(dir);
            migrate(&connect(&database.path()).unwrap()).unwrap();
            database
        }

        fn path(&self) -> PathBuf {
            self.0.join("queue.sqlite")
        }

        /// The writer's connection, as `Store::open` makes it, on a database that may
        /// grow by `pages` pages only (a disk that fills up).
        fn writer_connection(&self, pages: i64) -> Connection {
            let conn = connect(&self.path()).unwrap();
            let count: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0)).unwrap();
            conn.pragma_update(None, "max_page_count", count + pages).unwrap();
            conn
        }

        /// The senders of the mails stored (committed), in order.
        fn stored(&self) -> Vec<String> {
            let conn = connect(&self.path()).unwrap();
            let mut statement = conn.prepare("SELECT sender FROM messages ORDER BY id").unwrap();
            statement
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
    }

    impl Drop for Database {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A mail from `sender` whose raw text is `size` bytes.
    fn mail(sender: &str, size: usize) -> NewMail {
        NewMail {
            sender: sender.into(),
            raw: vec![b'x'; size],
            ..fixtures::mail(&["+33477858589"], 1)
        }
    }

    /// Runs the writer over `mails`, queued before it starts so that they make one
    /// batch (as concurrent sessions do); each sender with what its caller heard.
    fn write_in_one_batch(conn: Connection, mails: Vec<NewMail>) -> Vec<(String, Result<Vec<i64>, StoreError>)> {
        let (queue, pending) = std::sync::mpsc::channel::<Work>();
        let answers: Vec<_> = mails
            .into_iter()
            .map(|mail| {
                let sender = mail.sender.clone();
                let (work, answer) = job(move |conn| receive(conn, &mail, 0));
                queue.send(work).unwrap();
                (sender, answer)
            })
            .collect();
        drop(queue);
        run(conn, pending);
        answers
            .into_iter()
            .map(|(sender, mut answer)| (sender, answer.try_recv().expect("every job is answered")))
            .collect()
    }

    /// What each caller heard agrees with the database: `Ok` for each mail stored,
    /// an error for each mail not stored.
    fn assert_truthful(database: &Database, answers: &[(String, Result<Vec<i64>, StoreError>)]) {
        let stored = database.stored();
        for (sender, answer) in answers {
            assert_eq!(
                answer.is_ok(),
                stored.contains(sender),
                "{sender} heard {answer:?}; stored: {stored:?}"
            );
        }
    }

    #[test]
    fn a_batch_that_fits_commits_every_job() {
        let database = Database::new("fits");
        let answers = write_in_one_batch(
            database.writer_connection(1_000),
            vec![mail("a", 100), mail("b", 100), mail("c", 100)],
        );
        assert!(answers.iter().all(|(_, answer)| answer.is_ok()), "{answers:?}");
        assert_eq!(database.stored(), ["a", "b", "c"]);
    }

    #[test]
    fn a_full_disk_fails_the_jobs_it_rolled_back_and_no_later_job_commits_unheard() {
        let database = Database::new("full");
        // The third mail does not fit: SQLite answers SQLITE_FULL and rolls back the
        // whole transaction, with the two mails before it.
        let answers = write_in_one_batch(
            database.writer_connection(20),
            vec![
                mail("a", 100),
                mail("b", 100),
                mail("big", 1_000_000),
                mail("c", 100),
                mail("d", 100),
            ],
        );
        assert_truthful(&database, &answers);
        let heard = |sender: &str| answers.iter().find(|(s, _)| s == sender).unwrap().1.is_ok();
        assert!(!heard("a") && !heard("b") && !heard("big"), "{answers:?}");
        // The job that filled the disk hears why; those it took with it, that SQLite
        // rolled them back.
        let error = |sender: &str| match &answers.iter().find(|(s, _)| s == sender).unwrap().1 {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        assert!(error("big").contains("full"), "{}", error("big"));
        assert!(error("a").contains("rolled back"), "{}", error("a"));
        // The jobs after the failure run in a transaction of their own and commit.
        assert_eq!(database.stored(), ["c", "d"]);
    }

    #[test]
    fn a_full_disk_first_in_its_batch_leaves_the_rest_to_commit() {
        let database = Database::new("first");
        let answers = write_in_one_batch(
            database.writer_connection(20),
            vec![
                mail("big", 1_000_000),
                mail("a", 100),
                mail("big2", 1_000_000),
                mail("b", 100),
            ],
        );
        assert_truthful(&database, &answers);
        assert_eq!(database.stored(), ["b"]);
    }

    #[test]
    fn a_mail_past_the_soft_cap_is_refused_alone_and_the_stages_writes_beside_it_commit() {
        let database = Database::new("soft");
        let conn = database.writer_connection(1_000);
        let ids = receive(&conn, &mail("first", 100), 0).unwrap();
        let other = receive(&conn, &mail("second", 100), 0).unwrap();
        // The soft cap is where the database is now: a small mail no longer fits; the
        // hard cap (max_page_count) lies a reserve beyond it.
        let page_count: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0)).unwrap();
        let free: i64 = conn
            .pragma_query_value(None, "freelist_count", |row| row.get(0))
            .unwrap();
        let soft = Some(page_count - free);

        let (queue, pending) = std::sync::mpsc::channel::<Work>();
        let stage = |id: i64| {
            let (work, answer) = job(move |conn| fail(conn, id, State::Failed, "5.0.0", "stage", 1));
            queue.send(work).unwrap();
            answer
        };
        let intake = |mail: NewMail| {
            let (work, answer) = job(move |conn| receive_within(conn, &mail, 1, "smsgw", soft));
            queue.send(work).unwrap();
            answer
        };
        // One batch: a stage write, the mail past the cap, another stage write.
        let mut before = stage(ids[0]);
        let mut refused = intake(mail("late", 100));
        let mut after = stage(other[0]);
        drop(queue);
        run(conn, pending);

        let refused = refused.try_recv().expect("answered");
        assert!(matches!(refused, Err(StoreError::Full)), "{refused:?}");
        assert!(before.try_recv().expect("answered").is_ok());
        assert!(after.try_recv().expect("answered").is_ok());
        assert_eq!(database.stored(), ["first", "second"]);
        let states: Vec<String> = connect(&database.path())
            .unwrap()
            .prepare("SELECT state FROM requests ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(states, ["failed", "failed"]);
    }

    #[test]
    fn a_job_whose_savepoint_cannot_be_closed_is_refused_and_commits_nothing_unheard() {
        let database = Database::new("release");
        let (queue, pending) = std::sync::mpsc::channel::<Work>();
        let mut answers = Vec::new();
        for (sender, breaks) in [("a", false), ("broken", true), ("b", false)] {
            let mail = mail(sender, 100);
            let (work, answer) = job(move |conn| {
                let ids = receive(conn, &mail, 0)?;
                if breaks {
                    // Our savepoint is gone before the writer releases it.
                    conn.execute_batch("RELEASE job")?;
                }
                Ok(ids)
            });
            queue.send(work).unwrap();
            answers.push((sender.to_string(), answer));
        }
        drop(queue);
        run(database.writer_connection(1_000), pending);
        let answers: Vec<_> = answers
            .into_iter()
            .map(|(sender, mut answer)| (sender, answer.try_recv().expect("answered")))
            .collect();
        assert_truthful(&database, &answers);
        assert!(answers[1].1.is_err(), "{answers:?}");
        assert_eq!(
            database.stored(),
            ["b"],
            "the batch with the broken job is refused whole"
        );
    }

    #[test]
    fn under_the_soft_cap_a_mail_is_stored() {
        let database = Database::new("under");
        let conn = database.writer_connection(1_000);
        let page_count: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0)).unwrap();
        let (queue, pending) = std::sync::mpsc::channel::<Work>();
        let mail = mail("fits", 100);
        let (work, mut answer) = job(move |conn| receive_within(conn, &mail, 1, "smsgw", Some(page_count + 100)));
        queue.send(work).unwrap();
        drop(queue);
        run(conn, pending);
        assert!(answer.try_recv().expect("answered").is_ok());
        assert_eq!(database.stored(), ["fits"]);
    }
}
