//! An instance among the others of its site: its name held, its liveness shown, and
//! the wake-ups that cross instances.
//!
//! Each running instance keeps one connection of its own (not pooled) that holds a
//! session advisory lock named after the instance, so that two live instances cannot
//! share a name and a killed one frees it at once; that `LISTEN`s for work another
//! instance queued; and that writes the instance's heartbeat (`instances.seen`, on the
//! server's clock) every second, which tells the others it is alive. When the
//! connection breaks (the server restarts), it is made again with backoff, and every
//! stage is woken, since notifications sent meanwhile are lost.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::{session_config, with_causes};
use crate::store::{StoreError, Wakeups};

/// The channel notified (in the transaction, so at its commit) by whatever queues
/// requests: any instance's modems may take them.
pub(in crate::store) const QUEUED: &str = "smsgw_queued";

/// How often an instance says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// An instance not seen for this long is taken for dead: others recover its leases,
/// its forwards in flight and its DSNs.
pub(in crate::store) const DEAD_AFTER_MS: i64 = 5_000;

/// The server's clock, in unix milliseconds: instances compare heartbeats on one clock.
pub(in crate::store) const SERVER_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Takes `instance`'s name in the site and keeps it, with its heartbeat and wake-ups,
/// for as long as the process runs. Fails if a live instance holds the name.
pub(in crate::store) async fn join(
    config: &tokio_postgres::Config,
    instance: &str,
    wake: Arc<Wakeups>,
) -> Result<(), StoreError> {
    let config = session_config(config, instance);
    let session = Session::open(&config, instance, &wake).await?;
    let instance = instance.to_string();
    tokio::spawn(async move { keep(session, &config, &instance, &wake).await });
    Ok(())
}

/// The instance's own connection, and the task reading its notifications.
struct Session {
    client: Client,
    reader: tokio::task::JoinHandle<()>,
}

impl Session {
    async fn open(config: &tokio_postgres::Config, instance: &str, wake: &Arc<Wakeups>) -> Result<Session, StoreError> {
        let (client, mut connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| StoreError::Unavailable(with_causes(&e)))?;
        let woken = wake.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                if let AsyncMessage::Notification(_) = message {
                    woken.queued.notify_one();
                }
            }
        });
        let held: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('smsgw instance ' || $1, 0))",
                &[&instance],
            )
            .await?
            .get(0);
        if !held {
            return Err(StoreError::InstanceInUse(instance.to_string()));
        }
        client.batch_execute(&format!("LISTEN {QUEUED}")).await?;
        beat(&client, instance).await?;
        Ok(Session { client, reader })
    }
}

/// Writes the heartbeat.
async fn beat(client: &Client, instance: &str) -> Result<(), StoreError> {
    client
        .execute(
            &format!(
                "INSERT INTO instances (name, started, seen) VALUES ($1, {SERVER_NOW}, {SERVER_NOW})
                 ON CONFLICT (name) DO UPDATE SET seen = {SERVER_NOW}"
            ),
            &[&instance],
        )
        .await?;
    Ok(())
}

/// Beats and listens; makes the session again whenever it breaks.
async fn keep(mut session: Session, config: &tokio_postgres::Config, instance: &str, wake: &Arc<Wakeups>) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut session.reader => {}
            _ = ticks.tick() => {
                if let Err(error) = beat(&session.client, instance).await {
                    tracing::warn!(error = %error, "site: cannot write this instance's heartbeat");
                }
                continue;
            }
        }
        tracing::warn!("site: the connection to PostgreSQL broke; making it again");
        let mut backoff = Duration::from_millis(250);
        session = loop {
            tokio::time::sleep(backoff).await;
            match Session::open(config, instance, wake).await {
                Ok(session) => break session,
                Err(error) => {
                    tracing::warn!(error = %error, "site: cannot reconnect to PostgreSQL yet");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        tracing::info!("site: reconnected to PostgreSQL");
        // Notifications sent while the connection was down are lost.
        for notify in [&wake.received, &wake.queued, &wake.dsn, &wake.forwarding] {
            notify.notify_one();
        }
    }
}
