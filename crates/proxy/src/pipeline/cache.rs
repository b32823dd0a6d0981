//! Step 10a: answer from the in-memory cache, or fetch once and keep.
//!
//! Runs after authentication, so a cached answer is never a way around it.
//! What may be kept:
//! - unauthenticated-list answers, shared by everyone (the operator listed
//!   them as public), fresh for their own `Cache-Control`/`Expires` or
//!   `[cache] static_ttl`;
//! - other GETs whose answer says it is cacheable: for an authenticated
//!   request only for the user who fetched it, never across users;
//! - CORS preflight answers, per component, for `[cache] preflight_ttl`.
//!
//! A stale answer with a validator is checked with the upstream
//! (`If-None-Match`, `If-Modified-Since`); concurrent misses of one key
//! make one upstream request and the others wait for its answer. The
//! client's own `Cache-Control` request directives are not followed (as
//! nginx's proxy cache): a client cannot make the upstream do more work.

use super::deny::Deny;
use super::headers;
use super::log::Record;
use crate::body::{empty, full, Prefixed, ProxyBody};
use crate::cache::freshness::{self, Audience};
use crate::cache::{Cache, Found, Join, KeyOwned, KeyRef, Kind, Leader, Stored};
use bytes::BytesMut;
use deskgate_config::Component;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the pipeline knows about the request when it reaches the cache.
pub struct Ask<'a> {
    pub component: &'a Component,
    /// The path as forwarded (normalised).
    pub path: &'a str,
    /// The authenticated user, for answers kept for that user alone.
    pub user: Option<&'a str>,
    /// On the component's unauthenticated list.
    pub free: bool,
    pub preflight: bool,
}

pub enum Decision<'a> {
    /// Not a cache matter: forward as usual.
    Skip,
    /// Answered from the cache.
    Served(Response<ProxyBody>),
    /// Forward the (adjusted) request, then give the answer to [`Fill::keep`].
    Fetch(Box<Fill<'a>>),
}

