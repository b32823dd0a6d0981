//! Edge-security settings: credential gate, SSO, WebSocket gate, brute
//! force, rate limits, security log; and each component's policy.

use super::values::{count, duration, networks};
use super::Ctx;
use crate::error::KeyPath;
use crate::file::{ComponentFile, FileConfig, SsoFile};
use crate::kinds::Kind;
use crate::pattern::PathPattern;
use crate::runtime::Component;
use crate::security::*;
use deskgate_policy::bruteforce::BruteForceConfig;
use deskgate_policy::credentials::CacheConfig;
use deskgate_policy::rate::Rate;
use std::sync::Arc;
use std::time::Duration;

/// A duration, or `off` for a mode that can be switched off.
fn duration_or_off(
    cx: &mut Ctx<'_>,
    v: &Option<String>,
    default: Duration,
    kp: &KeyPath,
) -> Option<Duration> {
    match v.as_deref() {
        Some("off") => None,
        _ => Some(duration(cx, v, default, kp)),
    }
}

fn patterns(cx: &mut Ctx<'_>, list: &[String], kp: &KeyPath, fold: bool) -> Vec<PathPattern> {
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let text = if fold {
            p.to_ascii_lowercase()
        } else {
            p.clone()
        };
        match PathPattern::parse(&text) {
            Ok(pat) => out.push(pat),
            Err(e) => cx.p.add(
                kp.index(i),
                format!("{p:?}: {e}"),
                "write a path pattern such as \"/desktop/**/*.js\" or \"/finesse/api/UserAuthMode/*\"",
            ),
        }
    }
    out
}

fn rate(cx: &mut Ctx<'_>, r: Option<i64>, b: Option<i64>, d: Rate, kp: &KeyPath) -> Rate {
    Rate {
        per_second: count(cx, r, d.per_second.into(), 1_000_000, &kp.key("rate")) as u32,
        burst: count(cx, b, d.burst.into(), 1_000_000, &kp.key("burst")) as u32,
    }
}

/// `METHOD /path/{user}`.
fn upstream_check(cx: &mut Ctx<'_>, v: &Option<String>, kp: &KeyPath) -> UpstreamCheck {
    let text = v.as_deref().unwrap_or("GET /finesse/api/User/{user}");
    let parsed = text.split_once(' ').and_then(|(m, p)| {
        let ok = matches!(m, "GET" | "HEAD" | "POST")
            && p.starts_with('/')
            && p.contains("{user}")
            && !p.contains(char::is_whitespace);
        ok.then(|| UpstreamCheck {
            method: m.to_string(),
            path: p.to_string(),
        })
    });
    parsed.unwrap_or_else(|| {
        cx.p.add(
            kp.clone(),
            format!("{text:?} is not a check request"),
            "write \"GET /finesse/api/User/{user}\": a method (GET, HEAD or POST), a space and a path holding {user}",
        );
        UpstreamCheck {
            method: "GET".into(),
            path: "/finesse/api/User/{user}".into(),
        }
    })
}

/// One component's policy: kind defaults, then the file's overrides.
pub(super) fn component_security(
    cx: &mut Ctx<'_>,
    c: &ComponentFile,
    kind: Kind,
    fold: bool,
    kp: &KeyPath,
) -> ComponentSecurity {
    let auth = match c.auth.as_deref() {
        None => kind.default_auth(),
        Some("finesse") => AuthMode::Finesse,
        Some("none") => AuthMode::None,
        Some(s) => {
            cx.p.add(
                kp.key("auth"),
                format!("auth {s:?} is unknown"),
                "use \"finesse\" (credentials checked against Finesse) or \"none\" (sign-in flows only)",
            );
            kind.default_auth()
        }
    };
    let mut list = kind.default_unauthenticated();
    list.extend(c.unauthenticated.iter().cloned());
    let unauth_kp = kp.key("unauthenticated");
    let defaults = patterns(
        cx,
        &list[..list.len() - c.unauthenticated.len()],
        &unauth_kp,
        fold,
    );
    let extra = patterns(cx, &c.unauthenticated, &unauth_kp, fold);
    let classes = match &c.rate_class {
        None => kind
            .default_classes()
            .iter()
            .map(|(name, paths, r, b)| RateClass {
                name: name.to_string(),
                paths: paths
                    .iter()
                    .filter_map(|p| {
                        PathPattern::parse(&if fold {
                            p.to_ascii_lowercase()
                        } else {
                            p.to_string()
                        })
                        .ok()
                    })
                    .collect(),
                rate: Rate {
                    per_second: *r,
                    burst: *b,
                },
            })
            .collect(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, rc)| {
                let ckp = kp.key("rate_class").index(i);
                RateClass {
                    name: rc.name.clone(),
                    paths: patterns(cx, &rc.paths, &ckp.key("paths"), fold)
                        .into_iter()
                        .collect(),
                    rate: rate(
                        cx,
                        Some(rc.rate),
                        Some(rc.burst),
                        Rate {
                            per_second: 1,
                            burst: 1,
                        },
                        &ckp,
                    ),
                }
            })
            .collect(),
    };
    let check_against = match (kind, &c.check_against) {
        (_, Some(n)) => Some(n.clone()),
        (Kind::Finesse, None) => Some(c.name.clone()),
        _ => None,
    };
    ComponentSecurity {
        auth,
        check_against,
        unauthenticated: defaults.into_iter().chain(extra).collect(),
        rate: rate(cx, c.rate, c.burst, kind.default_rate(), kp),
        classes,
        in_flight: count(
            cx,
            c.in_flight,
            kind.default_in_flight().into(),
            100_000,
            &kp.key("in_flight"),
        ) as u32,
    }
}

