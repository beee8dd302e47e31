//! TLS for outbound SMTP: which certificates a server we deliver to may present.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{OutboundTls, Pin};

/// Why a [`TlsPolicy`] could not be set up: the gateway does not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The configured CA file (its name, and why) cannot be read or holds no certificate.
    #[error("cannot read CA certificates from {0}: {1}")]
    CaFile(String, String),
    /// rustls refused the configuration.
    #[error("{0}")]
    Rustls(String),
}

/// How one kind of outbound delivery uses TLS, ready to connect.
#[derive(Clone)]
pub struct TlsPolicy {
    /// `verify`, `opportunistic` or `none`, as configured.
    pub mode: OutboundTls,
    connector: Option<TlsConnector>,
}

impl TlsPolicy {
    /// `verify`: the system's CAs plus `ca_file`, and the host name; a certificate whose
    /// SHA-256 is in `pins` is accepted as it is (a peer's self-signed one).
    /// `opportunistic`: any certificate (encryption against eavesdroppers only).
    pub fn new(mode: OutboundTls, ca_file: &Path, pins: &[Pin]) -> Result<TlsPolicy, TlsSetupError> {
        let provider = Arc::new(crypto::ring::default_provider());
        let trust = match mode {
            OutboundTls::None => return Ok(TlsPolicy { mode, connector: None }),
            OutboundTls::Opportunistic => Trust::Any,
            OutboundTls::Verify => {
                let roots = roots(ca_file)?;
                if roots.is_empty() && pins.is_empty() {
                    // Not fatal: SMS go on; each delivery that needs TLS fails and says why.
                    tracing::error!("no CA certificates found: install the system's CA bundle or name a tls_ca_file");
                }
                let chain = (!roots.is_empty())
                    .then(|| WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build())
                    .transpose()
                    .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
                Trust::Verified(chain)
            }
        };
        let verifier = Arc::new(Verifier {
            pins: pins.to_vec(),
            trust,
            provider: provider.clone(),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(TlsPolicy {
            mode,
            connector: Some(TlsConnector::from(Arc::new(config))),
        })
    }

    /// The connector, unless TLS is off.
    pub fn connector(&self) -> Option<&TlsConnector> {
        self.connector.as_ref()
    }
}

/// The system's CA certificates, plus those of `ca_file` when one is named.
fn roots(ca_file: &Path) -> Result<RootCertStore, TlsSetupError> {
    // Read once, however many peers and DSN routes verify with them.
    static SYSTEM: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    let system = SYSTEM.get_or_init(|| rustls_native_certs::load_native_certs().certs);
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system.iter().cloned());
    if !ca_file.as_os_str().is_empty() {
        let name = ca_file.display().to_string();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsSetupError::CaFile(name.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsSetupError::CaFile(name, "no PEM certificate in it".into()));
        }
        roots.add_parsable_certificates(certs);
    }
    Ok(roots)
}

/// SHA-256 of a certificate as pins name it.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    digest.as_ref().try_into().unwrap_or([0; 32])
}

/// What a server's certificate must be: one of the pins, else chained to a trusted CA
/// and naming the host (`verify`), or anything (`opportunistic`, Postfix's `may`). The
/// handshake's signatures are checked in every case, so the key is the certificate's.
#[derive(Debug)]
struct Verifier {
    pins: Vec<Pin>,
    trust: Trust,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
enum Trust {
    Any,
    /// Chained to these CAs; `None`: no CA at all, only the pins.
    Verified(Option<Arc<WebPkiServerVerifier>>),
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pins.contains(&Pin::from(fingerprint(end_entity))) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.trust {
            Trust::Any => Ok(ServerCertVerified::assertion()),
            Trust::Verified(Some(chain)) => chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            Trust::Verified(None) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
