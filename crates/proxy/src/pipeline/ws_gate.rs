//! Step 9: the WebSocket gate (SPEC 3) for `/ws/` upgrades and the
//! long-poll transports that carry no Authorization header (BOSH, socket.io
//! polling). Browsers cannot authenticate these themselves, so one of three
//! proofs is needed, each of which can be switched off:
//!
//! - (b) a credential: an `auth.basic.` / `auth.bearer.` subprotocol (or an
//!   Authorization header), checked like step 8;
//! - (c) a valid session cookie, set by deskgate on authenticated answers;
//! - (a) the client IP made an authenticated request within the window.
//!
//! `auth.*` subprotocols never reach the upstream. A denial is 401 plus a
//! security-log line; concurrent WebSockets are capped per user (b, c) and
//! per IP (a).

use super::auth::{self, Context, Known};
use super::deny::Deny;
use super::seclog::{Event, Kind};
use crate::listen::ConnInfo;
use crate::security::credential::Presented;
use crate::security::Guard;
use deskgate_policy::counters::Slot;
use deskgate_policy::IpKey;
use http::HeaderMap;
use std::sync::Arc;

/// The slot an open WebSocket holds under its cap.
pub enum WsSlot {
    User(Slot<u64>),
    Ip(Slot<IpKey>),
}

pub struct Admitted {
    pub user: Option<Arc<str>>,
    pub slot: Option<WsSlot>,
}

pub async fn check(
    conn: &Arc<ConnInfo>,
    headers: &HeaderMap,
    presented: &Presented,
    known: Known,
    upgrade: bool,
    cx: &Context<'_>,
) -> Result<Admitted, Deny> {
    let g = &conn.shared.guard;
    let user = if !matches!(presented, Presented::None) {
        match auth::verify(conn, presented, known, cx).await {
            Ok(v) => Some(v.user),
            Err(d @ Deny::AuthUnavailable) => return Err(d),
            Err(Deny::Unauthorized(reason)) => return Err(deny(g, cx, reason)),
            Err(d) => return Err(d),
        }
    } else if let Some((u, _)) = g.cookie_user(g.checker(cx.component), headers) {
        Some(Arc::from(u))
    } else if g.recently_authenticated(g.checker(cx.component), cx.client) {
        None
    } else {
        return Err(deny(g, cx, "no_proof"));
    };
    let ws = &g.settings.websocket;
    let slot = match (&user, upgrade, cx.exempt) {
        (_, false, _) => None,
        (Some(u), true, _) => match g.ws_users.try_take(g.user_key(u), ws.per_user) {
            Some(s) => Some(WsSlot::User(s)),
            None => return Err(capped(g, cx, Some(u), "websocket_cap_user")),
        },
        (None, true, true) => None,
        (None, true, false) => match g.ws_ips.try_take(IpKey::of(cx.client), ws.per_ip) {
            Some(s) => Some(WsSlot::Ip(s)),
            None => return Err(capped(g, cx, None, "websocket_cap_ip")),
        },
    };
    Ok(Admitted { user, slot })
}

fn deny(g: &Guard, cx: &Context<'_>, reason: &'static str) -> Deny {
    let mut e = Event::new(Kind::WebSocketDenied, reason);
    e.client_ip = Some(cx.client);
    e.route = Some(cx.route);
    e.request_id = Some(cx.request_id);
    g.log.write(e);
    Deny::WebSocketDenied(reason)
}

fn capped(g: &Guard, cx: &Context<'_>, user: Option<&str>, reason: &'static str) -> Deny {
    let mut e = Event::new(Kind::WebSocketDenied, reason);
    e.client_ip = Some(cx.client);
    e.user = user;
    e.route = Some(cx.route);
    e.request_id = Some(cx.request_id);
    g.log.write(e);
    Deny::WebSocketCap
}
