//! The agent desktop: its page, static files and configuration, all of
//! which load without credentials (they are on deskgate's unauthenticated
//! list). The page's links name this node and its peer as the request sees
//! them: external names through a proxy.

use crate::names::Names;
use crate::server::{empty, Reply};
use crate::Cluster;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

const INDEX: &str = include_str!("../assets/index.html");

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/desktop/js/desktop.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/desktop.js"),
    },
    Asset {
        path: "/desktop/css/desktop.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/desktop.css"),
    },
    Asset {
        path: "/desktop/img/logo.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/logo.svg"),
    },
];

/// Patterns of the resources that load without credentials, as Finesse
/// publishes them at `/desktop/api/urls?type=desktop` (one per line).
pub const UNAUTHENTICATED_DESKTOP: &[&str] = &[
    "/desktop/",
    "/desktop/index.html",
    "/desktop/js/*",
    "/desktop/css/*",
    "/desktop/img/*",
    "/desktop/api/DesktopConfig",
    "/finesse/api/UserAuthMode/*",
];

pub fn handle(
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    names: &Names,
    cluster: &Cluster,
) -> Reply {
    match path {
        "/" | "/desktop" => redirect("/desktop/"),
        "/desktop/" | "/desktop/index.html" => {
            let page = render_index(names, &cluster.xmpp_domain);
            conditional(
                headers,
                cluster,
                "text/html; charset=utf-8",
                page.into(),
                "no-cache",
            )
        }
        "/desktop/api/DesktopConfig" => {
            let body = crate::resources::desktop_config(&crate::rest::facts(cluster), names);
            let mut r = crate::server::response(StatusCode::OK, body.into());
            set(r.headers_mut(), header::CONTENT_TYPE, "application/json");
            set(r.headers_mut(), header::CACHE_CONTROL, "no-store");
            r
        }
        "/desktop/api/urls" => {
            let list = match query.unwrap_or("") {
                q if q.contains("type=3rdParty") => vec!["/3rdpartygadget/files/*"],
                _ => UNAUTHENTICATED_DESKTOP.to_vec(),
            };
            let mut r = crate::server::response(StatusCode::OK, (list.join("\n") + "\n").into());
            set(
                r.headers_mut(),
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            );
            r
        }
        _ => match ASSETS.iter().find(|a| a.path == path) {
            Some(a) => conditional(
                headers,
                cluster,
                a.content_type,
                Bytes::from_static(a.body.as_bytes()),
                "max-age=300",
            ),
            None => {
                let mut r = crate::server::response(StatusCode::NOT_FOUND, "Not Found\n".into());
                set(r.headers_mut(), header::CONTENT_TYPE, "text/plain");
                r
            }
        },
    }
}

/// The page with this request's names filled in. Without a peer the link
/// to the other side is left out.
pub fn render_index(names: &Names, xmpp_domain: &str) -> String {
    use crate::xml::escape;
    let this = names.this.to_string();
    let peer_link = match &names.peer {
        Some(p) => format!(
            r#"<a id="other-side" href="https://{0}/desktop/">Other side: {0}</a>"#,
            escape(&p.to_string())
        ),
        None => String::new(),
    };
    INDEX
        .replace("{{this}}", &escape(&this))
        .replace("{{peer_link}}", &peer_link)
        .replace("{{xmpp_domain}}", &escape(xmpp_domain))
        .replace(
            "{{via}}",
            if names.proxied {
                "through the proxy"
            } else {
                "direct"
            },
        )
}

fn redirect(to: &'static str) -> Reply {
    // relative: an absolute Location would have to name a host
    let mut r = empty(StatusCode::MOVED_PERMANENTLY);
    set(r.headers_mut(), header::LOCATION, to);
    r
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &'static str) {
    h.insert(name, HeaderValue::from_static(value));
}

