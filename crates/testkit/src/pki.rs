//! A private CA and certificate files in a temporary directory.

use deskgate_devcerts::Ca;
use std::path::{Path, PathBuf};

pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub ca_path: PathBuf,
}

/// Paths of a certificate and its key.
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("deskgate test CA").expect("ca");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).expect("write ca");
        Pki { dir, ca, ca_path }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn server(&self, file: &str, names: &[&str]) -> Files {
        let i = self.ca.server(names).expect("server cert");
        self.write(file, &i.cert_pem, &i.key_pem)
    }

    pub fn client(&self, file: &str) -> Files {
        let i = self.ca.client("deskgate").expect("client cert");
        self.write(file, &i.cert_pem, &i.key_pem)
    }

    fn write(&self, file: &str, cert: &str, key: &str) -> Files {
        let cert_path = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert).expect("write cert");
        std::fs::write(&key_path, key).expect("write key");
        Files {
            cert: cert_path,
            key: key_path,
        }
    }

    /// A rustls client config trusting this CA, with the given ALPN.
    pub fn client_config(&self, alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
        client_config_trusting(self.ca.cert_pem(), alpn)
    }

    /// A rustls server config for a mock upstream.
    pub fn server_config(&self, names: &[&str]) -> std::sync::Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        let i = self.ca.server(names).expect("server cert");
        let certs: Vec<_> =
            rustls::pki_types::CertificateDer::pem_slice_iter(i.cert_pem.as_bytes())
                .map(|c| c.expect("pem"))
                .collect();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes()).expect("key");
        let mut cfg = rustls::ServerConfig::builder_with_provider(deskgate_config::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        std::sync::Arc::new(cfg)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A rustls client config trusting the CA in `ca_pem`, with the given ALPN.
pub fn client_config_trusting(
    ca_pem: &str,
    alpn: &[&[u8]],
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(deskgate_config::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    std::sync::Arc::new(cfg)
}
