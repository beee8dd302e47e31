//! The cluster view: this instance's own status (its modems, tariffs, workload), and
//! each peer's as last polled from its `/status`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::plan::{self, Instance, Known, Reach, Tariff, View};
use crate::config::{self, Config};
use crate::e164::E164;
use crate::modem::{Board, ModemState};
use crate::outbound::{HttpGet, TlsSetupError};
use crate::store::{FEED_BATCH, OptOut, SiteModem, State, Store, StoreError};
use crate::utc::Utc;

/// The status document of an instance (`GET /status`): what its peers route by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Its `instance.name`; a peer with one `status_url` whose status names another
    /// instance is taken for down (with several, any instance of the site may answer).
    pub name: String,
    /// The smsgw version it runs (`CARGO_PKG_VERSION`).
    pub version: String,
    /// When the document was made, RFC 3339 UTC.
    pub time: String,
    /// Every configured modem of it, in config order.
    pub modems: Vec<ModemStatus>,
    /// Requests waiting for its modems (state `queued`).
    pub queued: u64,
    /// Requests being sent by its modems now (state `sending`).
    pub sending: u64,
}

/// One modem in a status document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModemStatus {
    /// Its `[[modem]]` name.
    pub name: String,
    /// What its worker is doing; `Ready` and `Starting` count as working.
    pub state: ModemState,
    /// `AT+CSQ` at its last initialisation, e.g. "+CSQ: 20,99".
    pub signal: Option<String>,
    /// Parts per minute it may send; 0: no limit.
    pub per_minute: u32,
    /// Cost of one part by E.164 prefix.
    pub tariff: BTreeMap<String, f64>,
    /// SMS parts accepted by the network since its instance started.
    pub parts_sent: u64,
    /// Failed send attempts since its instance started.
    pub send_errors: u64,
}

impl Status {
    /// The instance as the plan sees it: a starting modem counts as working (it is
    /// about to be), one that is down or disabled does not.
    pub fn instance(&self, local: bool, link_cost: f64) -> Instance {
        // A peer's word is taken, but not a cost that would break the ranking.
        let tariff = |m: &ModemStatus| {
            let sane = m.tariff.iter().filter(|(_, c)| c.is_finite() && **c >= 0.0);
            Tariff::new(sane.map(|(p, c)| (p.as_str(), *c)))
        };
        let (working, resting): (Vec<&ModemStatus>, Vec<&ModemStatus>) = self
            .modems
            .iter()
            .partition(|m| matches!(m.state, ModemState::Ready | ModemState::Starting));
        Instance {
            name: self.name.clone(),
            local,
            up: true,
            link_cost,
            modems: working.into_iter().map(tariff).collect(),
            resting: resting.into_iter().map(tariff).collect(),
            queued: self.queued,
        }
    }
}

/// The site's modems as last read, and their tariffs as the plan reads them (made once
/// per read, not at each `RCPT TO`).
struct Site {
    modems: Vec<SiteModem>,
    tariffs: Vec<Tariff>,
}

/// A tariff as the plan reads it.
fn tariff_of(tariff: &BTreeMap<String, f64>) -> Tariff {
    Tariff::new(tariff.iter().map(|(p, c)| (p.as_str(), *c)))
}

/// One peer as last polled.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// Its `[[peer]]` name.
    pub name: String,
    /// Cost of forwarding one request to it (`peer.link_cost`).
    pub link_cost: f64,
    /// Its status answered at the last poll, naming the instance we expected (any
    /// instance of the site, with several `status_url`s).
    pub up: bool,
    /// Polled at least once (not yet at start).
    pub polled: bool,
    /// Its status document at the last poll that answered; kept while it is down.
    pub status: Option<Status>,
    /// Why the last poll failed.
    pub error: Option<String>,
    /// The tariffs of all its modems, working or not, by the status kept.
    #[serde(skip)]
    tariffs: Option<Vec<Tariff>>,
}

/// What routing knows: this instance, live, and its peers as polled.
pub struct Cluster {
    name: String,
    modems: Vec<config::Modem>,
    /// The tariffs of this instance's modems, from its config.
    tariffs: Vec<Tariff>,
    board: Arc<Board>,
    store: Store,
    workload_cost: f64,
    max_hops: usize,
    peers: RwLock<Vec<PeerView>>,
    /// On PostgreSQL, every modem of the site as last read (this instance's among them):
    /// the site routes as one instance. `None`: alone.
    site: RwLock<Option<Arc<Site>>>,
    /// Told after each poll, for [`Cluster::first_poll`].
    polled: tokio::sync::Notify,
}

