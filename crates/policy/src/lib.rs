//! deskgate's edge-security policy (SPEC 3 and 4), with plain inputs.
//!
//! Nothing here does I/O or knows HTTP: the pipeline stages in
//! `deskgate-proxy` ask these types questions ("is this client blocked?",
//! "may this key spend a token?") and tell them what happened ("this
//! credential was rejected"). Every type takes a [`Clock`], so the unit
//! tests move time by hand instead of sleeping.
#![forbid(unsafe_code)]

pub mod bruteforce;
pub mod clock;
pub mod counters;
pub mod credentials;
pub mod ipkey;
pub mod proof;
pub mod rate;

pub use clock::Clock;
pub use ipkey::IpKey;
