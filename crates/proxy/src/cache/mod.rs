//! The in-memory response cache (SPEC 8): bounded by bytes, keyed so that
//! nothing a credential fetched is shared, one upstream fetch per key at a
//! time. The pipeline stage that uses it is `pipeline/cache.rs`; the rules
//! of what may be kept are in `freshness.rs`.
//!
//! A key is the component, the user (authenticated requests only), the
//! forwarded path and query, and for CORS preflights the origin and the
//! requested method and headers. Its 64-bit hash indexes the store, and the
//! full key is kept in the entry and compared on every hit: a hash
//! collision is a miss, never another user's answer. One key holds up to
//! [`MAX_VARIANTS`] answers that differ in their `Vary` headers.

pub mod freshness;

use bytes::Bytes;
use deskgate_config::CacheSettings;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Answers kept per key for different `Vary` values.
pub const MAX_VARIANTS: usize = 8;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Get,
    Preflight,
}

/// A key as the request has it (borrowed: a hit allocates nothing).
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    pub kind: Kind,
    pub component: &'a str,
    /// The authenticated user; `None` for answers anyone may get.
    pub user: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Preflights: `Origin`, `Access-Control-Request-Method`, `-Headers`.
    pub extra: [&'a str; 3],
}

/// A key kept past the request it came from (a fetch in progress).
#[derive(Debug)]
pub struct KeyOwned {
    kind: Kind,
    component: Box<str>,
    user: Option<Box<str>>,
    path: Box<str>,
    query: Option<Box<str>>,
    extra: [Box<str>; 3],
}

impl KeyRef<'_> {
    fn matches(&self, k: &KeyOwned) -> bool {
        self.kind == k.kind
            && self.component == &*k.component
            && self.user == k.user.as_deref()
            && self.path == &*k.path
            && self.query == k.query.as_deref()
            && self.extra.iter().zip(&k.extra).all(|(a, b)| *a == &**b)
    }

    pub fn owned(self) -> KeyOwned {
        KeyOwned {
            kind: self.kind,
            component: self.component.into(),
            user: self.user.map(Into::into),
            path: self.path.into(),
            query: self.query.map(Into::into),
            extra: self.extra.map(Into::into),
        }
    }

    fn size(&self) -> u64 {
        (self.component.len()
            + self.user.map_or(0, str::len)
            + self.path.len()
            + self.query.map_or(0, str::len)
            + self.extra.iter().map(|e| e.len()).sum::<usize>()) as u64
    }
}

impl KeyOwned {
    pub fn as_key(&self) -> KeyRef<'_> {
        KeyRef {
            kind: self.kind,
            component: &self.component,
            user: self.user.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            extra: [&self.extra[0], &self.extra[1], &self.extra[2]],
        }
    }
}

/// One stored answer.
#[derive(Debug)]
pub struct Stored {
    pub status: StatusCode,
    /// End-to-end headers as the upstream sent them (no hop-by-hop, no `Age`).
    pub headers: HeaderMap,
    pub body: Bytes,
    vary: Vec<HeaderName>,
    vary_values: Vec<Option<HeaderValue>>,
    stored_at: Instant,
    /// The upstream's own `Age` when it arrived.
    initial_age: Duration,
    fresh_for: Duration,
    weight: u64,
}

/// Bytes counted for an entry besides its body and headers.
const OVERHEAD: u64 = 256;

