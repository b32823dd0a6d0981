//! What the edge-security stages cost a request whose credential is
//! already cached: reading the Authorization header (base64, keyed hash),
//! the blocked-client check, the cache lookup and the user's token bucket.
//! `cargo run --release -p deskgate-proxy --example auth_cost`

use deskgate_policy::bruteforce::{BruteForce, BruteForceConfig};
use deskgate_policy::credentials::{CacheConfig, CredentialCache, Hasher, Lookup};
use deskgate_policy::rate::{Class, Key, Rate};
use deskgate_policy::{Clock, IpKey};
use deskgate_proxy::security::credential::{presented, Presented};
use std::time::Instant;

fn main() {
    let clock = Clock::system();
    let hasher = Hasher::random().expect("rng");
    let cache = CredentialCache::new(CacheConfig::default(), clock.clone());
    let brute = BruteForce::new(BruteForceConfig::default(), clock.clone());
    // a bucket that never runs dry, so every iteration does the full check
    let class = Class::new(
        Rate {
            per_second: 1_000_000_000,
            burst: 1_000_000_000,
        },
        10,
        clock.clone(),
    );
    let mut h = http::HeaderMap::new();
    h.insert(
        "authorization",
        "Basic MTAwMTpkZXNrZ2F0ZS1kZW1v".parse().expect("value"),
    );
    let Presented::Some(c) = presented(&h, false, Some((&hasher, "finesse1"))) else {
        panic!("not read");
    };
    cache.accept(c.key, "1001");
    let ip = IpKey::of("192.0.2.7".parse().expect("ip"));
    let n = 2_000_000u32;
    for (label, work) in [
        ("read credential (base64 + HMAC-SHA256)", 0),
        ("+ blocked check + cache lookup", 1),
        ("+ user token bucket", 2),
    ] {
        let t = Instant::now();
        let mut hits = 0u32;
        for _ in 0..n {
            let Presented::Some(c) =
                presented(std::hint::black_box(&h), false, Some((&hasher, "finesse1")))
            else {
                continue;
            };
            if work >= 1 {
                let user = c.claimed_user.as_deref();
                let _ = std::hint::black_box(brute.check(ip, user));
                if let Lookup::Valid { entry, .. } = cache.lookup(&c.key) {
                    hits += 1;
                    if work >= 2 {
                        let _ =
                            std::hint::black_box(class.check(Key::User(hasher.user(&entry.user))));
                    }
                }
            }
        }
        let per = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!("{label:<44} {per:>7.0} ns per request ({hits} cache hits)");
    }
}
