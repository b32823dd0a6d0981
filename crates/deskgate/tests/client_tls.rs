//! Client-side TLS: the certificate is chosen by SNI, TLS 1.2 and 1.3 with
//! AEAD suites only, ALPN picks h2 or http/1.1, keys can come from the
//! environment, and HSTS is added where configured.

use deskgate_testkit::client::Client;
use deskgate_testkit::deskgate::{one_route, rig, Gate, Setup};
use deskgate_testkit::mock::{Behaviour, Mock};
use deskgate_testkit::pki::Pki;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

async fn handshake(
    client: &Client,
    cfg: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let tcp = client.tcp().await?;
    TlsConnector::from(cfg)
        .connect(ServerName::try_from(sni.to_string()).expect("name"), tcp)
        .await
}

fn config(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let base = pki.client_config(alpn);
    let mut cfg = rustls::ClientConfig::builder_with_provider(deskgate_config::tls::provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots(pki))
        .with_no_client_auth();
    cfg.alpn_protocols = base.alpn_protocols.clone();
    Arc::new(cfg)
}

fn roots(pki: &Pki) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca.cert_pem().as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    roots
}

#[tokio::test]
async fn the_certificate_follows_the_sni_name() {
    let (pki, _mock, gate, client) = rig(Behaviour::Echo, "").await;
    let cfg = pki.client_config(&[b"http/1.1"]);
    // each name verifies against its own certificate
    handshake(&client, cfg.clone(), "finesse1a.example.com")
        .await
        .expect("finesse1a");
    handshake(&client, cfg.clone(), "other.example.com")
        .await
        .expect("other");
    // an unknown name gets the listener's first certificate, which does not cover it
    assert!(handshake(&client, cfg, "unknown.example.com")
        .await
        .is_err());
    gate.stop().await;
}

#[tokio::test]
async fn tls12_and_tls13_with_aead_suites_and_alpn() {
    let (pki, _mock, gate, client) = rig(Behaviour::Echo, "").await;
    for (versions, want) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
            let s = handshake(
                &client,
                config(&pki, versions, &[alpn]),
                "finesse1a.example.com",
            )
            .await
            .expect("handshake");
            let conn = s.get_ref().1;
            assert_eq!(conn.protocol_version(), Some(want));
            assert_eq!(conn.alpn_protocol(), Some(alpn));
            let suite = format!(
                "{:?}",
                conn.negotiated_cipher_suite().expect("suite").suite()
            );
            assert!(
                suite.contains("GCM") || suite.contains("CHACHA20_POLY1305"),
                "not AEAD: {suite}"
            );
        }
    }
    gate.stop().await;
}

#[tokio::test]
async fn keys_can_come_from_the_environment_and_hsts_is_opt_in() {
    let pki = Pki::new();
    let mock = Mock::start(Behaviour::Echo, None).await;
    let toml = one_route(
        &pki,
        &Setup {
            upstream: mock.addr,
            ..Setup::default()
        },
    );
    // one_route wrote the key to a file; move it into a variable instead
    let var = "DESKGATE_TEST_FRONT_KEY";
    let key_path = pki.path().join("front.key");
    std::env::set_var(var, std::fs::read_to_string(&key_path).expect("key"));
    let toml = toml
        .replacen(
            &format!("key_file = \"{}\"", key_path.display()),
            &format!("key_env = \"{var}\""),
            1,
        )
        .replacen(
            "external_port = 8445\n",
            "external_port = 8445\nhsts = true\n",
            1,
        );
    assert!(toml.contains("key_env") && toml.contains("hsts = true"));
    let gate = Gate::start(&pki, &toml).await;
    let client = Client::new(&pki, gate.addr("front"), "finesse1a.example.com");
    let r = client.get("finesse1a.example.com:8445", "/desktop/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["strict-transport-security"], "max-age=31536000");
    gate.stop().await;
    // without hsts = true there is no header
    let (_pki, _mock, gate, client) = rig(Behaviour::Echo, "").await;
    let r = client.get("finesse1a.example.com:8445", "/desktop/").await;
    assert!(r.headers.get("strict-transport-security").is_none());
    gate.stop().await;
}