impl Stored {
    /// `fresh_for` comes from `freshness::storable`; `request` is the
    /// request that fetched it (its `Vary` values are recorded).
    pub fn new(
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        request: &HeaderMap,
        fresh_for: Duration,
    ) -> Stored {
        let initial_age = freshness::age_of(&headers);
        headers.remove(http::header::AGE);
        let vary = freshness::vary_names(&headers).unwrap_or_default();
        let vary_values = freshness::vary_values(&vary, request);
        let weight = OVERHEAD
            + body.len() as u64
            + headers
                .iter()
                .map(|(k, v)| (k.as_str().len() + v.len() + 32) as u64)
                .sum::<u64>();
        Stored {
            status,
            headers,
            body,
            vary,
            vary_values,
            stored_at: Instant::now(),
            initial_age,
            fresh_for,
            weight,
        }
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) < self.fresh_for
    }

    /// `Age` to send: the upstream's, plus the time held here.
    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(http::header::ETAG)
    }

    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(http::header::LAST_MODIFIED)
    }

    pub fn has_validator(&self) -> bool {
        self.etag().is_some() || self.last_modified().is_some()
    }

    /// Was it fetched for the same `Vary` values as `req` has?
    pub fn serves(&self, req: &HeaderMap) -> bool {
        freshness::vary_matches(&self.vary, &self.vary_values, req)
    }

    /// The same body, with the headers of the upstream's 304 laid over the
    /// stored ones and a new lifetime (RFC 9111 4.3.4).
    pub fn refreshed(&self, update: &HeaderMap, fresh_for: Duration) -> Stored {
        let mut headers = self.headers.clone();
        for name in update.keys() {
            if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
                continue;
            }
            headers.remove(name);
            for v in update.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        headers.remove(http::header::AGE);
        Stored {
            status: self.status,
            body: self.body.clone(),
            vary: self.vary.clone(),
            vary_values: self.vary_values.clone(),
            stored_at: Instant::now(),
            initial_age: freshness::age_of(update),
            fresh_for,
            weight: self.weight,
            headers,
        }
    }
}

struct Entry {
    key: KeyOwned,
    variants: Vec<Arc<Stored>>,
    weight: u64,
    /// The upstream's last answer for this key could not be kept: until
    /// then, requests go straight through, without waiting on each other
    /// ("hit for pass").
    pass_until: Option<Instant>,
}

/// How long a key whose answer could not be kept is passed straight through.
pub const PASS_FOR: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct ByWeight;

impl quick_cache::Weighter<u64, Arc<Entry>> for ByWeight {
    fn weight(&self, _key: &u64, e: &Arc<Entry>) -> u64 {
        e.weight.max(1)
    }
}

/// What the store holds for a request.
pub enum Found {
    Fresh(Arc<Stored>),
    /// Kept but out of date: usable after the upstream confirms it (304).
    Stale(Arc<Stored>),
    /// Recently found not cacheable: forward without a fetch of one's own.
    Pass,
    Missing,
}

/// The result one fetch hands to the requests that waited for it.
type Outcome = Option<Arc<Stored>>;

struct Flight {
    done: watch::Sender<Option<Outcome>>,
}

/// The one request fetching a key; the others wait on it. Dropping it
/// without [`Leader::finish`] (an error, a client gone) lets them go to the
/// upstream themselves.
pub struct Leader<'a> {
    cache: &'a Cache,
    hash: u64,
    /// `None` for a fetch nobody waits on ([`Cache::alone`]).
    flight: Option<Arc<Flight>>,
}

impl<'a> Leader<'a> {
    /// The cache the fetch is for.
    pub fn cache(&self) -> &'a Cache {
        self.cache
    }

    pub fn finish(self, outcome: Outcome) {
        if let Some(flight) = &self.flight {
            let _ = flight.done.send(Some(outcome));
        }
        // Drop removes the flight
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        flight.done.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(None);
                true
            } else {
                false
            }
        });
        if let Ok(mut f) = self.cache.flights.lock() {
            if f.get(&self.hash).is_some_and(|x| Arc::ptr_eq(x, &flight)) {
                f.remove(&self.hash);
            }
        }
    }
}

pub enum Join<'a> {
    Leader(Leader<'a>),
    /// Resolves to what the leader got (`None`: fetch yourself).
    Follower(watch::Receiver<Option<Outcome>>),
}

/// Counters for `/status`.
#[derive(Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub revalidated: AtomicU64,
    pub collapsed: AtomicU64,
    pub stored: AtomicU64,
}

