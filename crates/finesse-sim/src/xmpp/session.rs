//! One client's XMPP session over RFC 7395 framing, as a state machine with
//! no I/O: a parsed frame in, the frames to send and what happened out.
//!
//! open -> SASL PLAIN -> open (restart) -> bind -> stanzas: presence,
//! XEP-0199 pings, messages between users, and `close`.

use crate::xml::{escape, Element};
use base64::Engine;

pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_PING: &str = "urn:xmpp:ping";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// Wrong passwords tolerated on one stream before it is closed.
const MAX_AUTH_FAILURES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `<open/>` (first, or the restart after SASL).
    Open,
    Auth,
    Bind,
    Ready,
    Closed,
}

/// What the caller must do after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    Send(String),
    /// The session is bound: join the notification hub as this user.
    Bound(String),
    /// Hand `frame` to every session of user `to`.
    Deliver {
        to: String,
        frame: String,
    },
    /// Close the WebSocket after sending what came before.
    Close,
}

pub struct Session {
    phase: Phase,
    domain: String,
    stream_id: String,
    user: Option<String>,
    jid: Option<String>,
    auth_failures: u32,
}

impl Session {
    pub fn new(domain: &str, stream_id: &str) -> Session {
        Session {
            phase: Phase::Open,
            domain: domain.to_string(),
            stream_id: stream_id.to_string(),
            user: None,
            jid: None,
            auth_failures: 0,
        }
    }

    /// The bound JID, once bound.
    pub fn jid(&self) -> Option<&str> {
        self.jid.as_deref()
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Handles one frame. `check` answers whether a user id and password
    /// are valid.
    pub fn on_frame(&mut self, el: &Element, check: &dyn Fn(&str, &str) -> bool) -> Vec<Effect> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        if el.name == "close" && el.attr("xmlns") == Some(NS_FRAMING) {
            self.phase = Phase::Closed;
            return vec![Effect::Send(close_frame()), Effect::Close];
        }
        match self.phase {
            Phase::Open => self.on_open(el),
            Phase::Auth => self.on_auth(el, check),
            Phase::Bind => self.on_bind(el),
            Phase::Ready => self.on_stanza(el),
            Phase::Closed => Vec::new(),
        }
    }

    fn on_open(&mut self, el: &Element) -> Vec<Effect> {
        if el.name != "open" || el.attr("xmlns") != Some(NS_FRAMING) {
            return self.stream_error("invalid-namespace");
        }
        if let Some(to) = el.attr("to") {
            if !to.eq_ignore_ascii_case(&self.domain) {
                return self.stream_error("host-unknown");
            }
        }
        let open = format!(
            r#"<open xmlns="{NS_FRAMING}" from="{}" id="{}" version="1.0" xml:lang="en"/>"#,
            escape(&self.domain),
            escape(&self.stream_id)
        );
        let features = if self.user.is_none() {
            self.phase = Phase::Auth;
            format!(
                r#"<stream:features xmlns:stream="{NS_STREAMS}"><mechanisms xmlns="{NS_SASL}"><mechanism>PLAIN</mechanism></mechanisms></stream:features>"#
            )
        } else {
            self.phase = Phase::Bind;
            format!(
                r#"<stream:features xmlns:stream="{NS_STREAMS}"><bind xmlns="{NS_BIND}"/></stream:features>"#
            )
        };
        vec![Effect::Send(open), Effect::Send(features)]
    }

