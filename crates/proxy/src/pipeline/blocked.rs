//! Step 5: blocked clients get 418 before any credential work (SPEC 4).
//!
//! The block is looked up by the real client IP (IPv6 per /64) and, for a
//! user + IP block, the user the request claims. Claiming another user's
//! name only ever meets that user's block from this IP. Exempt addresses
//! and trusted intermediaries are never blocked as a whole; a user failing
//! through one is (SPEC 4: behind them, the real client is limited).

use super::deny::Deny;
use crate::security::credential::Presented;
use crate::security::Guard;
use deskgate_policy::bruteforce::Verdict;
use deskgate_policy::IpKey;
use std::net::IpAddr;

pub fn check(g: &Guard, client: IpAddr, exempt: bool, presented: &Presented) -> Result<(), Deny> {
    let user = match presented {
        Presented::Some(c) => c.claimed_user.as_deref(),
        _ => None,
    };
    match g.brute.check(IpKey::of(client), user) {
        Verdict::Open => Ok(()),
        // an exempt address is never blocked as a whole; its users are, one by one
        Verdict::IpBlocked { .. } if exempt => Ok(()),
        Verdict::UserBlocked { .. } | Verdict::IpBlocked { .. } => Err(Deny::Blocked),
    }
}