pub struct Cache {
    pub settings: CacheSettings,
    entries: quick_cache::sync::Cache<u64, Arc<Entry>, ByWeight>,
    flights: Mutex<HashMap<u64, Arc<Flight>>>,
    hasher: std::collections::hash_map::RandomState,
    pub stats: Stats,
    /// An answer for one user was ever kept (since the last clear): until
    /// then, authenticated requests (most of them REST calls that are never
    /// kept) skip the lookup.
    user_stored: std::sync::atomic::AtomicBool,
}

impl Cache {
    pub fn new(settings: &CacheSettings) -> Cache {
        // each shard must hold several of the largest objects, or large
        // answers would push each other out long before the cache is full
        let per_shard = settings.max_object.saturating_mul(4).max(1);
        let shards = (settings.max_bytes / per_shard).clamp(1, 16) as usize;
        let shards = if shards.is_power_of_two() {
            shards
        } else {
            shards.next_power_of_two() / 2
        };
        let estimated = (settings.max_bytes / 8192).clamp(64, 1 << 20) as usize;
        let opts = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated)
            .weight_capacity(settings.max_bytes)
            .shards(shards)
            .build();
        let entries = match opts {
            Ok(o) => quick_cache::sync::Cache::with_options(
                o,
                ByWeight,
                Default::default(),
                Default::default(),
            ),
            Err(_) => {
                quick_cache::sync::Cache::with_weighter(estimated, settings.max_bytes, ByWeight)
            }
        };
        Cache {
            settings: settings.clone(),
            entries,
            flights: Mutex::new(HashMap::new()),
            hasher: Default::default(),
            stats: Stats::default(),
            user_stored: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn hash(&self, k: &KeyRef<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        k.kind.hash(&mut h);
        k.component.hash(&mut h);
        k.user.hash(&mut h);
        k.path.hash(&mut h);
        k.query.hash(&mut h);
        k.extra.hash(&mut h);
        h.finish()
    }

    /// The answer stored for this key whose `Vary` values match `req`.
    pub fn lookup(&self, k: &KeyRef<'_>, hash: u64, req: &HeaderMap) -> Found {
        if k.user.is_some() && !self.user_stored.load(std::sync::atomic::Ordering::Relaxed) {
            return Found::Missing;
        }
        let Some(e) = self.entries.get(&hash) else {
            return Found::Missing;
        };
        if !k.matches(&e.key) {
            return Found::Missing;
        }
        if e.pass_until.is_some_and(|t| Instant::now() < t) {
            return Found::Pass;
        }
        match e.variants.iter().find(|s| s.serves(req)) {
            Some(s) if s.is_fresh(Instant::now()) => Found::Fresh(s.clone()),
            Some(s) => Found::Stale(s.clone()),
            None => Found::Missing,
        }
    }

    /// A fetch of one's own, that nobody waits for.
    pub fn alone(&self, hash: u64) -> Leader<'_> {
        // nothing to tell anyone: no channel, no entry in the flights
        Leader {
            cache: self,
            hash,
            flight: None,
        }
    }

