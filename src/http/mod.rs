//! The HTTP endpoint (`http.listen`): `GET /status` (this instance's status document,
//! which peers poll), `GET /metrics` (Prometheus text format) and `GET /route?number=`
//! (the routing plan, for `smsgw route explain`). GET only, one request per connection.

mod json;
pub mod prometheus;
mod scrape;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::e164::E164;
use crate::modem::Board;
use crate::routing::explain::Explanation;
use crate::routing::plan;
use crate::routing::view::Cluster;

/// Longest request head read.
const MAX_HEAD: usize = 8192;
/// Connections answered at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// The longest a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a client may take to read its answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers read.
pub struct Sources {
    /// This instance's status and its view of the peers (`/status`, `/route`,
    /// `smsgw_peer_up`).
    pub cluster: Arc<Cluster>,
    /// The database file, read on its own connection for `/metrics`.
    pub database: PathBuf,
    /// The modems' health, for `/metrics`.
    pub board: Arc<Board>,
}

/// Answers HTTP requests on `listener` until `shutdown`, then waits for the answers
/// under way.
pub async fn serve(listener: TcpListener, sources: Arc<Sources>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
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
            Ok((stream, _)) => {
                let sources = sources.clone();
                connections.spawn(async move {
                    answer(stream, &sources).await;
                    drop(slot);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Every answer is bounded by its timeouts: this wait ends.
    connections.close();
    connections.wait().await;
}

async fn answer(mut stream: TcpStream, sources: &Sources) {
    let Ok(Some(target)) = tokio::time::timeout(READ_TIMEOUT, request_target(&mut stream)).await else {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, respond(&mut stream, 400, "text/plain", b"bad request\n")).await;
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (code, content_type, body) = match path {
        "/status" => match sources.cluster.status().await {
            Ok(status) => (200, "application/json", json::status(&status)),
            Err(error) => (500, "text/plain", format!("{error}\n").into_bytes()),
        },
        "/metrics" => match scrape::metrics(&sources.database, &sources.board, &sources.cluster).await {
            Ok(text) => (200, "text/plain; version=0.0.4", text.into_bytes()),
            Err(error) => (500, "text/plain", format!("{error}\n").into_bytes()),
        },
        "/route" => route(sources, query).await,
        _ => (
            404,
            "text/plain",
            b"not found: try /status, /metrics or /route?number=\n".to_vec(),
        ),
    };
    // A client that does not read its answer does not keep its slot.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, respond(&mut stream, code, content_type, &body)).await;
}

/// The target of a `GET` request, once its head is in; `None` for anything else.
async fn request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let count = stream.read(&mut buffer).await.ok()?;
        if count == 0 || head.len() + count > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buffer[..count]);
    }
    get_target(&head)
}

/// The target of the request line of `head`, if the method is `GET`.
fn get_target(head: &[u8]) -> Option<String> {
    let line = String::from_utf8_lossy(head);
    let mut words = line.lines().next()?.split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET"), Some(target)) => Some(target.to_string()),
        _ => None,
    }
}

async fn respond(stream: &mut TcpStream, code: u16, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// `/route?number=%2B33477858589`: the plan for an E.164 number, as JSON.
async fn route(sources: &Sources, query: &str) -> (u16, &'static str, Vec<u8>) {
    let Some(number) = e164_number(query) else {
        return (
            400,
            "text/plain",
            b"give an E.164 number: /route?number=%2B33477858589\n".to_vec(),
        );
    };
    match sources.cluster.view().await {
        Ok(view) => {
            let plan = plan::plan(&number, &view, plan::Past::default());
            (200, "application/json", json::route(&Explanation::new(number, &plan)))
        }
        Err(error) => (500, "text/plain", format!("{error}\n").into_bytes()),
    }
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
    use super::{e164_number, get_target, percent_decode};

    #[test]
    fn only_get_requests_have_a_target() {
        let table: [(&[u8], Option<&str>); 6] = [
            (b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n", Some("/status")),
            (b"GET /route?number=%2B1 HTTP/1.0\r\n\r\n", Some("/route?number=%2B1")),
            (b"POST /status HTTP/1.1\r\n\r\n", None),
            (b"get /status HTTP/1.1\r\n\r\n", None),
            (b"GET\r\n\r\n", None),
            (b"\r\n\r\n", None),
        ];
        for (head, target) in table {
            assert_eq!(
                get_target(head).as_deref(),
                target,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

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
