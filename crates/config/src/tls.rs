//! Loading certificates, keys and trust bundles, and building upstream TLS.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The one crypto provider: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Where a secret comes from.
pub enum SecretSource<'a> {
    File(&'a Path),
    Env(&'a str),
}

/// Reads a PEM certificate chain.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&data).collect();
    let certs = certs.map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no CERTIFICATE block", path.display()));
    }
    Ok(certs)
}

/// Reads a PEM private key from a file or an environment variable.
pub fn read_key(src: SecretSource<'_>) -> Result<PrivateKeyDer<'static>, String> {
    let (data, what) = match src {
        SecretSource::File(p) => (
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
            p.display().to_string(),
        ),
        SecretSource::Env(name) => (
            std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?
                .into_bytes(),
            format!("environment variable {name}"),
        ),
    };
    PrivateKeyDer::from_pem_slice(&data)
        .map_err(|e| format!("{what} holds no usable PEM private key: {e}"))
}

/// A certificate chain with its key, checked to belong together.
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| format!("the private key does not belong to the certificate ({e})"))?;
    Ok(ck)
}

/// Does the leaf certificate cover `name` (DNS name or IP literal)?
pub fn covers(cert: &CertificateDer<'_>, name: &str) -> Result<bool, String> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| format!("{name:?} is not a valid DNS name or IP address"))?;
    Ok(ee.verify_is_valid_for_subject_name(&server_name).is_ok())
}

/// Upstream client TLS settings, resolved.
pub struct UpstreamTls<'a> {
    pub trust: Option<&'a Path>,
    pub verify: bool,
    pub client: Option<(&'a Path, SecretSource<'a>)>,
}

/// Builds the rustls client config used towards upstream nodes (HTTP/1.1 only).
pub fn upstream_client_config(u: UpstreamTls<'_>) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if u.verify {
        let mut roots = rustls::RootCertStore::empty();
        let trust = u
            .trust
            .ok_or_else(|| "verify is on but no trust bundle is given".to_string())?;
        for c in read_certs(trust)? {
            roots
                .add(c)
                .map_err(|e| format!("{}: bad CA certificate: {e}", trust.display()))?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    };
    let mut cfg = match u.client {
        Some((cert, key)) => {
            let certs = read_certs(cert)?;
            let key = read_key(key)?;
            certified_key(certs.clone(), key.clone_key())?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `verify = false`: accepts any upstream certificate (signatures still checked).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