/// `name` must be a component of kind finesse.
fn check_name(cx: &mut Ctx<'_>, components: &[Arc<Component>], name: &str, kp: &KeyPath) {
    match components.iter().find(|c| c.name == name) {
        Some(c) if c.kind == Kind::Finesse => {}
        Some(_) => cx.p.add(
            kp.clone(),
            format!("component {name:?} is not of kind finesse"),
            "name the Finesse component that credentials are checked against",
        ),
        None => cx.p.add(
            kp.clone(),
            format!("there is no component {name:?}"),
            "name a [[component]] of kind finesse",
        ),
    }
}

/// The instance-wide security settings; `components` are the validated ones.
pub(super) fn security(
    cx: &mut Ctx<'_>,
    f: &FileConfig,
    components: &[Arc<Component>],
    root: &KeyPath,
) -> Security {
    let akp = root.key("auth");
    let a = &f.auth;
    let finesse: Vec<&Arc<Component>> = components
        .iter()
        .filter(|c| c.kind == Kind::Finesse)
        .collect();
    let check_against = match &a.check_against {
        Some(name) => {
            check_name(cx, components, name, &akp.key("check_against"));
            name.clone()
        }
        None => match finesse.as_slice() {
            [one] => one.name.clone(),
            _ => String::new(),
        },
    };
    for (i, c) in components.iter().enumerate() {
        if c.security.auth != AuthMode::Finesse {
            continue;
        }
        let kp = root.key("component").index(i).key("check_against");
        match &c.security.check_against {
            Some(name) if c.kind != Kind::Finesse || name != &c.name => {
                check_name(cx, components, name, &kp)
            }
            Some(_) => {}
            None if !check_against.is_empty() => {}
            None if finesse.is_empty() => cx.p.add(
                kp,
                format!("component {:?} uses auth = \"finesse\" but no component is of kind finesse", c.name),
                "add the Finesse cluster as a [[component]] with kind = \"finesse\", or set auth = \"none\" on this component",
            ),
            None => cx.p.add(
                kp,
                format!("there are several Finesse clusters: which one checks the credentials of {:?}?", c.name),
                "set check_against = \"<finesse component>\" on this component, or [auth] check_against for all of them",
            ),
        }
    }
    let dc = CacheConfig::default();
    let cache = CacheConfig {
        ttl: duration(cx, &a.cache_ttl, dc.ttl, &akp.key("cache_ttl")),
        revalidate: duration(cx, &a.revalidate, dc.revalidate, &akp.key("revalidate")),
        negative_ttl: duration(
            cx,
            &a.negative_ttl,
            dc.negative_ttl,
            &akp.key("negative_ttl"),
        ),
        capacity: count(
            cx,
            a.cache_entries,
            dc.capacity as u64,
            10_000_000,
            &akp.key("cache_entries"),
        ) as usize,
    };
    if cache.revalidate > cache.ttl {
        cx.p.add(
            akp.key("revalidate"),
            "revalidate is longer than cache_ttl",
            "keep revalidate (default 60s) at or below cache_ttl (default 15m)",
        );
    }
    let users_list = a.users_list.as_ref().map(|u| {
        let ukp = akp.key("users_list");
        if u.credentials_env.is_empty() {
            cx.p.add(
                ukp.key("credentials_env"),
                "the variable name is empty",
                "name the environment variable that holds user:password of a Finesse administrator",
            );
        }
        UsersList {
            path: u
                .path
                .clone()
                .unwrap_or_else(|| "/finesse/api/Users".into()),
            credentials_env: u.credentials_env.clone(),
            refresh: duration(
                cx,
                &u.refresh,
                Duration::from_secs(900),
                &ukp.key("refresh"),
            ),
        }
    });
    let realm = a.realm.clone().unwrap_or_else(|| "deskgate".into());
    if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
        cx.p.add(
            akp.key("realm"),
            "the realm holds a quote, backslash or control character",
            "write a plain name such as \"deskgate\"",
        );
    }
    let auth = AuthSettings {
        check_against,
        validate: upstream_check(cx, &a.validate, &akp.key("validate")),
        cache,
        max_validations: count(
            cx,
            a.max_validations,
            64,
            10_000,
            &akp.key("max_validations"),
        ) as usize,
        validation_timeout: duration(
            cx,
            &a.validation_timeout,
            Duration::from_secs(5),
            &akp.key("validation_timeout"),
        ),
        realm,
        users_list,
    };

    let sso = f
        .sso
        .as_ref()
        .map(|s| sso(cx, s, components, &root.key("sso")));

    let wkp = root.key("websocket");
    let w = &f.websocket;
    let dw = WebSocketGate::default();
    let websocket = WebSocketGate {
        ip_window: duration_or_off(
            cx,
            &w.ip_window,
            Duration::from_secs(600),
            &wkp.key("ip_window"),
        ),
        subprotocol: w.subprotocol.unwrap_or(true),
        cookie_ttl: duration_or_off(
            cx,
            &w.cookie_ttl,
            Duration::from_secs(600),
            &wkp.key("cookie_ttl"),
        ),
        per_user: count(
            cx,
            w.per_user,
            dw.per_user.into(),
            10_000,
            &wkp.key("per_user"),
        ) as u32,
        per_ip: count(
            cx,
            w.per_ip,
            dw.per_ip.into(),
            1_000_000,
            &wkp.key("per_ip"),
        ) as u32,
    };

    let bkp = root.key("brute_force");
    let b = &f.brute_force;
    let db = BruteForceConfig::default();
    let brute_force = BruteForceConfig {
        failures: count(
            cx,
            b.failures,
            db.failures.into(),
            1000,
            &bkp.key("failures"),
        ) as u32,
        window: duration(cx, &b.window, db.window, &bkp.key("window")),
        block: duration(cx, &b.block, db.block, &bkp.key("block")),
        spray_users: count(
            cx,
            b.spray_users,
            db.spray_users.into(),
            1000,
            &bkp.key("spray_users"),
        ) as u32,
        max_tracked: count(
            cx,
            b.tracked,
            db.max_tracked as u64,
            10_000_000,
            &bkp.key("tracked"),
        ) as usize,
    };

    let rkp = root.key("rate");
    let r = &f.rate;
    let dr = RateSettings::default();
    let rate_settings = RateSettings {
        nat_factor: count(
            cx,
            r.nat_factor,
            dr.nat_factor.into(),
            10_000,
            &rkp.key("nat_factor"),
        ) as u32,
        dry_run: r.dry_run.unwrap_or(false),
        static_class: Rate {
            per_second: count(
                cx,
                r.static_rate,
                dr.static_class.per_second.into(),
                1_000_000,
                &rkp.key("static_rate"),
            ) as u32,
            burst: count(
                cx,
                r.static_burst,
                dr.static_class.burst.into(),
                1_000_000,
                &rkp.key("static_burst"),
            ) as u32,
        },
        connections_per_ip: count(
            cx,
            r.connections_per_ip,
            dr.connections_per_ip.into(),
            1_000_000,
            &rkp.key("connections_per_ip"),
        ) as u32,
    };
    let exempt = networks(cx, &r.exempt, &rkp.key("exempt"));
    let log = match f.log.security.as_deref() {
        None | Some("-") => SecurityLogTarget::Stdout,
        Some("syslog") => SecurityLogTarget::Syslog("/dev/log".into()),
        Some(s) if s.starts_with("syslog:") => {
            SecurityLogTarget::Syslog(cx.path(&s["syslog:".len()..]))
        }
        Some(p) => SecurityLogTarget::File(cx.path(p)),
    };
    Security {
        auth,
        sso,
        websocket,
        brute_force,
        rate: rate_settings,
        exempt,
        log,
    }
}

const ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

fn sso(cx: &mut Ctx<'_>, s: &SsoFile, components: &[Arc<Component>], kp: &KeyPath) -> SsoSettings {
    let poll = duration(cx, &s.poll, Duration::from_secs(300), &kp.key("poll"));
    let keys = match s.mode.as_str() {
        "hmac" => {
            let secret = match &s.secret_env {
                None => {
                    cx.p.add(kp.key("secret_env"), "hmac mode needs the shared secret", "set secret_env to the environment variable holding the key copied from IdS");
                    Vec::new()
                }
                Some(var) => {
                    match std::env::var(var) {
                        Ok(v) if !v.is_empty() => v.into_bytes(),
                        _ => {
                            cx.p.add(kp.key("secret_env"), format!("environment variable {var} is not set"), "export it before starting deskgate (never put the secret in the file)");
                            Vec::new()
                        }
                    }
                }
            };
            SsoKeys::Hmac { secret }
        }
        "keys" => match (&s.keys_url, &s.keys_file) {
            (Some(url), None) => keys_url(cx, url, components, poll, &kp.key("keys_url")),
            (None, Some(file)) => SsoKeys::File {
                path: cx.path(file),
                poll,
            },
            _ => {
                cx.p.add(kp.key("mode"), "keys mode needs exactly one of keys_url and keys_file", "set keys_url = \"https://<node internal host:port>/path\" or keys_file = \"ids-keys.pem\"");
                SsoKeys::File {
                    path: Default::default(),
                    poll,
                }
            }
        },
        "upstream" => SsoKeys::Upstream {
            check: upstream_check(cx, &s.validate, &kp.key("validate")),
        },
        m => {
            cx.p.add(kp.key("mode"), format!("mode {m:?} is unknown"), "use \"hmac\" (IdS 12.6(1) shared key), \"keys\" (signed tokens, public keys) or \"upstream\" (ask Finesse)");
            SsoKeys::Upstream {
                check: upstream_check(cx, &None, &kp.key("validate")),
            }
        }
    };
    let algorithm = s.algorithm.clone().unwrap_or_else(|| match keys {
        SsoKeys::Hmac { .. } => "HS256".into(),
        _ => "RS256".into(),
    });
    if !ALGORITHMS.contains(&algorithm.as_str()) {
        cx.p.add(
            kp.key("algorithm"),
            format!("algorithm {algorithm:?} is not supported"),
            format!("use one of {}", ALGORITHMS.join(", ")),
        );
    } else {
        let hmac_alg = algorithm.starts_with("HS");
        let hmac_keys = matches!(keys, SsoKeys::Hmac { .. });
        if hmac_alg != hmac_keys && !matches!(keys, SsoKeys::Upstream { .. }) {
            cx.p.add(
                kp.key("algorithm"),
                format!("{algorithm} does not fit mode {:?}", s.mode),
                "hmac mode takes HS256/384/512; keys mode takes RS, PS, ES or EdDSA",
            );
        }
    }
    SsoSettings {
        keys,
        algorithm,
        issuer: s.issuer.clone(),
        audience: s.audience.clone(),
        skew: duration_or_zero(cx, &s.skew, Duration::from_secs(60), &kp.key("skew")),
        user_claim: s.user_claim.clone().unwrap_or_else(|| "sub".into()),
        cache_max: duration(
            cx,
            &s.cache_max,
            Duration::from_secs(7200),
            &kp.key("cache_max"),
        ),
    }
}

