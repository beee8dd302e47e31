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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::{Pg, Tx, session_config, with_causes};
use crate::store::{SiteModem, StoreError, Usage, Wakeups};

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
    pg: &Pg,
    config: &tokio_postgres::Config,
    instance: &str,
    wake: Arc<Wakeups>,
) -> Result<(), StoreError> {
    let config = session_config(config, instance);
    let session = Session::open(&config, instance, &wake).await?;
    let name = instance.to_string();
    tokio::spawn(async move { keep(session, &config, &name, &wake).await });
    // Through the pool, not the session: a session that cannot be made again at once
    // (its lock still held by a connection the server has not seen die) must not make
    // this instance look dead while it sends.
    let (pg, name) = (pg.clone(), instance.to_string());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(HEARTBEAT);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let beaten = match pg.connection().await {
                Ok(client) => beat(&client, &name).await,
                Err(error) => Err(error),
            };
            if let Err(error) = beaten {
                tracing::warn!(%error, "site: cannot write this instance's heartbeat");
            }
        }
    });
    Ok(())
}

/// The instance's own connection, and the task reading its notifications.
struct Session {
    /// Kept: dropped, it would close the connection, and free the name's lock.
    _client: Client,
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
        Ok(Session {
            _client: client,
            reader,
        })
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

/// Listens, holding the name; makes the session again whenever it breaks.
async fn keep(mut session: Session, config: &tokio_postgres::Config, instance: &str, wake: &Arc<Wakeups>) {
    loop {
        let _ = (&mut session.reader).await;
        tracing::warn!("site: the connection to PostgreSQL broke; making it again");
        let mut backoff = Duration::from_millis(250);
        session = loop {
            tokio::time::sleep(backoff).await;
            match Session::open(config, instance, wake).await {
                Ok(session) => break session,
                Err(error) => {
                    tracing::warn!(error = %error, "site: cannot reconnect to PostgreSQL yet");
                    // At most a second: the heartbeat waits with it, and one missed for
                    // 5 s makes the others take this instance for dead.
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        };
        tracing::info!("site: reconnected to PostgreSQL");
        // Notifications sent while the connection was down are lost.
        for notify in [&wake.received, &wake.queued, &wake.outbound, &wake.forwarding] {
            notify.notify_one();
        }
    }
}

/// Records this instance's modems as (name, tariff, ready), and forgets those it no
/// longer has; refuses a name a live instance of the site already has.
pub(in crate::store) async fn register_modems(
    tx: &Tx,
    modems: &[(String, BTreeMap<String, f64>, bool)],
) -> Result<(), StoreError> {
    let names: Vec<&str> = modems.iter().map(|(name, _, _)| name.as_str()).collect();
    tx.execute(
        "DELETE FROM modems WHERE instance = current_setting('smsgw.instance', true) AND name <> ALL($1)",
        &[&names],
    )
    .await?;
    for (name, tariff, ready) in modems {
        let tariff = serde_json::to_string(tariff).map_err(|e| StoreError::Commit(e.to_string()))?;
        let taken = tx
            .query_opt(
                &format!(
                    "INSERT INTO modems (name, instance, tariff, ready, seen)
                     VALUES ($1, current_setting('smsgw.instance', true), $2, $3, {SERVER_NOW})
                     ON CONFLICT (name) DO UPDATE
                       SET instance = EXCLUDED.instance, tariff = EXCLUDED.tariff, ready = EXCLUDED.ready, seen = EXCLUDED.seen
                       WHERE modems.instance = EXCLUDED.instance
                          OR modems.instance NOT IN (SELECT name FROM instances WHERE seen >= {SERVER_NOW} - {DEAD_AFTER_MS})
                     RETURNING name"
                ),
                &[name, &tariff, ready],
            )
            .await?;
        if taken.is_none() {
            let owner: String = tx
                .query_one("SELECT instance FROM modems WHERE name = $1", &[name])
                .await?
                .try_get(0)?;
            return Err(StoreError::ModemInUse {
                modem: name.clone(),
                instance: owner,
            });
        }
    }
    Ok(())
}

/// Every modem the site's instances recorded; ready only if its instance lives.
pub(in crate::store) async fn site_modems(tx: &Tx) -> Result<Vec<SiteModem>, StoreError> {
    tx.query(
        &format!(
            "SELECT m.name, m.instance, m.tariff,
                    m.ready AND m.seen >= {SERVER_NOW} - {DEAD_AFTER_MS} AND coalesce(i.seen >= {SERVER_NOW} - {DEAD_AFTER_MS}, false)
             FROM modems m LEFT JOIN instances i ON i.name = m.instance ORDER BY m.name"
        ),
        &[],
    )
    .await?
    .iter()
    .map(|row| {
        let tariff: String = row.try_get(2)?;
        Ok(SiteModem {
            name: row.try_get(0)?,
            instance: row.try_get(1)?,
            tariff: serde_json::from_str(&tariff).map_err(|e| StoreError::Commit(format!("modem tariff: {e}")))?,
            ready: row.try_get(3)?,
        })
    })
    .collect()
}

/// Replaces this instance's abuse-limit counts, and returns the other live instances'
/// summed by sender.
pub(in crate::store) async fn share_usage(tx: &Tx, here: &[Usage]) -> Result<Vec<Usage>, StoreError> {
    tx.execute(
        "DELETE FROM usage WHERE instance = current_setting('smsgw.instance', true)",
        &[],
    )
    .await?;
    if !here.is_empty() {
        let count = |f: fn(&Usage) -> u32| here.iter().map(|u| i64::from(f(u))).collect::<Vec<i64>>();
        let who: Vec<&str> = here.iter().map(|u| u.who.as_str()).collect();
        tx.execute(
            "INSERT INTO usage (instance, who, minute, day, numbers)
             SELECT current_setting('smsgw.instance', true), * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])",
            &[&who, &count(|u| u.minute), &count(|u| u.day), &count(|u| u.numbers)],
        )
        .await?;
    }
    let clamp = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    tx.query(
        &format!(
            "SELECT u.who, sum(u.minute)::bigint, sum(u.day)::bigint, sum(u.numbers)::bigint
             FROM usage u JOIN instances i ON i.name = u.instance
             WHERE u.instance <> current_setting('smsgw.instance', true) AND i.seen >= {SERVER_NOW} - {DEAD_AFTER_MS}
             GROUP BY u.who"
        ),
        &[],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(Usage {
            who: row.try_get(0)?,
            minute: clamp(row.try_get(1)?),
            day: clamp(row.try_get(2)?),
            numbers: clamp(row.try_get(3)?),
        })
    })
    .collect()
}
