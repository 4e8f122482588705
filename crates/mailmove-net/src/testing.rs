//! Certificates for tests (feature `test-support`): the IMAP, POP3 and TLS tests make their own
//! private CAs, self-signed and pinned certificates, and serve them from in-process rustls servers.
//! Written once here so that the three test suites cannot drift apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};

/// A certificate made for a test, and its key.
pub struct Issued {
    /// The certificate.
    pub certificate: rcgen::Certificate,
    /// Its private key.
    pub key: KeyPair,
}

impl Issued {
    /// A self-signed certificate for `names`, marked CA:TRUE when `ca`: the two kinds a small
    /// server's administrator makes with `openssl req -x509` (CA:TRUE by default) or otherwise.
    ///
    /// # Panics
    /// When rcgen cannot make it (a test set-up error).
    pub fn self_signed(names: &[&str], ca: bool, adjust: impl FnOnce(&mut CertificateParams)) -> Issued {
        let key = KeyPair::generate().expect("key pair");
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("certificate names");
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        adjust(&mut params);
        Issued { certificate: params.self_signed(&key).expect("self-signed certificate"), key }
    }

    /// A private CA that only signs, named `name`.
    pub fn authority(name: &str) -> Issued {
        Issued::self_signed(&[], true, |params| {
            params.distinguished_name = DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        })
    }

    /// A server certificate for `names` signed by this CA.
    ///
    /// # Panics
    /// When rcgen cannot make it (a test set-up error).
    pub fn issue(&self, names: &[&str], adjust: impl FnOnce(&mut CertificateParams)) -> Issued {
        let key = KeyPair::generate().expect("key pair");
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("certificate names");
        adjust(&mut params);
        let certificate = params.signed_by(&key, &self.certificate, &self.key).expect("signed certificate");
        Issued { certificate, key }
    }

    /// Writes the certificate as PEM into `dir` (a `ca=` file).
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn pem_file(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.certificate.pem()).expect("writing the PEM file");
        path
    }

    /// A rustls server configuration presenting this certificate.
    ///
    /// # Panics
    /// When rustls refuses the certificate or key (a test set-up error).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(self.key.serialize_der().into());
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(vec![self.certificate.der().clone()], key)
                .expect("server certificate");
        Arc::new(config)
    }
}
