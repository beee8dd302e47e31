//! The HTTP endpoint (`http.listen`): `GET /status` (this instance's status document,
//! which peers poll), `GET /metrics` (Prometheus text format) and `GET /route?number=`
//! (the routing plan, for `smsgw route explain`). GET only, one request per connection.
//!
//! hyper speaks HTTP/1.1; this module decides what is answered. Over TLS when
//! `http.tls` is set (the SMTP side's certificate, reloaded on SIGHUP with it); with
//! `http.require_auth`, `/status` and `/route` (tariffs, load, the plan) answer only a
//! user of the users file (those `http.users` lists, if it lists any), by HTTP Basic
//! ([`auth`]); `/metrics` stays open, for scrapers that hold no password and because
//! it steers nothing.

mod auth;
mod json;
pub mod prometheus;
mod scrape;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::credentials::Credentials;
use crate::e164::E164;
use crate::modem::Board;
use crate::routing::explain::Explanation;
use crate::routing::plan;
use crate::routing::view::Cluster;
use crate::store::{QueueSummary, Store};
use auth::{Gate, Verdict, client_key};
use scrape::SingleFlight;

/// Largest request head read (hyper's smallest allowed buffer is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;
/// Connections answered at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// Connections answered at once from one client address (IPv6: one /64); more are
/// closed as soon as accepted. Well under [`MAX_CONNECTIONS`]: one client holding idle
/// connections must not take every slot and leave peers' `/status` polls unanswered
/// (they would count this instance down and route away from it).
const MAX_PER_CLIENT: usize = 4;
/// The longest a client may take to finish its TLS handshake, and then to send its
/// request head: what an idle connection costs a slot. A peer's poll or a scraper
/// sends its request at once.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a connection lives, handshake, answer and a slow reader included: a
/// client that does not read its answer does not keep its slot.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// How long answers under way may go on once the gateway stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read.
pub struct Sources {
    /// This instance's status and its view of the peers (`/status`, `/route`,
    /// `smsgw_peer_up`).
    pub cluster: Arc<Cluster>,
    /// The queue, scanned for `/metrics`.
    pub store: Store,
    /// The modems' health, for `/metrics`.
    pub board: Arc<Board>,
}

/// Who may connect and read: TLS and credentials (`http.tls`, `http.require_auth`).
pub struct Access {
    credentials: Credentials,
    tls: bool,
    gate: Gate,
}

impl Access {
    /// The `[http]` settings, with the certificate and users the SMTP side loaded (and
    /// reloads on SIGHUP).
    pub fn new(config: &Config, credentials: Credentials) -> Access {
        let security = &config.security;
        let gate = Gate::new(
            credentials.clone(),
            config.http.require_auth,
            security.max_auth_failures,
            Duration::from_secs(security.lockout_secs),
        )
        .only(&config.http.users);
        Access {
            credentials,
            tls: config.http.tls,
            gate,
        }
    }
}

/// What every connection reads.
struct Shared {
    sources: Arc<Sources>,
    access: Access,
    /// The store's counts for `/metrics`, read by one scrape at a time.
    queues: SingleFlight<QueueSummary>,
}

/// Connections open per client address ([`client_key`]), for [`MAX_PER_CLIENT`].
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its client address, until dropped.
struct ClientSlot {
    clients: Arc<PerClient>,
    key: IpAddr,
}

impl PerClient {
    /// A slot for one more connection from `client`, unless it holds its share.
    fn take(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let key = client_key(client);
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_default();
        if *count >= MAX_PER_CLIENT {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                // Only addresses with a connection open are kept: the map is bounded by
                // MAX_CONNECTIONS.
                open.remove(&self.key);
            }
        }
    }
}

/// Answers HTTP requests on `listener` until `shutdown`, then waits for the answers
/// under way.
pub async fn serve(listener: TcpListener, sources: Arc<Sources>, access: Access, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_client = Arc::new(PerClient::default());
    let shared = Arc::new(Shared {
        sources,
        access,
        queues: SingleFlight::default(),
    });
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, client)) => {
                let Some(client_slot) = per_client.take(client.ip()) else {
                    // Closed unanswered: the slot goes back at once, to other addresses.
                    tracing::debug!(%client, "HTTP: too many connections from this address");
                    drop(stream);
                    continue;
                };
                let (shared, shutdown) = (shared.clone(), shutdown.clone());
                connections.spawn(async move {
                    // At shutdown an answer under way gets a short grace, not the whole
                    // deadline: a slow reader does not hold the gateway's exit.
                    let grace = async {
                        shutdown.cancelled().await;
                        tokio::time::sleep(SHUTDOWN_GRACE).await;
                    };
                    tokio::select! {
                        _ = tokio::time::timeout(CONNECTION_DEADLINE, connection(stream, client, shared)) => {}
                        () = grace => {}
                    }
                    drop(client_slot);
                    drop(slot);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Every connection is bounded by its deadline and the shutdown grace: this wait ends.
    connections.close();
    connections.wait().await;
}

/// One connection: the TLS handshake if configured, then one request.
async fn connection(stream: TcpStream, client: SocketAddr, shared: Arc<Shared>) {
    if !shared.access.tls {
        return exchange(stream, client.ip(), shared).await;
    }
    // The acceptor of the moment: a SIGHUP's new certificate serves new connections.
    let Some(acceptor) = shared.access.credentials.acceptor() else {
        // Config validation asks for a certificate with http.tls, so this is a bug or a
        // certificate that went away: say so rather than hang up without a word.
        tracing::warn!(%client, "HTTPS: no certificate loaded; connection closed");
        return;
    };
    match tokio::time::timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => exchange(tls, client.ip(), shared).await,
        Ok(Err(error)) => tracing::debug!(%client, %error, "HTTPS handshake failed"),
        Err(_) => tracing::debug!(%client, "HTTPS handshake timed out"),
    }
}

async fn exchange<S>(stream: S, client: IpAddr, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move {
            let answer = answer(&request, client, &shared).await;
            Ok::<_, Infallible>(answer)
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%client, %error, "HTTP connection ended with an error");
    }
}