    fn on_auth(&mut self, el: &Element, check: &dyn Fn(&str, &str) -> bool) -> Vec<Effect> {
        if el.name != "auth" || el.attr("xmlns") != Some(NS_SASL) {
            return self.stream_error("not-authorized");
        }
        if el.attr("mechanism") != Some("PLAIN") {
            return vec![Effect::Send(sasl_failure("invalid-mechanism"))];
        }
        let condition = match plain_credentials(el.text.trim()) {
            Some((authz, user, _)) if !authz.is_empty() && authz != user => "invalid-authzid",
            Some((_, user, password)) if check(&user, &password) => {
                self.phase = Phase::Open;
                self.user = Some(user);
                return vec![Effect::Send(format!(r#"<success xmlns="{NS_SASL}"/>"#))];
            }
            Some(_) => "not-authorized",
            None => "malformed-request",
        };
        // every refused attempt counts, malformed ones too
        self.auth_failures += 1;
        let mut out = vec![Effect::Send(sasl_failure(condition))];
        if self.auth_failures >= MAX_AUTH_FAILURES {
            self.phase = Phase::Closed;
            out.push(Effect::Send(close_frame()));
            out.push(Effect::Close);
        }
        out
    }

    fn on_bind(&mut self, el: &Element) -> Vec<Effect> {
        let bind = el
            .child("bind")
            .filter(|b| b.attr("xmlns") == Some(NS_BIND));
        let (Some(bind), Some("set")) = (bind, el.attr("type")) else {
            return self.stream_error("not-authorized");
        };
        let resource = match bind.child_text("resource") {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => format!("desktop-{}", self.stream_id),
        };
        let user = self.user.clone().unwrap_or_default().to_ascii_lowercase();
        let jid = format!("{user}@{}/{resource}", self.domain);
        let id = el.attr("id").unwrap_or("");
        let answer = format!(
            r#"<iq xmlns="jabber:client" type="result" id="{}"><bind xmlns="{NS_BIND}"><jid>{}</jid></bind></iq>"#,
            escape(id),
            escape(&jid)
        );
        self.jid = Some(jid);
        self.phase = Phase::Ready;
        // events flow only once the client has its JID
        vec![
            Effect::Send(answer),
            Effect::Bound(self.user.clone().unwrap_or_default()),
        ]
    }

    fn on_stanza(&mut self, el: &Element) -> Vec<Effect> {
        let jid = self.jid.clone().unwrap_or_default();
        match el.name.as_str() {
            "iq" => self.on_iq(el, &jid),
            "presence" => Vec::new(),
            "message" => {
                let Some(to) = el.attr("to") else {
                    return Vec::new();
                };
                let (bare, domain) = match to.split('/').next().and_then(|b| b.split_once('@')) {
                    Some((u, d)) => (u.to_ascii_lowercase(), d),
                    None => return Vec::new(),
                };
                if !domain.eq_ignore_ascii_case(&self.domain) {
                    return Vec::new();
                }
                let body = el.child_text("body").unwrap_or("");
                let frame = format!(
                    r#"<message xmlns="jabber:client" from="{}" to="{}" type="{}"><body>{}</body></message>"#,
                    escape(&jid),
                    escape(to),
                    escape(el.attr("type").unwrap_or("chat")),
                    escape(body)
                );
                vec![Effect::Deliver { to: bare, frame }]
            }
            _ => self.stream_error("unsupported-stanza-type"),
        }
    }

    fn on_iq(&mut self, el: &Element, jid: &str) -> Vec<Effect> {
        let id = escape(el.attr("id").unwrap_or("")).into_owned();
        let kind = el.attr("type").unwrap_or("");
        if kind == "result" || kind == "error" {
            return Vec::new();
        }
        let from = escape(el.attr("to").unwrap_or(&self.domain)).into_owned();
        let jid = escape(jid);
        let is_ping = el
            .children
            .iter()
            .any(|c| c.name == "ping" && c.attr("xmlns") == Some(NS_PING));
        if kind == "get" && is_ping {
            return vec![Effect::Send(format!(
                r#"<iq xmlns="jabber:client" type="result" id="{id}" from="{from}" to="{jid}"/>"#
            ))];
        }
        vec![Effect::Send(format!(
            r#"<iq xmlns="jabber:client" type="error" id="{id}" from="{from}" to="{jid}"><error type="cancel"><service-unavailable xmlns="{NS_STANZAS}"/></error></iq>"#
        ))]
    }

    fn stream_error(&mut self, condition: &str) -> Vec<Effect> {
        self.phase = Phase::Closed;
        stream_error_frames(condition)
    }
}

/// A stream error, the close frame, and the end of the session.
pub fn stream_error_frames(condition: &str) -> Vec<Effect> {
    vec![
        Effect::Send(format!(
            r#"<stream:error xmlns:stream="{NS_STREAMS}"><{condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>"#
        )),
        Effect::Send(close_frame()),
        Effect::Close,
    ]
}

pub fn close_frame() -> String {
    format!(r#"<close xmlns="{NS_FRAMING}"/>"#)
}

fn sasl_failure(condition: &str) -> String {
    format!(r#"<failure xmlns="{NS_SASL}"><{condition}/></failure>"#)
}

/// `[authzid] NUL authcid NUL password`, base64: (authzid, user, password).
fn plain_credentials(b64: &str) -> Option<(String, String, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('\0');
    let (authz, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    Some((authz.to_string(), user.to_string(), password.to_string()))
}

/// A pubsub event frame for `user`, carrying `update` (an `<Update>`
/// document, escaped as text the way Finesse sends it).
pub fn pubsub_event(domain: &str, user: &str, node: &str, item_id: &str, update: &str) -> String {
    format!(
        r#"<message xmlns="jabber:client" from="pubsub.{d}" to="{u}@{d}" id="{i}"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="{n}"><item id="{i}"><notification xmlns="http://jabber.org/protocol/pubsub">{x}</notification></item></items></event></message>"#,
        d = escape(domain),
        u = escape(&user.to_ascii_lowercase()),
        n = escape(node),
        i = escape(item_id),
        x = escape(update),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    fn frame(s: &str) -> Element {
        parse(s).expect("frame")
    }
    fn sent(effects: &[Effect]) -> Vec<&str> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }
    fn ok(u: &str, p: &str) -> bool {
        u == "1001" && p == "pw"
    }
    const OPEN: &str =
        r#"<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="cc.test" version="1.0"/>"#;

    fn signed_in() -> Session {
        let mut s = Session::new("cc.test", "s1");
        s.on_frame(&frame(OPEN), &ok);
        let auth = format!(
            r#"<auth xmlns="{NS_SASL}" mechanism="PLAIN">{}</auth>"#,
            base64::engine::general_purpose::STANDARD.encode("\x001001\x00pw")
        );
        let e = s.on_frame(&frame(&auth), &ok);
        assert!(sent(&e)[0].starts_with("<success"), "{e:?}");
        let e = s.on_frame(&frame(OPEN), &ok);
        assert!(sent(&e)[1].contains(NS_BIND));
        let e = s.on_frame(
            &frame(r#"<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>desk</resource></bind></iq>"#),
            &ok,
        );
        assert!(sent(&e)[0].contains("<jid>1001@cc.test/desk</jid>"));
        assert!(e.contains(&Effect::Bound("1001".into())), "{e:?}");
        s
    }

    #[test]
    fn an_authzid_other_than_the_user_and_malformed_auth_are_refused_and_counted() {
        let mut s = Session::new("cc.test", "s1");
        s.on_frame(&frame(OPEN), &ok);
        let other = format!(
            r#"<auth xmlns="{NS_SASL}" mechanism="PLAIN">{}</auth>"#,
            base64::engine::general_purpose::STANDARD.encode("admin\x001001\x00pw")
        );
        let e = s.on_frame(&frame(&other), &ok);
        assert!(sent(&e)[0].contains("invalid-authzid"), "{e:?}");
        let garbage = format!(r#"<auth xmlns="{NS_SASL}" mechanism="PLAIN">!!!</auth>"#);
        let e = s.on_frame(&frame(&garbage), &ok);
        assert!(sent(&e)[0].contains("malformed-request"));
        let e = s.on_frame(&frame(&garbage), &ok);
        assert_eq!(e.last(), Some(&Effect::Close), "the third refusal closes");
    }

    #[test]
    fn full_login_then_ping() {
        let mut s = signed_in();
        assert_eq!(s.jid(), Some("1001@cc.test/desk"));
        let e = s.on_frame(
            &frame(r#"<iq type="get" id="p1" to="cc.test"><ping xmlns="urn:xmpp:ping"/></iq>"#),
            &ok,
        );
        let reply = frame(sent(&e)[0]);
        assert_eq!(reply.attr("type"), Some("result"));
        assert_eq!(reply.attr("id"), Some("p1"));
    }

    #[test]
    fn first_open_offers_plain_and_wrong_host_is_an_error() {
        let mut s = Session::new("cc.test", "s1");
        let e = s.on_frame(&frame(OPEN), &ok);
        assert!(sent(&e)[1].contains("<mechanism>PLAIN</mechanism>"));
        let mut s = Session::new("cc.test", "s1");
        let e = s.on_frame(
            &frame(r#"<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="other.test"/>"#),
            &ok,
        );
        assert!(sent(&e)[0].contains("host-unknown"));
        assert_eq!(e.last(), Some(&Effect::Close));
    }

    #[test]
    fn wrong_passwords_fail_and_the_third_closes() {
        let mut s = Session::new("cc.test", "s1");
        s.on_frame(&frame(OPEN), &ok);
        let bad = format!(
            r#"<auth xmlns="{NS_SASL}" mechanism="PLAIN">{}</auth>"#,
            base64::engine::general_purpose::STANDARD.encode("\x001001\x00nope")
        );
        for _ in 0..2 {
            let e = s.on_frame(&frame(&bad), &ok);
            assert!(sent(&e)[0].contains("not-authorized"));
            assert!(!e.contains(&Effect::Close));
        }
        let e = s.on_frame(&frame(&bad), &ok);
        assert_eq!(e.last(), Some(&Effect::Close));
        assert!(s.is_closed());
    }

    #[test]
    fn stanzas_before_auth_end_the_stream() {
        let mut s = Session::new("cc.test", "s1");
        s.on_frame(&frame(OPEN), &ok);
        let e = s.on_frame(
            &frame(r#"<message to="x@cc.test"><body>hi</body></message>"#),
            &ok,
        );
        assert_eq!(e.last(), Some(&Effect::Close));
    }

    #[test]
    fn messages_are_delivered_to_the_bare_user_and_unknown_iqs_get_errors() {
        let mut s = signed_in();
        let e = s.on_frame(
            &frame(r#"<message to="1002@CC.test/x" type="chat"><body>a&lt;b</body></message>"#),
            &ok,
        );
        match &e[..] {
            [Effect::Deliver { to, frame: f }] => {
                assert_eq!(to, "1002");
                assert!(f.contains(r#"from="1001@cc.test/desk""#));
                assert!(f.contains("<body>a&lt;b</body>"));
            }
            other => panic!("{other:?}"),
        }
        let e = s.on_frame(
            &frame(r#"<iq type="get" id="r"><query xmlns="jabber:iq:roster"/></iq>"#),
            &ok,
        );
        assert!(sent(&e)[0].contains("service-unavailable"));
        let e = s.on_frame(&frame(&close_frame()), &ok);
        assert_eq!(e.last(), Some(&Effect::Close));
    }

    #[test]
    fn pubsub_event_carries_the_update_as_text() {
        let f = pubsub_event(
            "cc.test",
            "1001",
            "/finesse/api/User/1001",
            "7",
            "<Update/>",
        );
        let el = frame(&f);
        let n = el
            .child("event")
            .and_then(|e| e.child("items"))
            .and_then(|i| i.child("item"))
            .and_then(|i| i.child("notification"))
            .expect("notification");
        assert_eq!(n.text, "<Update/>");
    }
}
