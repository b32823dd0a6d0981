//! What may be stored, for how long, and whether a client's conditional
//! request is already satisfied: RFC 9111 for a shared cache, reduced to
//! what a desktop's upstreams send. Pure functions over header maps.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// At most this many request headers in `Vary`; more make a key nobody shares.
pub const MAX_VARY: usize = 4;

/// Who may see a stored answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone asking for the URL (unauthenticated-list requests).
    Shared,
    /// Only the user whose request fetched it (authenticated requests).
    User,
}

/// The directives of one `Cache-Control` header set that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
}

pub fn directives(h: &HeaderMap) -> Directives {
    let mut d = Directives::default();
    for v in h.get_all(header::CACHE_CONTROL) {
        let Ok(v) = v.to_str() else {
            // unreadable: treat as the strictest answer
            d.no_store = true;
            continue;
        };
        for item in v.split(',') {
            let item = item.trim();
            let (name, arg) = match item.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (item, None),
            };
            let secs = || arg.and_then(|a| a.parse::<u64>().ok());
            if name.eq_ignore_ascii_case("no-store") {
                d.no_store = true;
            } else if name.eq_ignore_ascii_case("no-cache") {
                d.no_cache = true;
            } else if name.eq_ignore_ascii_case("private") {
                d.private = true;
            } else if name.eq_ignore_ascii_case("public") {
                d.public = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                // a malformed value means stale (RFC 9111 4.2.1)
                d.max_age = Some(secs().unwrap_or(0));
            } else if name.eq_ignore_ascii_case("s-maxage") {
                d.s_maxage = Some(secs().unwrap_or(0));
            }
        }
    }
    d
}

/// How long a response stays fresh once stored, or `None` when it must not
/// be stored at all. `fallback` is the freshness of unauthenticated-list
/// answers that state none (`None` elsewhere: only explicitly cacheable
/// answers are kept).
pub fn storable(
    status: http::StatusCode,
    h: &HeaderMap,
    audience: Audience,
    fallback: Option<Duration>,
) -> Option<Duration> {
    if status != http::StatusCode::OK {
        return None;
    }
    let d = directives(h);
    if d.no_store || h.contains_key(header::SET_COOKIE) {
        return None;
    }
    if d.private && audience == Audience::Shared {
        return None;
    }
    // `Vary: *`, or too many names
    vary_names(h)?;
    let has_validator = h.contains_key(header::ETAG) || h.contains_key(header::LAST_MODIFIED);
    if d.no_cache {
        // kept, but checked with the upstream before every use
        return has_validator.then_some(Duration::ZERO);
    }
    let explicit = match audience {
        Audience::Shared => d.s_maxage.or(d.max_age),
        Audience::User => d.max_age,
    }
    .map(Duration::from_secs)
    .or_else(|| expires_in(h));
    let age = age_of(h);
    match explicit {
        Some(fresh) => Some(fresh.saturating_sub(age)),
        None => fallback,
    }
}

/// `Expires` minus `Date` (an `Expires` that cannot be read means stale).
fn expires_in(h: &HeaderMap) -> Option<Duration> {
    let expires = h.get(header::EXPIRES)?;
    let exp = expires.to_str().ok().and_then(http_date);
    let date = h
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(http_date);
    Some(match (exp, date) {
        (Some(e), Some(d)) if e > d => Duration::from_secs(e - d),
        (Some(e), None) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            Duration::from_secs(e.saturating_sub(now))
        }
        _ => Duration::ZERO,
    })
}

/// The upstream's own `Age`, which a stored answer starts from.
pub fn age_of(h: &HeaderMap) -> Duration {
    h.get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_default()
}

/// The request header names in `Vary`, lower-cased; `None` for `Vary: *`
/// or more than [`MAX_VARY`] names (not stored).
pub fn vary_names(h: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in h.get_all(header::VARY) {
        let v = v.to_str().ok()?;
        for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if n == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(n.as_bytes()).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    (names.len() <= MAX_VARY).then_some(names)
}

/// The request's values of the `Vary` headers, as they are matched later:
/// all values of each header joined, whitespace around commas ignored.
pub fn vary_values(names: &[HeaderName], req: &HeaderMap) -> Vec<Option<HeaderValue>> {
    names.iter().map(|n| joined(req, n)).collect()
}

fn joined(req: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut it = req.get_all(name).iter();
    let first = it.next()?;
    match it.next() {
        None => Some(first.clone()),
        Some(second) => {
            let mut v = first.as_bytes().to_vec();
            for x in std::iter::once(second).chain(it) {
                v.extend_from_slice(b", ");
                v.extend_from_slice(x.as_bytes());
            }
            HeaderValue::from_bytes(&v).ok()
        }
    }
}

/// Does this request send the same values for the stored `Vary` headers?
pub fn vary_matches(names: &[HeaderName], values: &[Option<HeaderValue>], req: &HeaderMap) -> bool {
    names.iter().zip(values).all(|(n, v)| {
        let mut it = req.get_all(n).iter();
        match (v, it.next(), it.next()) {
            (None, None, _) => true,
            (Some(v), Some(one), None) => same_list(v.as_bytes(), one.as_bytes()),
            (Some(v), Some(_), Some(_)) => {
                joined(req, n).is_some_and(|j| same_list(v.as_bytes(), j.as_bytes()))
            }
            _ => false,
        }
    })
}

/// Two header values equal but for spaces around the commas.
fn same_list(a: &[u8], b: &[u8]) -> bool {
    let mut x = a.split(|c| *c == b',').map(trim);
    let mut y = b.split(|c| *c == b',').map(trim);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) if p == q => {}
            _ => return false,
        }
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// Would the stored answer with these validators satisfy the client's
/// conditional GET (so it gets 304)? `If-None-Match` wins over
/// `If-Modified-Since`, which is compared exactly (as nginx does).
pub fn not_modified(
    req: &HeaderMap,
    etag: Option<&HeaderValue>,
    modified: Option<&HeaderValue>,
) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        let Some(etag) = etag else { return false };
        let Ok(list) = inm.to_str() else { return false };
        let mine = weak_part(etag.as_bytes());
        return list
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || weak_part(t.as_bytes()) == mine);
    }
    match (req.get(header::IF_MODIFIED_SINCE), modified) {
        (Some(since), Some(m)) => since.as_bytes() == m.as_bytes(),
        _ => false,
    }
}