impl Cluster {
    /// The view at start: no peer polled yet, so the plan counts every one as down.
    pub fn new(config: &Config, board: Arc<Board>, store: Store) -> Cluster {
        let peers = config
            .peer
            .iter()
            .map(|peer| PeerView {
                name: peer.name.clone(),
                link_cost: peer.link_cost,
                up: false,
                polled: false,
                status: None,
                error: Some("not polled yet".into()),
                tariffs: None,
            })
            .collect();
        Cluster {
            name: config.instance.name.clone(),
            modems: config.modem.clone(),
            tariffs: config.modem.iter().map(|m| tariff_of(&m.tariff)).collect(),
            board,
            store,
            workload_cost: config.routing.workload_cost,
            max_hops: config.routing.max_hops,
            peers: RwLock::new(peers),
            site: RwLock::new(None),
            polled: tokio::sync::Notify::new(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<PeerView>> {
        self.peers.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The site's modems as last read, on PostgreSQL.
    fn site(&self) -> Option<Arc<Site>> {
        self.site.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the site's modems again (on PostgreSQL; nothing on SQLite): routing, the
    /// `RCPT TO` check and `/status` then count every instance's modems as this site's.
    pub async fn refresh_site(&self) -> Result<(), StoreError> {
        let site = self.store.site_modems().await?.map(|modems| {
            Arc::new(Site {
                tariffs: modems.iter().map(|m| tariff_of(&m.tariff)).collect(),
                modems,
            })
        });
        *self.site.write().unwrap_or_else(|e| e.into_inner()) = site;
        Ok(())
    }

    /// Whether any `[[peer]]` is configured: without them nothing is forwarded.
    pub fn has_peers(&self) -> bool {
        !self.read().is_empty()
    }

    /// A copy of every peer's view (their statuses included).
    pub fn peers(&self) -> Vec<PeerView> {
        self.read().clone()
    }

    /// Whether `name` was polled and did not answer.
    pub fn is_down(&self, name: &str) -> bool {
        self.read().iter().any(|p| p.name == name && p.polled && !p.up)
    }

    /// Whether any instance could ever send to `number`: this instance by its configured
    /// modems' tariffs, each peer by those of its last known status (even while it is
    /// down). A peer whose status is not known yet makes the answer unknown; so does an
    /// instance with no modem and no peer, which keeps what it accepts until modems are
    /// configured.
    pub fn reach(&self, number: &E164) -> Reach {
        let site = self.site();
        let tariffs = site.as_ref().map_or(&self.tariffs, |site| &site.tariffs);
        let peers = self.read();
        if tariffs.is_empty() && peers.is_empty() {
            return Reach::Unknown;
        }
        let mut known = vec![Known {
            name: &self.name,
            tariffs: Some(tariffs),
        }];
        known.extend(peers.iter().map(|peer| Known {
            name: &peer.name,
            tariffs: peer.tariffs.as_deref(),
        }));
        plan::reach(number, &known)
    }

    /// The prefixes of this instance's tariffs: a number starting with none of them can
    /// only be sent by a peer. `None` when they cover every number (a `"+"` prefix), or
    /// when this instance has no modem and no peer (it keeps what it accepts).
    pub fn local_prefixes(&self) -> Option<Vec<String>> {
        let prefixes: Vec<String> = match self.site() {
            Some(site) => site.modems.iter().flat_map(|m| m.tariff.keys().cloned()).collect(),
            None => self.modems.iter().flat_map(|m| m.tariff.keys().cloned()).collect(),
        };
        if prefixes.is_empty() && !self.has_peers() {
            return None;
        }
        (!prefixes.iter().any(|p| p == "+")).then_some(prefixes)
    }

    /// Waits until every peer has been polled once (at most `limit`): routing before
    /// that would take every peer for down.
    pub async fn first_poll(&self, limit: Duration) {
        let all = async {
            loop {
                let notified = self.polled.notified();
                if self.read().iter().all(|p| p.polled) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }

    /// This instance's status document, now.
    pub async fn status(&self) -> Result<Status, StoreError> {
        let counts = self.store.count_in_states(&[State::Queued, State::Sending]).await?;
        let count = |state: State| {
            counts
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n as u64)
        };
        let health = self.board.snapshot();
        let mut modems: Vec<ModemStatus> = self
            .modems
            .iter()
            .map(|modem| {
                let now = health.get(&modem.name);
                ModemStatus {
                    name: modem.name.clone(),
                    state: now.map_or(ModemState::Starting, |h| h.state),
                    signal: now.and_then(|h| h.signal.clone()),
                    per_minute: modem.per_minute,
                    tariff: modem.tariff.clone(),
                    parts_sent: now.map_or(0, |h| h.parts_sent),
                    send_errors: now.map_or(0, |h| h.send_errors),
                }
            })
            .collect();
        // The site's other instances' modems: this site sends with them too.
        for other in self.site().iter().flat_map(|site| site.modems.iter()) {
            if modems.iter().any(|m| m.name == other.name) {
                continue;
            }
            modems.push(ModemStatus {
                name: other.name.clone(),
                state: if other.ready {
                    ModemState::Ready
                } else {
                    ModemState::Down
                },
                signal: None,
                per_minute: 0,
                tariff: other.tariff.clone(),
                parts_sent: 0,
                send_errors: 0,
            });
        }
        Ok(Status {
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            time: Utc::of(std::time::SystemTime::now()).rfc3339(),
            modems,
            queued: count(State::Queued),
            sending: count(State::Sending),
        })
    }

    /// The whole view for the plan: this instance first, then the peers.
    pub async fn view(&self) -> Result<View, StoreError> {
        let mut instances = vec![self.status().await?.instance(true, 0.0)];
        for peer in self.read().iter() {
            let instance = match &peer.status {
                // Named as configured: a site's status names the instance that answered.
                Some(status) => Instance {
                    name: peer.name.clone(),
                    up: peer.up,
                    ..status.instance(false, peer.link_cost)
                },
                None => Instance {
                    name: peer.name.clone(),
                    local: false,
                    up: false,
                    link_cost: peer.link_cost,
                    modems: Vec::new(),
                    resting: Vec::new(),
                    queued: 0,
                },
            };
            instances.push(instance);
        }
        Ok(View {
            instances,
            workload_cost: self.workload_cost,
            max_hops: self.max_hops,
        })
    }

    /// Records a poll of `name`: its status, or why none came. With `site` (several
    /// `status_url`s) the status of any instance is the peer's; else it must name it.
    fn update(&self, name: &str, site: bool, result: Result<Status, String>) {
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        let Some(peer) = peers.iter_mut().find(|p| p.name == name) else {
            return;
        };
        let was_up = peer.up;
        let first = !std::mem::replace(&mut peer.polled, true);
        match result {
            Ok(status) if site || status.name == peer.name => {
                peer.up = true;
                peer.error = None;
                let instance = status.instance(false, peer.link_cost);
                peer.tariffs = Some(instance.modems.into_iter().chain(instance.resting).collect());
                peer.status = Some(status);
            }
            Ok(status) => {
                peer.up = false;
                peer.error = Some(format!("its status names it {:?}, not {:?}", status.name, peer.name));
            }
            Err(error) => {
                peer.up = false;
                peer.error = Some(error);
            }
        }
        if first {
            self.polled.notify_waiters();
        }
        // A peer down from the first poll is said so too, apart from "peer down" (a
        // change): why (a refused certificate or password, no answer) is what the
        // operator setting it up needs.
        if first && !peer.up {
            let error = peer.error.as_deref().unwrap_or_default();
            tracing::warn!(peer = %peer.name, %error, "peer not up at the first poll");
        }
        if peer.up != was_up {
            match &peer.error {
                None => tracing::info!(peer = %peer.name, "peer up"),
                Some(error) => tracing::warn!(peer = %peer.name, %error, "peer down"),
            }
            // Requests waiting for a route, or for this peer, have something new to try.
            self.store.wake.received.notify_one();
            self.store.wake.forwarding.notify_one();
        }
    }
}

/// How one peer's `/status` is fetched: each of its `status_url`s, tried in order until
/// one answers ([`status_getter`]).
pub struct StatusGetter {
    gets: Vec<HttpGet>,
}

impl StatusGetter {
    /// Several URLs: the instances of a site, any of which may answer for it.
    fn site(&self) -> bool {
        self.gets.len() > 1
    }

    /// The first status document that comes, each URL given `timeout`; else why none
    /// did, for each URL.
    async fn get(&self, peer: &str, timeout: Duration) -> Result<Status, String> {
        let mut failed = Vec::new();
        for get in &self.gets {
            let result = get.get(timeout).await.map_err(|e| e.to_string()).and_then(|body| {
                serde_json::from_slice::<Status>(&body).map_err(|e| format!("{}: bad status: {e}", get.url()))
            });
            match result {
                Ok(status) => {
                    if self.site() {
                        tracing::debug!(%peer, instance = %status.name, url = %get.url(), "status answered");
                    }
                    return Ok(status);
                }
                Err(error) => failed.push(error),
            }
        }
        Err(failed.join("; "))
    }

    /// The peer's opt-out changes after `after` (its `seq`), from `/optouts` beside the
    /// first status URL that answers.
    async fn optouts(&self, after: i64, timeout: Duration) -> Result<Vec<OptOut>, String> {
        let mut failed = Vec::new();
        for get in &self.gets {
            let feed = get.beside(&format!("optouts?after={after}"));
            let result = feed.get(timeout).await.map_err(|e| e.to_string()).and_then(|body| {
                serde_json::from_slice::<OptOutFeed>(&body)
                    .map_err(|e| format!("{}: bad opt-out feed: {e}", feed.url()))
            });
            match result {
                Ok(feed) => return Ok(feed.changes),
                Err(error) => failed.push(error),
            }
        }
        Err(failed.join("; "))
    }
}

/// What `/optouts?after=N` answers: an instance's (or site's) own opt-out changes after
/// `N`, in order, at most [`FEED_BATCH`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OptOutFeed {
    /// The changes.
    pub changes: Vec<OptOut>,
}

/// Applies `peer`'s opt-out changes since `after` to the store, batch after batch;
/// returns the `seq` reached.
async fn follow_optouts(store: &Store, peer: &str, getter: &StatusGetter, mut after: i64, timeout: Duration) -> i64 {
    loop {
        let changes = match getter.optouts(after, timeout).await {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(%peer, %error, "cannot read the peer's opt-outs");
                return after;
            }
        };
        let (count, last) = (changes.len(), changes.iter().filter_map(|c| c.seq).max());
        match store.apply_peer_optouts(peer, changes).await {
            Ok(0) => {}
            Ok(moved) => tracing::info!(%peer, moved, "opt-outs learnt from the peer"),
            Err(error) => {
                tracing::warn!(%peer, %error, "cannot record the peer's opt-outs");
                return after;
            }
        }
        // A peer that gives no newer seq, or too many at once, is not asked again now.
        match last {
            Some(last) if last > after && count == FEED_BATCH => after = last,
            Some(last) => return last.max(after),
            None => return after,
        }
    }
}

/// Polls every peer's status, and its opt-out changes, until `shutdown`: each `every`,
/// or with a backoff of up to a minute while it does not answer. `peers` are the peers' names and how to GET
/// their status ([`status_getter`]).
pub async fn poll(
    cluster: Arc<Cluster>,
    peers: Vec<(String, StatusGetter)>,
    every: Duration,
    store: Store,
    shutdown: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, getter) in peers {
        let (cluster, store, shutdown) = (cluster.clone(), store.clone(), shutdown.clone());
        tasks.spawn(async move {
            let mut wait = every;
            // The peer's opt-out changes seen so far: all of them again after a restart
            // (applying one twice changes nothing).
            let mut optouts_seen = 0;
            loop {
                let timeout = every.min(Duration::from_secs(5));
                let result = getter.get(&name, timeout).await;
                let up = result.is_ok();
                wait = if result.is_ok() {
                    every
                } else {
                    (wait * 2).clamp(every, Duration::from_secs(60).max(every))
                };
                cluster.update(&name, getter.site(), result);
                if up {
                    optouts_seen = follow_optouts(&store, &name, &getter, optouts_seen, timeout).await;
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// How `peer`'s `/status` is fetched: its `status_url`s in order, their TLS checked
/// with the peer's `tls_ca_file` and `tls_pin_sha256` (as the SMTP leg to it), and its
/// `user` and `password` as HTTP Basic (over `https://`, or `http://` on loopback).
pub fn status_getter(peer: &config::Peer) -> Result<StatusGetter, TlsSetupError> {
    let basic = (!peer.user.is_empty()).then_some((peer.user.as_str(), peer.password.as_str()));
    let gets = peer
        .status_url
        .iter()
        .map(|url| HttpGet::new(url.clone(), &peer.tls_ca_file, &peer.tls_pin_sha256, basic))
        .collect::<Result<_, _>>()?;
    Ok(StatusGetter { gets })
}
