//! Client-side TLS: SNI certificate selection, ALPN, TLS 1.2+ AEAD only,
//! no session tickets (SPEC 7).

use deskgate_config::tls::provider;
use deskgate_config::Listener;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// Picks the certificate for the SNI name; IP literals and unknown names get the first one.
#[derive(Debug)]
struct SniResolver {
    listener: Arc<Listener>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = hello.server_name().and_then(|n| self.listener.cert_for(n));
        by_name
            .or_else(|| self.listener.certs.first())
            .map(|c| c.key.clone())
    }
}

/// The rustls server config for one listener.
pub fn server_config(listener: Arc<Listener>) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { listener }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.send_tls13_tickets = 0;
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}