/// The answer to one request.
async fn answer(request: &Request<Incoming>, client: IpAddr, shared: &Shared) -> Response<Full<Bytes>> {
    let (sources, gate) = (&shared.sources, &shared.access.gate);
    if request.method() != Method::GET {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        response
            .headers_mut()
            .insert(ALLOW, "GET".parse().expect("a header value"));
        return response;
    }
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or("");
    // The gate itself lets everything through when http.require_auth is off.
    if matches!(path, "/status" | "/route" | "/optouts") {
        let authorization = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
        if let Some(refusal) = refusal(gate.check(client, authorization).await) {
            return refusal;
        }
    }
    match path {
        "/status" => match sources.cluster.status().await {
            Ok(status) => body(StatusCode::OK, "application/json", json::status(&status)),
            Err(error) => internal_error(path, &error),
        },
        "/metrics" => match scrape::metrics(&sources.store, &shared.queues, &sources.board, &sources.cluster).await {
            Ok(metrics) => body(StatusCode::OK, "text/plain; version=0.0.4", metrics.into_bytes()),
            Err(error) => internal_error(path, &error),
        },
        "/route" => route(sources, query).await,
        "/optouts" => optouts(sources, query).await,
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /status, /metrics, /route?number= or /optouts?after=\n",
        ),
    }
}

/// The answer to credentials that do not let the request through.
fn refusal(verdict: Verdict) -> Option<Response<Full<Bytes>>> {
    let (mut response, header, value) = match verdict {
        Verdict::Allowed => return None,
        Verdict::Denied => (
            text(
                StatusCode::UNAUTHORIZED,
                "a user of this instance's users file is needed\n",
            ),
            WWW_AUTHENTICATE,
            "Basic realm=\"smsgw\"".to_string(),
        ),
        Verdict::Locked(left) => (
            text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentications from your address\n",
            ),
            RETRY_AFTER,
            (left.as_secs() + 1).to_string(),
        ),
        Verdict::Busy => (
            text(StatusCode::SERVICE_UNAVAILABLE, "busy checking passwords: try again\n"),
            RETRY_AFTER,
            "1".to_string(),
        ),
    };
    if let Ok(value) = value.parse() {
        response.headers_mut().insert(header, value);
    }
    Some(response)
}

fn body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    body(status, "text/plain", message.as_bytes().to_vec())
}

/// `/optouts?after=N`: this instance's (or site's) own opt-out changes after `seq` N, in
/// order, for its peers to apply ([`crate::routing::view::OptOutFeed`]).
async fn optouts(sources: &Sources, query: &str) -> Response<Full<Bytes>> {
    let after = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("after="))
        .map_or(Ok(0), str::parse::<i64>);
    let Ok(after) = after else {
        return text(
            StatusCode::BAD_REQUEST,
            "after must be a whole number: /optouts?after=0\n",
        );
    };
    match sources.store.optout_feed(after).await {
        Ok(changes) => {
            let feed = crate::routing::view::OptOutFeed { changes };
            let json = serde_json::to_vec(&feed).unwrap_or_default();
            body(StatusCode::OK, "application/json", json)
        }
        Err(error) => internal_error("/optouts", &error),
    }
}

/// `/route?number=%2B33477858589`: the plan for an E.164 number, as JSON.
async fn route(sources: &Sources, query: &str) -> Response<Full<Bytes>> {
    let Some(number) = e164_number(query) else {
        return text(
            StatusCode::BAD_REQUEST,
            "give an E.164 number: /route?number=%2B33477858589\n",
        );
    };
    match sources.cluster.view().await {
        Ok(view) => {
            let plan = plan::plan(&number, &view, plan::Past::default());
            body(
                StatusCode::OK,
                "application/json",
                json::route(&Explanation::new(number, &plan)),
            )
        }
        Err(error) => internal_error("/route", &error),
    }
}

/// `500` with a word only: the error's text (file paths, SQL) goes to the log, not to
/// a client that may hold no password (`/metrics` is open).
fn internal_error(path: &str, error: &dyn std::error::Error) -> Response<Full<Bytes>> {
    tracing::warn!(path, %error, "HTTP: answered 500");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error: see the gateway's log\n",
    )
}

/// The `number` of a query string, if it is an E.164 number.
fn e164_number(query: &str) -> Option<E164> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("number="))
        .and_then(|n| E164::parse(&percent_decode(n)).ok())
}

/// `%HH` sequences decoded; anything else, a stray `%` included, as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{e164_number, percent_decode};

    #[test]
    fn the_route_number_is_e164() {
        let table = [
            ("number=%2B33477858589", Some("+33477858589")),
            ("verbose=1&number=%2b12", Some("+12")),
            ("number=%2B1", None),
            ("number=%2B0477858589", None),
            ("number=+33", Some("+33")),
            ("number=33477858589", None),
            ("number=%2B", None),
            ("number=%2B33a", None),
            ("numbers=%2B33", None),
            ("", None),
        ];
        for (query, number) in table {
            assert_eq!(e164_number(query).as_deref(), number, "{query:?}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2B33477858589"), "+33477858589");
        assert_eq!(percent_decode("+33"), "+33");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
    }
}