/// The opaque part of an entity tag (weak comparison, RFC 9110 8.8.3.2).
fn weak_part(t: &[u8]) -> &[u8] {
    t.strip_prefix(b"W/").unwrap_or(t)
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
/// The obsolete formats are not read: such a date counts as unreadable.
pub fn http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    let rest = s.get(5..)?; // "Sun, "
    let mut it = rest.split(' ');
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    if days < 0 {
        return None;
    }
    Some(days as u64 * 86400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    const FIVE_MIN: Option<Duration> = Some(Duration::from_secs(300));

    #[test]
    fn explicit_freshness_wins_and_the_fallback_covers_silence() {
        let ok = StatusCode::OK;
        let shared = Audience::Shared;
        assert_eq!(
            storable(ok, &h(&[("cache-control", "max-age=60")]), shared, FIVE_MIN),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            storable(
                ok,
                &h(&[("cache-control", "max-age=60, s-maxage=10")]),
                shared,
                None
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            storable(
                ok,
                &h(&[("cache-control", "max-age=60"), ("age", "50")]),
                shared,
                None
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(storable(ok, &h(&[]), shared, FIVE_MIN), FIVE_MIN);
        assert_eq!(storable(ok, &h(&[]), shared, None), None);
        assert_eq!(
            storable(
                ok,
                &h(&[
                    ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("expires", "Sun, 06 Nov 1994 08:59:37 GMT")
                ]),
                shared,
                None
            ),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            storable(ok, &h(&[("expires", "0")]), shared, FIVE_MIN),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn what_is_never_stored() {
        let ok = StatusCode::OK;
        let s = Audience::Shared;
        for bad in [
            vec![("cache-control", "no-store")],
            vec![("cache-control", "private, max-age=60")],
            vec![("set-cookie", "JSESSIONID=1")],
            vec![("vary", "*")],
            vec![("vary", "a, b, c, d, e")],
            vec![("cache-control", "no-cache")],
        ] {
            assert_eq!(storable(ok, &h(&bad), s, FIVE_MIN), None, "{bad:?}");
        }
        assert_eq!(storable(StatusCode::NOT_FOUND, &h(&[]), s, FIVE_MIN), None);
        assert_eq!(
            storable(StatusCode::PARTIAL_CONTENT, &h(&[]), s, FIVE_MIN),
            None
        );
        // a user's own copy may be private, but needs an explicit lifetime
        assert_eq!(
            storable(
                ok,
                &h(&[("cache-control", "private, max-age=5")]),
                Audience::User,
                None
            ),
            Some(Duration::from_secs(5))
        );
        // no-cache with a validator: kept, always revalidated
        assert_eq!(
            storable(
                ok,
                &h(&[("cache-control", "no-cache"), ("etag", "\"1\"")]),
                s,
                FIVE_MIN
            ),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn vary_values_match_up_to_spacing() {
        let names = vary_names(&h(&[
            ("vary", "Accept-Encoding"),
            ("vary", "accept-language"),
        ]))
        .expect("names");
        assert_eq!(names.len(), 2);
        let stored = vary_values(&names, &h(&[("accept-encoding", "gzip, br")]));
        assert!(vary_matches(
            &names,
            &stored,
            &h(&[("accept-encoding", "gzip,br")])
        ));
        assert!(!vary_matches(
            &names,
            &stored,
            &h(&[("accept-encoding", "gzip")])
        ));
        assert!(!vary_matches(
            &names,
            &stored,
            &h(&[("accept-encoding", "gzip, br"), ("accept-language", "fr")])
        ));
        assert!(vary_matches(
            &names,
            &stored,
            &h(&[("accept-encoding", "gzip"), ("accept-encoding", "br")])
        ));
    }

    #[test]
    fn conditional_requests() {
        let etag = HeaderValue::from_static("\"abc\"");
        let lm = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        let yes = |r: &[(&str, &str)]| not_modified(&h(r), Some(&etag), Some(&lm));
        assert!(yes(&[("if-none-match", "\"x\", W/\"abc\"")]));
        assert!(yes(&[("if-none-match", "*")]));
        assert!(!yes(&[("if-none-match", "\"x\"")]));
        // If-None-Match wins even when the date would match
        assert!(!yes(&[
            ("if-none-match", "\"x\""),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
        ]));
        assert!(yes(&[(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:37 GMT"
        )]));
        assert!(!yes(&[(
            "if-modified-since",
            "Mon, 07 Nov 1994 08:49:37 GMT"
        )]));
        assert!(!yes(&[]));
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("Tue, 01 Dec 2026 11:49:35 GMT"), Some(1796125775));
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date("garbage"), None);
    }
}
