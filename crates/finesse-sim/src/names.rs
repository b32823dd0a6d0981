//! Proxy awareness, as Finesse does it: the node keeps a list of allowed
//! proxy addresses and polls the proxy's map (`internal:port=external:port`
//! per line) every minute. A request from an allowed proxy sees the cluster
//! by its external names; anyone else sees the internal ones.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// `host:port`, port 443 when the text names none.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.to_string(),
            port,
        }
    }

    /// `host`, `host:port`, `[v6]:port`.
    pub fn parse(s: &str) -> Option<HostPort> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => 443,
                None => return None,
            };
            return Some(HostPort::new(&format!("[{host}]"), port));
        }
        match s.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !h.contains(':') => {
                Some(HostPort::new(h, p.parse().ok()?))
            }
            Some(_) => None,
            None => Some(HostPort::new(s, 443)),
        }
    }

    fn key(&self) -> String {
        format!("{}:{}", self.host.to_ascii_lowercase(), self.port)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The proxy's map, internal (case-insensitive) to external.
#[derive(Default, Debug)]
pub struct ProxyMap {
    entries: Vec<(String, HostPort)>,
}

impl ProxyMap {
    /// Parses the map; lines that make no sense are skipped (Finesse does
    /// not refuse a whole map for one bad line), blank lines and `#`
    /// comments too.
    pub fn parse(text: &str) -> ProxyMap {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((l, r)) = line.split_once('=') else {
                continue;
            };
            if let (Some(l), Some(r)) = (HostPort::parse(l), HostPort::parse(r)) {
                entries.push((l.key(), r));
            }
        }
        ProxyMap { entries }
    }

    pub fn external(&self, internal: &HostPort) -> Option<&HostPort> {
        let k = internal.key();
        self.entries.iter().find(|(l, _)| *l == k).map(|(_, r)| r)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The cluster's node names as one request sees them.
#[derive(Clone, Debug)]
pub struct Names {
    pub this: HostPort,
    pub peer: Option<HostPort>,
    pub this_is_primary: bool,
    /// The request came from an allowed proxy.
    pub proxied: bool,
}

impl Names {
    pub fn primary(&self) -> &HostPort {
        match (&self.peer, self.this_is_primary) {
            (Some(p), false) => p,
            _ => &self.this,
        }
    }
    pub fn secondary(&self) -> Option<&HostPort> {
        match (&self.peer, self.this_is_primary) {
            (Some(_), false) => Some(&self.this),
            (Some(p), true) => Some(p),
            (None, _) => None,
        }
    }
}

/// A node's proxy settings and the map it last fetched.
pub struct Awareness {
    this: HostPort,
    peer: Option<HostPort>,
    this_is_primary: bool,
    allowed: Vec<IpNet>,
    map: RwLock<Arc<ProxyMap>>,
    loaded_tx: watch::Sender<bool>,
}

impl Awareness {
    pub fn new(
        this: HostPort,
        peer: Option<HostPort>,
        this_is_primary: bool,
        allowed: Vec<IpNet>,
    ) -> Awareness {
        Awareness {
            this,
            peer,
            this_is_primary,
            allowed,
            map: RwLock::new(Arc::new(ProxyMap::default())),
            loaded_tx: watch::channel(false).0,
        }
    }

    pub fn is_allowed_proxy(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allowed.iter().any(|n| n.contains(&ip))
    }

    pub fn map(&self) -> Arc<ProxyMap> {
        match self.map.read() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_map(&self, map: ProxyMap) {
        let map = Arc::new(map);
        match self.map.write() {
            Ok(mut m) => *m = map,
            Err(p) => *p.into_inner() = map,
        }
        self.loaded_tx.send_replace(true);
    }

    /// Resolves once a map has been loaded, or after `timeout` (false).
    pub async fn wait_loaded(&self, timeout: Duration) -> bool {
        let mut rx = self.loaded_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|v| *v))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    /// Is `host` (a proxied request's Host) this node's external name?
    pub fn is_own_external(&self, host: &HostPort) -> bool {
        self.map()
            .external(&self.this)
            .is_some_and(|e| e.host.eq_ignore_ascii_case(&host.host) && e.port == host.port)
    }

    /// The names a request from `peer_ip` sees. A proxied request whose
    /// node is missing from the map sees the internal name, as Finesse
    /// would show it (and the operator sees a warning).
    pub fn names_for(&self, peer_ip: IpAddr) -> Names {
        let internal = Names {
            this: self.this.clone(),
            peer: self.peer.clone(),
            this_is_primary: self.this_is_primary,
            proxied: false,
        };
        if !self.is_allowed_proxy(peer_ip) {
            return internal;
        }
        let map = self.map();
        let ext = |n: &HostPort| match map.external(n) {
            Some(e) => e.clone(),
            None => {
                if *self.loaded_tx.borrow() {
                    tracing::warn!(node = %n, "proxied request, but the proxy map has no entry for this node");
                } else {
                    // a proxy that talks to us before we could fetch its map (start-up)
                    tracing::info!(node = %n, "proxied request before the proxy map was loaded");
                }
                n.clone()
            }
        };
        Names {
            this: ext(&self.this),
            peer: self.peer.as_ref().map(ext),
            this_is_primary: self.this_is_primary,
            proxied: true,
        }
    }
}

/// Polls `url` (plain HTTP, the proxy's internal listener) every `every`;
/// until the first success it retries each second.
pub async fn poll_map(aw: Arc<Awareness>, url: String, every: Duration) {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(%url, "proxy map URL is not valid: {e}");
            return;
        }
    };
    let mut loaded = false;
    loop {
        let fetched = async {
            let resp = tokio::time::timeout(Duration::from_secs(5), client.get(uri.clone()))
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
                .await
                .map_err(|_| "body timed out".to_string())?
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        .await;
        match fetched {
            Ok(text) => {
                let map = ProxyMap::parse(&text);
                tracing::debug!(entries = map.len(), "proxy map loaded");
                aw.set_map(map);
                loaded = true;
            }
            Err(e) => tracing::warn!(%url, "cannot fetch the proxy map: {e}"),
        }
        let wait = if loaded {
            every
        } else {
            Duration::from_secs(1)
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_left_side_case_insensitive_default_port_443() {
        let m = ProxyMap::parse(
            "# comment\nFinesse-A.lan:8445=localhost:8445\n\nids.lan=ids.example.com\nbroken line\n",
        );
        assert_eq!(m.len(), 2);
        let e = m
            .external(&HostPort::new("finesse-a.LAN", 8445))
            .expect("mapped");
        assert_eq!(e.to_string(), "localhost:8445");
        let e = m.external(&HostPort::new("ids.lan", 443)).expect("mapped");
        assert_eq!(e.to_string(), "ids.example.com:443");
        assert!(m.external(&HostPort::new("finesse-a.lan", 443)).is_none());
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(HostPort::parse("a:1"), Some(HostPort::new("a", 1)));
        assert_eq!(HostPort::parse("a"), Some(HostPort::new("a", 443)));
        assert_eq!(HostPort::parse("[::1]:8"), Some(HostPort::new("[::1]", 8)));
        assert_eq!(HostPort::parse("a:x"), None);
        assert_eq!(HostPort::parse(""), None);
    }

    #[test]
    fn only_allowed_proxies_see_external_names() {
        let aw = Awareness::new(
            HostPort::new("fa.lan", 8445),
            Some(HostPort::new("fb.lan", 8445)),
            false,
            vec!["127.0.0.1/32".parse().expect("net")],
        );
        aw.set_map(ProxyMap::parse(
            "fa.lan:8445=a.example.com:443\nfb.lan:8445=b.example.com:8446",
        ));
        let direct = aw.names_for("127.0.0.2".parse().expect("ip"));
        assert!(!direct.proxied);
        assert_eq!(direct.this.host, "fa.lan");
        let via = aw.names_for("127.0.0.1".parse().expect("ip"));
        assert!(via.proxied);
        assert_eq!(via.this.to_string(), "a.example.com:443");
        // this node is side B: the peer is primary
        assert_eq!(via.primary().to_string(), "b.example.com:8446");
        assert_eq!(
            via.secondary().map(|s| s.to_string()).as_deref(),
            Some("a.example.com:443")
        );
        let mapped_v6 = aw.names_for("::ffff:127.0.0.1".parse().expect("ip"));
        assert!(mapped_v6.proxied);
        // a proxied Host must be this node's external name, not its peer's
        assert!(aw.is_own_external(&HostPort::new("A.example.com", 443)));
        assert!(!aw.is_own_external(&HostPort::new("b.example.com", 8446)));
    }
}
