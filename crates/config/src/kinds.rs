//! Component kinds and their documented default filtering rules.
//!
//! The supported URL set is what a desktop needs; everything else gets 421.
//! Admin prefixes get 403 wherever they appear. Operators extend both per
//! component (`allow`, `deny`). See docs/filtering.md.

/// The kinds of upstream component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Finesse,
    Ids,
    Cuic,
    Livedata,
    Chat,
    Idp,
    Gadget,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "finesse" => Kind::Finesse,
            "ids" => Kind::Ids,
            "cuic" => Kind::Cuic,
            "livedata" => Kind::Livedata,
            "chat" => Kind::Chat,
            "idp" => Kind::Idp,
            "gadget" => Kind::Gadget,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Finesse => "finesse",
            Kind::Ids => "ids",
            Kind::Cuic => "cuic",
            Kind::Livedata => "livedata",
            Kind::Chat => "chat",
            Kind::Idp => "idp",
            Kind::Gadget => "gadget",
        }
    }

    /// Supported URL set (prefixes).
    pub fn default_allow(self) -> &'static [&'static str] {
        match self {
            // desktop, REST API, notifications (WebSocket and BOSH), gadgets
            Kind::Finesse => &[
                "/desktop/",
                "/finesse/",
                "/ws/",
                "/http-bind/",
                "/3rdpartygadget/",
                "/favicon.ico",
            ],
            Kind::Ids => &["/ids/"],
            Kind::Cuic => &["/cuic/", "/cuicui/", "/cuicdocs/"],
            Kind::Livedata => &["/livedata/", "/cuic/", "/socket.io/"],
            Kind::Chat => &["/http-bind/", "/httpbinding/", "/ws/"],
            Kind::Idp => &["/adfs/"],
            Kind::Gadget => &["/"],
        }
    }

    /// Admin applications and test pages (403).
    pub fn default_deny(self) -> &'static [&'static str] {
        match self {
            Kind::Finesse => &[
                "/cfadmin",
                "/fippa",
                "/desktop/sso/test",
                "/finesse/api/sso/test",
            ],
            Kind::Ids => &["/idsadmin", "/ids/v1/sso/test", "/ids/sso/test"],
            Kind::Cuic => &["/oamp", "/cuicadmin", "/cuic/admin", "/cuic/security"],
            Kind::Livedata => &["/oamp", "/livedata/admin"],
            Kind::Chat => &["/cupadmin", "/cupuser"],
            Kind::Idp => &["/adfs/ls/idpinitiatedsignon"],
            Kind::Gadget => &[],
        }
    }

    /// Methods allowed (405 otherwise).
    pub fn default_methods(self) -> &'static [&'static str] {
        match self {
            Kind::Ids => &["GET", "POST", "OPTIONS"],
            _ => &["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
        }
    }
}

/// Admin paths every component denies, whatever its kind: a route must never
/// become a side door to another component's admin pages.
pub const ALWAYS_DENY: &[&str] = &["/cfadmin", "/idsadmin", "/oamp", "/fippa"];