    /// Become the one fetching `hash`, or wait for the one who is.
    pub fn join(&self, hash: u64) -> Join<'_> {
        let Ok(mut f) = self.flights.lock() else {
            // a poisoned lock: no sharing, every request fetches for itself
            return Join::Leader(self.alone(hash));
        };
        if let Some(flight) = f.get(&hash) {
            self.stats.collapsed.fetch_add(1, Ordering::Relaxed);
            return Join::Follower(flight.done.subscribe());
        }
        let (done, _) = watch::channel(None);
        let flight = Arc::new(Flight { done });
        f.insert(hash, flight.clone());
        Join::Leader(Leader {
            cache: self,
            hash,
            flight: Some(flight),
        })
    }

    /// Keeps `s` under the key, beside the answers for other `Vary` values,
    /// unless it is larger than `max_object`. Returns it shared either way.
    pub fn store(&self, k: &KeyRef<'_>, hash: u64, s: Stored) -> Arc<Stored> {
        let s = Arc::new(s);
        if s.weight > self.settings.max_object {
            return s;
        }
        if k.user.is_some() {
            self.user_stored
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let mut variants = vec![s.clone()];
        if let Some(old) = self.entries.get(&hash) {
            if k.matches(&old.key) {
                variants.extend(
                    old.variants
                        .iter()
                        .filter(|o| o.vary == s.vary && o.vary_values != s.vary_values)
                        .take(MAX_VARIANTS - 1)
                        .cloned(),
                );
            }
        }
        let weight = k.size() + variants.iter().map(|v| v.weight).sum::<u64>();
        self.entries.insert(
            hash,
            Arc::new(Entry {
                key: k.owned(),
                variants,
                weight,
                pass_until: None,
            }),
        );
        self.stats.stored.fetch_add(1, Ordering::Relaxed);
        s
    }

    /// The upstream answered this key with something that cannot be kept:
    /// for [`PASS_FOR`], its requests go straight through (concurrent ones
    /// no longer wait for each other's answers).
    pub fn mark_pass(&self, k: &KeyRef<'_>, hash: u64) {
        if k.user.is_some() {
            self.user_stored
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.entries.insert(
            hash,
            Arc::new(Entry {
                key: k.owned(),
                variants: Vec::new(),
                weight: k.size() + OVERHEAD,
                pass_until: Some(Instant::now() + PASS_FOR),
            }),
        );
    }

    /// Forgets everything; returns how many keys were held.
    pub fn clear(&self) -> usize {
        let n = self.entries.len();
        // before the clear: an answer kept meanwhile sets it again
        self.user_stored
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.entries.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held (bodies, headers and keys).
    pub fn bytes(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_bytes: u64, max_object: u64) -> CacheSettings {
        CacheSettings {
            max_bytes,
            max_object,
            ..CacheSettings::default()
        }
    }

    fn key<'a>(user: Option<&'a str>, path: &'a str) -> KeyRef<'a> {
        KeyRef {
            kind: Kind::Get,
            component: "finesse",
            user,
            path,
            query: None,
            extra: ["", "", ""],
        }
    }

    fn answer(body: &'static [u8], vary: Option<&'static str>, req: &HeaderMap) -> Stored {
        let mut h = HeaderMap::new();
        if let Some(v) = vary {
            h.insert(http::header::VARY, HeaderValue::from_static(v));
        }
        Stored::new(
            StatusCode::OK,
            h,
            Bytes::from_static(body),
            req,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn users_never_see_each_others_answers() {
        let c = Cache::new(&settings(1 << 20, 1 << 16));
        let none = HeaderMap::new();
        let a = key(Some("1001"), "/finesse/api/User/1001");
        let b = key(Some("1002"), "/finesse/api/User/1001");
        let anyone = key(None, "/finesse/api/User/1001");
        c.store(&a, c.hash(&a), answer(b"mine", None, &none));
        assert!(matches!(c.lookup(&a, c.hash(&a), &none), Found::Fresh(_)));
        assert!(matches!(c.lookup(&b, c.hash(&b), &none), Found::Missing));
        assert!(matches!(
            c.lookup(&anyone, c.hash(&anyone), &none),
            Found::Missing
        ));
        // even a forced hash collision is a miss, not a leak
        assert!(matches!(c.lookup(&b, c.hash(&a), &none), Found::Missing));
    }

    #[test]
    fn vary_keeps_one_answer_per_value() {
        let c = Cache::new(&settings(1 << 20, 1 << 16));
        let k = key(None, "/desktop/js/app.js");
        let mut gz = HeaderMap::new();
        gz.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
        let plain = HeaderMap::new();
        c.store(
            &k,
            c.hash(&k),
            answer(b"zipped", Some("Accept-Encoding"), &gz),
        );
        assert!(matches!(c.lookup(&k, c.hash(&k), &plain), Found::Missing));
        c.store(
            &k,
            c.hash(&k),
            answer(b"plain", Some("Accept-Encoding"), &plain),
        );
        let body = |h: &HeaderMap| match c.lookup(&k, c.hash(&k), h) {
            Found::Fresh(s) => s.body.clone(),
            _ => Bytes::new(),
        };
        assert_eq!(body(&gz), Bytes::from_static(b"zipped"));
        assert_eq!(body(&plain), Bytes::from_static(b"plain"));
    }

    #[test]
    fn eviction_keeps_the_total_under_the_bound() {
        let c = Cache::new(&settings(64 * 1024, 16 * 1024));
        let none = HeaderMap::new();
        static BODY: [u8; 4000] = [b'x'; 4000];
        let paths: Vec<String> = (0..100).map(|i| format!("/f/{i}")).collect();
        for p in &paths {
            let k = key(None, p);
            c.store(&k, c.hash(&k), answer(&BODY, None, &none));
            assert!(c.bytes() <= 64 * 1024, "{} bytes held", c.bytes());
        }
        assert!(c.len() >= 10 && c.len() < 16, "{} entries", c.len());
        // an answer above max_object is not kept
        static BIG: [u8; 20_000] = [b'y'; 20_000];
        let k = key(None, "/big");
        c.store(&k, c.hash(&k), answer(&BIG, None, &none));
        assert!(matches!(c.lookup(&k, c.hash(&k), &none), Found::Missing));
        let n = c.len();
        assert_eq!(c.clear(), n);
        assert!(c.is_empty());
    }

    #[test]
    fn a_key_found_uncacheable_passes_until_it_expires() {
        let c = Cache::new(&settings(1 << 20, 1 << 16));
        let none = HeaderMap::new();
        let k = key(Some("1001"), "/finesse/api/User/1001");
        c.mark_pass(&k, c.hash(&k));
        assert!(matches!(c.lookup(&k, c.hash(&k), &none), Found::Pass));
        let other = key(Some("1002"), "/finesse/api/User/1001");
        assert!(matches!(
            c.lookup(&other, c.hash(&other), &none),
            Found::Missing
        ));
        // an answer that can be kept replaces the mark
        c.store(&k, c.hash(&k), answer(b"x", None, &none));
        assert!(matches!(c.lookup(&k, c.hash(&k), &none), Found::Fresh(_)));
    }

    #[test]
    fn user_answers_are_found_once_one_was_kept_and_not_after_a_clear() {
        let c = Cache::new(&settings(1 << 20, 1 << 16));
        let none = HeaderMap::new();
        let k = key(Some("1001"), "/finesse/api/User/1001");
        assert!(matches!(c.lookup(&k, c.hash(&k), &none), Found::Missing));
        c.store(&k, c.hash(&k), answer(b"x", None, &none));
        assert!(matches!(c.lookup(&k, c.hash(&k), &none), Found::Fresh(_)));
        assert_eq!(c.clear(), 1);
        assert!(matches!(c.lookup(&k, c.hash(&k), &none), Found::Missing));
        c.store(&k, c.hash(&k), answer(b"y", None, &none));
        assert!(matches!(c.lookup(&k, c.hash(&k), &none), Found::Fresh(_)));
    }

    #[tokio::test]
    async fn one_fetch_per_key_and_followers_get_its_answer() {
        let c = Cache::new(&settings(1 << 20, 1 << 16));
        let k = key(None, "/desktop/js/app.js");
        let h = c.hash(&k);
        let Join::Leader(lead) = c.join(h) else {
            panic!("first is the leader")
        };
        let Join::Follower(mut rx) = c.join(h) else {
            panic!("second waits")
        };
        let s = c.store(&k, h, answer(b"x", None, &HeaderMap::new()));
        lead.finish(Some(s));
        let got = rx.wait_for(|v| v.is_some()).await.map(|v| v.clone());
        assert!(matches!(got, Ok(Some(Some(_)))));
        // the flight is over: the next one leads again
        assert!(matches!(c.join(h), Join::Leader(_)));
        // a leader that gives up frees its followers
        let lead = c.join(h);
        let Join::Follower(mut rx) = c.join(h) else {
            panic!("waits")
        };
        drop(lead);
        let got = rx.wait_for(|v| v.is_some()).await.map(|v| v.clone());
        assert!(matches!(got, Ok(Some(None))));
    }
}
