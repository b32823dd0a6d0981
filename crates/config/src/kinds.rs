//! Component kinds and their documented default filtering rules.
//!
//! The supported URL set is what a desktop needs; everything else gets 421.
//! Admin prefixes get 403 wherever they appear. Operators extend both per
//! component (`allow`, `deny`). See docs/filtering.md.

use crate::security::AuthMode;
use deskgate_policy::rate::Rate;

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

/// Static files a browser loads before it has signed in.
const STATIC_FILES: &[&str] = &[
    "*.js", "*.css", "*.png", "*.gif", "*.jpg", "*.jpeg", "*.svg", "*.ico", "*.woff", "*.woff2",
    "*.ttf", "*.eot",
];

/// The desktop's static directories (the simulator's and Finesse's).
const DESKTOP_STATIC_DIRS: &[&str] = &[
    "js",
    "css",
    "img",
    "images",
    "theme",
    "assets",
    "thirdparty",
    "fonts",
    "locales",
];

/// `prefix/**/<ext>` for every static extension (and `extra`).
fn statics_below(prefix: &str, extra: &[&str]) -> Vec<String> {
    STATIC_FILES
        .iter()
        .chain(extra)
        .map(|e| format!("{prefix}/**/{e}"))
        .collect()
}

impl Kind {
    /// Finesse checks the credentials; IdS and the IdP are the sign-in flow itself.
    pub fn default_auth(self) -> AuthMode {
        match self {
            Kind::Ids | Kind::Idp => AuthMode::None,
            _ => AuthMode::Finesse,
        }
    }

    /// The unauthenticated list (SPEC 3): the login page, static files in
    /// the desktop's static directories, gadget files, `UserAuthMode` and
    /// the SSO redirects. Extensions count only inside static directories:
    /// `/desktop/api/x.js` or a servlet under `/desktop/gadgets/` is not a
    /// static file. Other kinds have no default list: their static paths
    /// depend on the version, and operators add them (`unauthenticated`).
    pub fn default_unauthenticated(self) -> Vec<String> {
        let mut v: Vec<String> = match self {
            Kind::Finesse => [
                "/desktop",
                "/desktop/",
                "/desktop/index.html",
                "/desktop/api/DesktopConfig",
                "/desktop/api/urls",
                "/desktop/sso/**",
                "/finesse/api/UserAuthMode/*",
                "/favicon.ico",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(
                DESKTOP_STATIC_DIRS
                    .iter()
                    .flat_map(|d| statics_below(&format!("/desktop/{d}"), &[])),
            )
            .chain(statics_below("/3rdpartygadget/files", &["*.xml", "*.html"]))
            .collect(),
            _ => Vec::new(),
        };
        v.sort();
        v
    }

    /// The component's rate (SPEC 4 reference defaults).
    pub fn default_rate(self) -> Rate {
        let (per_second, burst) = match self {
            Kind::Finesse | Kind::Gadget => (90, 50),
            Kind::Ids | Kind::Idp => (5, 4),
            Kind::Cuic => (50, 100),
            Kind::Livedata => (25, 25),
            Kind::Chat => (30, 10),
        };
        Rate { per_second, burst }
    }

    /// Rate classes inside the component: (name, path patterns, rate, burst).
    pub fn default_classes(self) -> &'static [(&'static str, &'static [&'static str], u32, u32)] {
        match self {
            Kind::Finesse => &[
                ("sso", &["/desktop/sso/**"], 5, 5),
                ("client_log", &["/finesse/api/User/*/ClientLog"], 5, 5),
            ],
            Kind::Cuic => &[
                (
                    "report_execution",
                    &["/cuic/rest/reports/*/execute"],
                    12,
                    12,
                ),
                ("historical", &["/cuic/rest/reports/historical/**"], 16, 16),
                ("realtime", &["/cuic/rest/reports/realtime/**"], 48, 48),
            ],
            _ => &[],
        }
    }

    /// Requests in flight per known user (the reference's per-IP figures).
    pub fn default_in_flight(self) -> u32 {
        match self {
            Kind::Ids | Kind::Idp => 4,
            Kind::Chat => 30,
            _ => 150,
        }
    }
}

/// Admin paths every component denies, whatever its kind: a route must never
/// become a side door to another component's admin pages.
pub const ALWAYS_DENY: &[&str] = &["/cfadmin", "/idsadmin", "/oamp", "/fippa"];