/// A fetch this request leads: its answer is kept and handed to the
/// requests waiting for the same key.
pub struct Fill<'a> {
    leader: Leader<'a>,
    key: KeyOwned,
    hash: u64,
    audience: Audience,
    fallback: Option<Duration>,
    stale: Option<Arc<Stored>>,
    /// The headers as the client sent them: `Vary` values and its own conditionals.
    client: HeaderMap,
    /// A HEAD whose stale entry is checked with a GET.
    head: bool,
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Looks the request up; may wait for another request's fetch of the same key.
pub async fn before<'a, B: http_body::Body>(
    cache: &'a Cache,
    ask: &Ask<'_>,
    req: &mut Request<B>,
    rec: &mut Record,
) -> Decision<'a> {
    let s = &cache.settings;
    if !s.enabled {
        return Decision::Skip;
    }
    let h = req.headers();
    let kind = if ask.preflight {
        if !s.preflight {
            return Decision::Skip;
        }
        Kind::Preflight
    } else if req.method() == Method::GET || req.method() == Method::HEAD {
        Kind::Get
    } else {
        return Decision::Skip;
    };
    let head = req.method() == Method::HEAD;
    let audience = if ask.user.is_some() {
        Audience::User
    } else {
        Audience::Shared
    };
    if kind == Kind::Get {
        let conditional_other = h.contains_key(header::IF_MATCH)
            || h.contains_key(header::IF_UNMODIFIED_SINCE)
            || h.contains_key(header::IF_RANGE);
        if h.contains_key(header::RANGE) || conditional_other || super::forward::declares_body(req)
        {
            rec.cache = "bypass";
            return Decision::Skip;
        }
        // a shared answer to a request with credentials the upstream might
        // read: only what the upstream marks public (RFC 9111 3.5), unless
        // the operator listed the path as public
        if audience == Audience::Shared
            && !ask.free
            && (h.contains_key(header::AUTHORIZATION) || h.contains_key(header::COOKIE))
        {
            rec.cache = "bypass";
            return Decision::Skip;
        }
    }
    let extra = match kind {
        Kind::Preflight => [
            header_str(h, header::ORIGIN),
            header_str(h, header::ACCESS_CONTROL_REQUEST_METHOD),
            header_str(h, header::ACCESS_CONTROL_REQUEST_HEADERS),
        ],
        Kind::Get => ["", "", ""],
    };
    let key = KeyRef {
        kind,
        component: &ask.component.name,
        user: ask.user,
        path: ask.path,
        query: req.uri().query(),
        extra,
    };
    let hash = cache.hash(&key);
    let mut waited = false;
    loop {
        let stale = match cache.lookup(&key, hash, req.headers()) {
            Found::Fresh(s) => {
                cache
                    .stats
                    .hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                rec.cache = "hit";
                return Decision::Served(answer(&s, req.headers(), head));
            }
            Found::Pass => {
                rec.cache = "bypass";
                return Decision::Skip;
            }
            Found::Stale(s) if kind == Kind::Get && s.has_validator() => Some(s),
            Found::Stale(_) | Found::Missing => None,
        };
        if head && stale.is_none() {
            // a HEAD miss is forwarded as it is: it has no body to keep
            rec.cache = "miss";
            return Decision::Skip;
        }
        // one user's own answers: nobody else could wait for them, and
        // concurrent fetches of one URL by one user are rare
        let join = match audience {
            Audience::User => Join::Leader(cache.alone(hash)),
            Audience::Shared => cache.join(hash),
        };
        match join {
            Join::Leader(leader) => {
                let key = key.owned();
                cache
                    .stats
                    .misses
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                rec.cache = if stale.is_some() { "expired" } else { "miss" };
                let client = req.headers().clone();
                if head {
                    // the check of a stale entry is a GET, whose answer is kept
                    *req.method_mut() = Method::GET;
                }
                let h = req.headers_mut();
                h.remove(header::IF_NONE_MATCH);
                h.remove(header::IF_MODIFIED_SINCE);
                if let Some(s) = &stale {
                    if let Some(e) = s.etag() {
                        h.insert(header::IF_NONE_MATCH, e.clone());
                    }
                    if let Some(m) = s.last_modified() {
                        h.insert(header::IF_MODIFIED_SINCE, m.clone());
                    }
                }
                let fallback = match kind {
                    Kind::Preflight => Some(cache.settings.preflight_ttl),
                    Kind::Get if ask.free && static_file(ask.path) => {
                        Some(cache.settings.static_ttl)
                    }
                    Kind::Get => None,
                };
                return Decision::Fetch(Box::new(Fill {
                    leader,
                    key,
                    hash,
                    audience,
                    fallback,
                    stale,
                    client,
                    head,
                }));
            }
            Join::Follower(mut rx) if !waited => {
                waited = true;
                let wait = ask.component.response_timeout;
                let got = tokio::time::timeout(wait, rx.wait_for(|v| v.is_some())).await;
                if let Ok(Ok(v)) = got {
                    if let Some(Some(s)) = v.as_ref() {
                        if s.serves(req.headers()) {
                            cache
                                .stats
                                .hits
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            rec.cache = "hit";
                            return Decision::Served(answer(s, req.headers(), head));
                        }
                    }
                }
                // the fetch failed, kept nothing, or kept another variant:
                // look again, and lead or go alone
            }
            Join::Follower(_) => {
                rec.cache = "miss";
                return Decision::Skip;
            }
        }
    }
}

