//! A test CA and a certificate for "localhost" it signed, as PEM files.

use std::path::PathBuf;

use super::TempDir;

pub(crate) struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let pki = Pki { dir: TempDir::new() };
        pki.issue();
        pki
    }

    /// A new CA, and a new "localhost" certificate from it, over the previous files.
    pub(crate) fn issue(&self) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = &self.dir;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.0.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.0.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.0.join("key.pem"), key.serialize_pem()).unwrap();
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }

    pub(crate) fn cert(&self) -> PathBuf {
        self.dir.0.join("cert.pem")
    }

    pub(crate) fn key(&self) -> PathBuf {
        self.dir.0.join("key.pem")
    }
}
