//! The server's certificate, read from PEM files at start and again on SIGHUP; and the
//! users file, which follows the same reload. SMTP (STARTTLS, implicit TLS, AUTH) and the
//! HTTP endpoint (HTTPS, Basic) share one [`Credentials`], so one SIGHUP renews both.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::config::Config;
use crate::users::{Users, UsersError};

/// Why the TLS certificate or the users file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The certificate file (its path) could not be read or held no certificate (why).
    #[error("TLS certificate {0}: {1}")]
    Certificate(String, String),
    /// The key file (its path) could not be read or held no private key (why).
    #[error("TLS key {0}: {1}")]
    Key(String, String),
    /// rustls refused the certificate and key together (e.g. they do not match).
    #[error("TLS: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
    /// The users file could not be loaded.
    #[error("users file {0}")]
    Users(#[from] UsersError),
}

/// What SIGHUP reloads; sessions take a snapshot when they need it. Clones share what
/// they hold: a reload through one is seen by all (the SMTP and HTTP listeners).
#[derive(Clone)]
pub struct Credentials {
    shared: Arc<Shared>,
}

struct Shared {
    tls_files: Option<(PathBuf, PathBuf)>,
    users_file: PathBuf,
    acceptor: RwLock<Option<TlsAcceptor>>,
    users: RwLock<Arc<Users>>,
}

impl Credentials {
    /// Loads the certificate and key (when `security.tls_cert` is set) and the users file.
    pub fn load(config: &Config) -> Result<Credentials, CredentialsError> {
        let security = &config.security;
        let tls_files = config
            .has_tls()
            .then(|| (security.tls_cert.clone(), security.tls_key.clone()));
        let acceptor = tls_files.as_ref().map(|(cert, key)| acceptor(cert, key)).transpose()?;
        let shared = Shared {
            users: RwLock::new(Arc::new(Users::load(&security.users_file)?)),
            users_file: security.users_file.clone(),
            tls_files,
            acceptor: RwLock::new(acceptor),
        };
        Ok(Credentials {
            shared: Arc::new(shared),
        })
    }

    /// Reads the files again; on any error keeps what it had and says why.
    pub fn reload(&self) {
        let this = &self.shared;
        if let Some((cert, key)) = &this.tls_files {
            match acceptor(cert, key) {
                Ok(fresh) => {
                    *this.acceptor.write().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
                    tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
                }
                Err(error) => tracing::error!(%error, "TLS certificate not reloaded; keeping the previous one"),
            }
        }
        match Users::load(&this.users_file) {
            Ok(users) => {
                *this.users.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(users);
                tracing::info!(file = %this.users_file.display(), "users reloaded");
            }
            Err(error) => tracing::error!(%error, "users not reloaded; keeping the previous ones"),
        }
    }

    /// The TLS acceptor for a new handshake; `None` when no certificate is configured.
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.shared.acceptor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The users as last loaded.
    pub fn users(&self) -> Arc<Users> {
        self.shared.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, CredentialsError> {
    let shown = |p: &Path| p.display().to_string();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CredentialsError::Certificate(shown(cert), e.to_string()))?;
    if chain.is_empty() {
        return Err(CredentialsError::Certificate(
            shown(cert),
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| CredentialsError::Key(shown(key), e.to_string()))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
