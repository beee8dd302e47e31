//! HTTP GET (hyper, HTTP/1.1) for a peer's `/status` and the CLI's `/route`: over TLS
//! checked by the same [`TlsPolicy`] verifier as the SMTP leg to that peer (its CA file
//! and pins), with HTTP Basic when credentials are given and the link is safe for them.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONNECTION, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::tls::{TlsPolicy, TlsSetupError};
use crate::config::{HttpUrl, OutboundTls, Pin};

/// Largest answer body read (a status document is a few KiB).
const MAX_BODY: usize = 4 << 20;

/// Why a GET brought no document; each names the URL. The poller shows it as the
/// peer's `error` and in its "peer down" log line.
#[derive(Debug, thiserror::Error)]
pub enum HttpGetError {
    /// No TCP connection to the server.
    #[error("{0}: cannot connect: {1}")]
    Connect(String, std::io::Error),
    /// The TLS handshake failed: most often a certificate neither chained to a trusted
    /// CA for its name nor pinned (rustls says which).
    #[error("{0}: TLS: {1}")]
    Tls(String, std::io::Error),
    /// The URL's path cannot be a request target (characters HTTP does not allow).
    #[error("{0}: cannot make the request: {1}")]
    Request(String, hyper::http::Error),
    /// The server broke HTTP, or the connection, before the whole answer came.
    #[error("{0}: {1}")]
    Http(String, hyper::Error),
    /// The server answered, but not 200 (401: our credentials were refused or missing).
    #[error("{0}: HTTP {1}")]
    Status(String, StatusCode),
    /// The body was larger than a status document can be.
    #[error("{0}: answer longer than {MAX_BODY} bytes")]
    TooLarge(String),
    /// Nothing complete within the time given.
    #[error("{0}: no answer within {1:?}")]
    Timeout(String, Duration),
}

/// GET of one URL, ready to repeat (a peer's status is polled again and again).
#[derive(Clone)]
pub struct HttpGet {
    url: HttpUrl,
    /// `Some` for `https://`.
    connector: Option<TlsConnector>,
    /// `Basic …`, when credentials were given and may travel on this link.
    authorization: Option<HeaderValue>,
}

impl HttpGet {
    /// GET `url`. An `https://` one verifies the server as the SMTP `verify` policy does:
    /// the system's CAs plus `ca_file` and the host name, or a certificate whose SHA-256
    /// is in `pins`. `basic` (user, password) is sent as HTTP Basic over `https://`, or
    /// over `http://` to loopback only: elsewhere it would cross a network in clear, and
    /// it is left out (the server then answers 401 if it wants it).
    pub fn new(
        url: HttpUrl,
        ca_file: &Path,
        pins: &[Pin],
        basic: Option<(&str, &str)>,
    ) -> Result<HttpGet, TlsSetupError> {
        let connector = if url.is_https() {
            TlsPolicy::new(OutboundTls::Verify, ca_file, pins)?.connector().cloned()
        } else {
            None
        };
        let authorization = basic
            .filter(|_| url.is_https() || url.is_loopback())
            .and_then(|(user, password)| {
                let token = BASE64.encode(format!("{user}:{password}"));
                HeaderValue::from_str(&format!("Basic {token}")).ok()
            })
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Ok(HttpGet {
            url,
            connector,
            authorization,
        })
    }

    /// The GET of `path` beside this URL ([`HttpUrl::beside`]), with the same TLS and
    /// credentials.
    pub fn beside(&self, path: &str) -> HttpGet {
        HttpGet {
            url: self.url.beside(path),
            ..self.clone()
        }
    }

    /// The URL it gets.
    pub fn url(&self) -> &HttpUrl {
        &self.url
    }

    /// Whether credentials go with the request.
    pub fn sends_credentials(&self) -> bool {
        self.authorization.is_some()
    }

    /// The body of a 200 answer, all within `timeout`.
    pub async fn get(&self, timeout: Duration) -> Result<Vec<u8>, HttpGetError> {
        tokio::time::timeout(timeout, self.exchange())
            .await
            .map_err(|_| HttpGetError::Timeout(self.url.to_string(), timeout))?
    }

    async fn exchange(&self) -> Result<Vec<u8>, HttpGetError> {
        let shown = || self.url.to_string();
        let authority = self.url.authority();
        let tcp = TcpStream::connect((authority.host(), authority.port()))
            .await
            .map_err(|e| HttpGetError::Connect(shown(), e))?;
        let Some(connector) = &self.connector else {
            return self.request(tcp).await;
        };
        let name = ServerName::try_from(authority.host().to_string())
            .map_err(|e| HttpGetError::Tls(shown(), std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| HttpGetError::Tls(shown(), e))?;
        self.request(tls).await
    }

    async fn request<S>(&self, stream: S) -> Result<Vec<u8>, HttpGetError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shown = || self.url.to_string();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpGetError::Http(shown(), e))?;
        // The connection is driven beside the request; a timeout that drops this future
        // must not leave it running against a server that stalls.
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let mut request = Request::get(self.url.path())
            .header(HOST, self.url.authority().to_string())
            .header(CONNECTION, "close");
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| HttpGetError::Request(shown(), e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| HttpGetError::Http(shown(), e))?;
        if response.status() != StatusCode::OK {
            return Err(HttpGetError::Status(shown(), response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|error| match error.downcast::<hyper::Error>() {
                Ok(error) => HttpGetError::Http(shown(), *error),
                // The only other error `Limited` gives is its limit's.
                Err(other) => {
                    debug_assert!(other.is::<LengthLimitError>());
                    HttpGetError::TooLarge(shown())
                }
            })?;
        drop(driver);
        Ok(body.to_bytes().to_vec())
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::HttpGet;
    use crate::config::HttpUrl;

    fn get(url: &str) -> HttpGet {
        let url: HttpUrl = url.parse().unwrap();
        HttpGet::new(url, std::path::Path::new(""), &[], Some(("uk", "secret"))).unwrap()
    }

    #[test]
    fn credentials_travel_over_tls_or_on_loopback_only() {
        assert!(get("https://fr.example.net:8443/status").sends_credentials());
        assert!(get("http://127.0.0.1:8025/status").sends_credentials());
        assert!(get("http://localhost:8025/status").sends_credentials());
        assert!(!get("http://fr.example.net:8025/status").sends_credentials());
    }
}