/// A cacheable answer with a strong ETag and Last-Modified, answering 304
/// to a matching `If-None-Match` (or, without one, `If-Modified-Since`).
fn conditional(
    headers: &HeaderMap,
    cluster: &Cluster,
    content_type: &'static str,
    body: Bytes,
    cache_control: &'static str,
) -> Reply {
    let etag = format!("\"{:016x}\"", fnv1a(&body));
    let modified = crate::resources::http_date(cluster.started);
    // If-None-Match uses the weak comparison (RFC 9110 13.1.2): a proxy
    // that compresses the body may have made the tag weak. Without it,
    // If-Modified-Since is a date at or after the last modification.
    let matches = match headers.get(header::IF_NONE_MATCH) {
        Some(v) => v
            .to_str()
            .map(|s| {
                s.split(',').any(|t| {
                    let t = t.trim();
                    t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
                })
            })
            .unwrap_or(false),
        None => {
            let since = headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::resources::parse_http_date);
            let modified_secs = cluster
                .started
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            since.is_some_and(|s| s >= modified_secs)
        }
    };
    let mut r = if matches {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        crate::server::response(StatusCode::OK, body)
    };
    let h = r.headers_mut();
    if !matches {
        set(h, header::CONTENT_TYPE, content_type);
    }
    set(h, header::CACHE_CONTROL, cache_control);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    r
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::HostPort;

    fn names(proxied: bool) -> Names {
        Names {
            this: HostPort::new(if proxied { "localhost" } else { "fa.lan" }, 8445),
            peer: Some(HostPort::new(
                if proxied { "127.0.0.1" } else { "fb.lan" },
                8446,
            )),
            this_is_primary: true,
            proxied,
        }
    }

    #[test]
    fn the_page_names_the_hosts_of_its_view_only() {
        let page = render_index(&names(true), "cc.test");
        assert!(
            page.contains("https://localhost:8445/desktop/js/desktop.js"),
            "{page}"
        );
        assert!(page.contains(r#"href="https://127.0.0.1:8446/desktop/""#));
        assert!(!page.contains(".lan"));
        assert!(!page.contains("{{"));
        let page = render_index(&names(false), "cc.test");
        assert!(page.contains("https://fa.lan:8445/desktop/"));
    }

    #[test]
    fn etag_revalidation_gives_304() {
        let cluster = Cluster::demo(1);
        let first = handle(
            "/desktop/css/desktop.css",
            None,
            &HeaderMap::new(),
            &names(true),
            &cluster,
        );
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers().get(header::ETAG).expect("etag").clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let again = handle("/desktop/css/desktop.css", None, &h, &names(true), &cluster);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let lm = first
            .headers()
            .get(header::LAST_MODIFIED)
            .expect("lm")
            .clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_MODIFIED_SINCE, lm);
        let again = handle("/desktop/css/desktop.css", None, &h, &names(true), &cluster);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        // a weakened tag still matches; a later date too; an earlier one does not
        let css = |h: &HeaderMap| {
            handle("/desktop/css/desktop.css", None, h, &names(true), &cluster).status()
        };
        let etag = first.headers().get(header::ETAG).expect("etag");
        let weak = format!("W/{}", etag.to_str().expect("etag"));
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, weak.parse().expect("header"));
        assert_eq!(css(&h), StatusCode::NOT_MODIFIED);
        h.insert(header::IF_NONE_MATCH, "\"other\"".parse().expect("header"));
        assert_eq!(css(&h), StatusCode::OK);
        let mut h = HeaderMap::new();
        let later = "Fri, 01 Jan 2100 00:00:00 GMT";
        h.insert(header::IF_MODIFIED_SINCE, later.parse().expect("header"));
        assert_eq!(css(&h), StatusCode::NOT_MODIFIED);
        let earlier = "Thu, 01 Jan 2015 00:00:00 GMT";
        h.insert(header::IF_MODIFIED_SINCE, earlier.parse().expect("header"));
        assert_eq!(css(&h), StatusCode::OK);
    }
}