fn duration_or_zero(
    cx: &mut Ctx<'_>,
    v: &Option<String>,
    default: Duration,
    kp: &KeyPath,
) -> Duration {
    match v.as_deref() {
        Some("0" | "0s") => Duration::ZERO,
        _ => duration(cx, v, default, kp),
    }
}

/// `https://<internal host:port>/path` must name a configured node.
fn keys_url(
    cx: &mut Ctx<'_>,
    url: &str,
    components: &[Arc<Component>],
    poll: Duration,
    kp: &KeyPath,
) -> SsoKeys {
    let parsed = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(|rest| rest.split_once('/'))
        .map(|(auth, path)| (auth.to_ascii_lowercase(), format!("/{path}")));
    let found = parsed.as_ref().and_then(|(auth, path)| {
        components.iter().find_map(|c| {
            c.nodes
                .iter()
                .position(|n| format!("{}:{}", n.internal_host, n.internal_port) == *auth)
                .map(|i| (c.name.clone(), i, path.clone()))
        })
    });
    match found {
        Some((component, node, path)) => SsoKeys::Url {
            component,
            node,
            path,
            poll,
        },
        None => {
            cx.p.add(
                kp.clone(),
                format!("{url:?} does not name a configured node"),
                "write https://<internal host:port of a [[component.node]]>/path: the keys are fetched with that component's upstream TLS",
            );
            SsoKeys::File {
                path: Default::default(),
                poll,
            }
        }
    }
}