impl Fill<'_> {
    /// Keeps the upstream's answer when it may, and answers the client.
    pub async fn keep(
        self,
        resp: Response<ProxyBody>,
        rec: &mut Record,
    ) -> Result<Response<ProxyBody>, Deny> {
        let cache = self.leader.cache();
        let kind = self.key.as_key().kind;
        let status = resp.status();
        if let (StatusCode::NOT_MODIFIED, Some(stale)) = (status, &self.stale) {
            // still good: the stored body with the upstream's new headers
            rec.cache = "revalidated";
            cache
                .stats
                .revalidated
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let merged = stale.refreshed(resp.headers(), Duration::ZERO);
            let fresh = freshness::storable(
                StatusCode::OK,
                &merged.headers,
                self.audience,
                self.fallback,
            );
            let s = match fresh {
                Some(f) => cache.store(
                    &self.key.as_key(),
                    self.hash,
                    stale.refreshed(resp.headers(), f),
                ),
                // no longer cacheable: this once, the answer is still the stored one
                None => Arc::new(merged),
            };
            self.leader.finish(Some(s.clone()));
            return Ok(answer(&s, &self.client, self.head));
        }
        let fresh = match kind {
            Kind::Preflight => {
                preflight_storable(status, resp.headers()).then_some(cache.settings.preflight_ttl)
            }
            Kind::Get => freshness::storable(status, resp.headers(), self.audience, self.fallback),
        };
        let max = cache.settings.max_object;
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let Some(fresh) = fresh.filter(|_| declared.is_none_or(|n| n <= max)) else {
            // not kept; the client gets what the upstream said. A success
            // that cannot be kept will not be next time either: pass the
            // key through for a while (an error may be passing)
            // (shared keys only: a mark per user and REST URL would crowd
            // the static files out of the byte budget)
            if status.is_success() && self.audience == Audience::Shared {
                cache.mark_pass(&self.key.as_key(), self.hash);
            }
            return Ok(resp);
        };
        let (mut parts, mut body) = resp.into_parts();
        let mut buf = BytesMut::new();
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers: not kept, not needed by a desktop
                    };
                    if (buf.len() + data.len()) as u64 > max {
                        // too large to keep after all: send on what was read
                        if self.audience == Audience::Shared {
                            cache.mark_pass(&self.key.as_key(), self.hash);
                        }
                        let mut prefix = buf;
                        prefix.extend_from_slice(&data);
                        return Ok(Response::from_parts(
                            parts,
                            Prefixed::boxed(prefix.freeze(), body),
                        ));
                    }
                    buf.extend_from_slice(&data);
                }
                Some(Err(e)) => {
                    tracing::warn!(
                        upstream = rec.upstream.as_deref(),
                        "upstream body failed: {e}"
                    );
                    return Err(Deny::UpstreamFailed);
                }
            }
        }
        headers::strip_hop_by_hop(&mut parts.headers);
        let body = buf.freeze();
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let stored = Stored::new(parts.status, parts.headers, body, &self.client, fresh);
        let s = cache.store(&self.key.as_key(), self.hash, stored);
        self.leader.finish(Some(s.clone()));
        Ok(answer(&s, &self.client, self.head))
    }
}

/// Extensions of the files a desktop loads by the hundred. Only these get
/// `static_ttl` when their answer states no lifetime: an unauthenticated
/// API answer (`SystemInfo`, `UserAuthMode`, the SSO endpoints) is kept
/// only when the upstream says it may be.
const STATIC_EXTENSIONS: [&str; 19] = [
    "js",
    "css",
    "png",
    "jpg",
    "jpeg",
    "gif",
    "svg",
    "ico",
    "woff",
    "woff2",
    "ttf",
    "eot",
    "otf",
    "map",
    "xml",
    "html",
    "htm",
    "json",
    "properties",
];

pub fn static_file(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let last = last.split(';').next().unwrap_or(last);
    last.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && STATIC_EXTENSIONS
                .iter()
                .any(|e| ext.eq_ignore_ascii_case(e))
    })
}

/// A preflight answer worth keeping: a success that sets nothing.
fn preflight_storable(status: StatusCode, h: &HeaderMap) -> bool {
    status.is_success() && !h.contains_key(header::SET_COOKIE) && !freshness::directives(h).no_store
}

/// The client's answer from a stored one: 304 when its own conditional
/// request is satisfied, else the stored status, headers and body.
pub fn answer(s: &Stored, req: &HeaderMap, head: bool) -> Response<ProxyBody> {
    let age = HeaderValue::from(s.age(Instant::now()).as_secs());
    if s.status == StatusCode::OK && freshness::not_modified(req, s.etag(), s.last_modified()) {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        let h = r.headers_mut();
        for name in [
            header::ETAG,
            header::CACHE_CONTROL,
            header::EXPIRES,
            header::LAST_MODIFIED,
            header::VARY,
            header::DATE,
            header::CONTENT_LOCATION,
        ] {
            for v in s.headers.get_all(&name) {
                h.append(name.clone(), v.clone());
            }
        }
        h.insert(header::AGE, age);
        return r;
    }
    let mut r = Response::new(if head { empty() } else { full(s.body.clone()) });
    *r.status_mut() = s.status;
    *r.headers_mut() = s.headers.clone();
    r.headers_mut().insert(header::AGE, age);
    r
}

#[cfg(test)]
mod tests {
    use super::static_file;

    #[test]
    fn static_files_by_extension() {
        assert!(static_file("/desktop/js/app.js"));
        assert!(static_file("/desktop/index.html"));
        assert!(static_file("/3rdpartygadget/files/g/gadget.XML"));
        assert!(static_file("/desktop/js/app.js;v=1"));
        assert!(!static_file("/desktop/"));
        assert!(!static_file("/finesse/api/SystemInfo"));
        assert!(!static_file("/desktop/sso/token"));
        assert!(!static_file("/desktop/js/.js"));
    }
}
