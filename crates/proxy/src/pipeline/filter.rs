//! Stage 6: request filtering (SPEC 6), on the normalised path only.
//!
//! In order: admin paths 403, methods 405, outside the supported URL set
//! 421 (or 404), User-Agent 412, Referer 417. The last two are off unless
//! configured.

use super::deny::Deny;
use super::normalize::NormalPath;
use deskgate_config::{GlobalFilter, PathRules};
use http::{HeaderMap, Method};

/// Checks one request against its component's rules and the global filters.
pub fn check(
    method: &Method,
    path: &NormalPath,
    headers: &HeaderMap,
    rules: &PathRules,
    global: &GlobalFilter,
) -> Result<(), Deny> {
    if rules.case_insensitive && !path.decided.is_ascii() {
        // Unicode case folding (the long s, the Kelvin sign) could match an
        // admin path on an upstream that compares case-insensitively
        return Err(Deny::BadRequest("non_ascii_path"));
    }
    let lower = path.decided.to_ascii_lowercase();
    if rules.deny.iter().any(|d| lower.starts_with(d.as_str())) {
        return Err(Deny::AdminPath);
    }
    if !rules.methods.iter().any(|m| m == method.as_str()) {
        return Err(Deny::Method);
    }
    let subject = if rules.case_insensitive {
        lower.as_str()
    } else {
        path.decided.as_str()
    };
    if !rules.allow.iter().any(|a| prefix_matches(a, subject)) {
        return Err(Deny::Unsupported(global.unsupported_status));
    }
    if let Some(re) = &global.user_agent {
        let ua = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !re.is_match(ua) {
            return Err(Deny::UserAgent);
        }
    }
    if let Some(hosts) = &global.referer_hosts {
        if let Some(r) = headers.get(http::header::REFERER) {
            let host = r.to_str().ok().and_then(referer_host);
            if !host.is_some_and(|h| hosts.contains(&h)) {
                return Err(Deny::Referer);
            }
        }
    }
    Ok(())
}

/// `/x/` matches anything below `/x/`; `/x` matches `/x` itself and below `/x/`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix) || path == &prefix[..prefix.len() - 1]
    } else {
        path == prefix
            || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

/// The lower-case host of an absolute `Referer`.
fn referer_host(r: &str) -> Option<String> {
    let rest = r.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    super::route::split_authority(authority).map(|(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::normalize::normalize;
    use deskgate_config::kinds::{Kind, ALWAYS_DENY};

    fn rules(kind: Kind) -> PathRules {
        PathRules {
            allow: kind.default_allow().iter().map(|s| s.to_string()).collect(),
            deny: kind
                .default_deny()
                .iter()
                .chain(ALWAYS_DENY)
                .map(|s| s.to_string())
                .collect(),
            methods: kind
                .default_methods()
                .iter()
                .map(|m| m.to_string())
                .collect(),
            case_insensitive: false,
        }
    }

    fn global() -> GlobalFilter {
        GlobalFilter {
            unsupported_status: 421,
            user_agent: None,
            referer_hosts: None,
        }
    }

    fn decide(method: Method, raw: &str) -> Result<(), Deny> {
        let p = normalize(raw).map_err(Deny::BadPath)?;
        check(
            &method,
            &p,
            &HeaderMap::new(),
            &rules(Kind::Finesse),
            &global(),
        )
    }

    #[test]
    fn desktop_paths_pass() {
        assert_eq!(decide(Method::GET, "/desktop/container/"), Ok(()));
        assert_eq!(decide(Method::PUT, "/finesse/api/User/1001"), Ok(()));
        assert_eq!(decide(Method::GET, "/desktop"), Ok(()));
    }

    #[test]
    fn admin_paths_are_forbidden_in_every_spelling() {
        for p in [
            "/cfadmin",
            "/cfadmin/",
            "/CFADMIN",
            "/CfAdmin/x",
            "/desktop/../cfadmin",
            "/desktop/%2e%2e/cfadmin",
            "/%63fadmin",
            "//cfadmin",
            "/cfadmin;x=y",
            "/desktop/sso/test",
        ] {
            assert_eq!(decide(Method::GET, p), Err(Deny::AdminPath), "{p}");
        }
        assert!(matches!(
            decide(Method::GET, "/desktop/..;/cfadmin"),
            Err(Deny::BadPath(_))
        ));
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        assert_eq!(
            decide(Method::GET, "/manager/html"),
            Err(Deny::Unsupported(421))
        );
        assert_eq!(
            decide(Method::GET, "/desktopx"),
            Err(Deny::Unsupported(421))
        );
        assert_eq!(decide(Method::TRACE, "/desktop/"), Err(Deny::Method));
    }

    #[test]
    fn case_insensitive_components_refuse_non_ascii_paths() {
        let mut r = rules(Kind::Idp);
        r.case_insensitive = true;
        let p = normalize("/adfs/ls/idpinitiated%C5%BFignon").expect("ok");
        assert_eq!(
            check(&Method::GET, &p, &HeaderMap::new(), &r, &global()),
            Err(Deny::BadRequest("non_ascii_path"))
        );
        let p = normalize("/ADFS/ls/IdpInitiatedSignOn").expect("ok");
        assert_eq!(
            check(&Method::GET, &p, &HeaderMap::new(), &r, &global()),
            Err(Deny::AdminPath)
        );
    }

    #[test]
    fn cuic_and_chat_have_their_own_sets() {
        let (cuic, chat) = (rules(Kind::Cuic), rules(Kind::Chat));
        let ok = |r: &PathRules, path: &str| {
            check(
                &Method::GET,
                &normalize(path).expect("ok"),
                &HeaderMap::new(),
                r,
                &global(),
            )
        };
        assert_eq!(ok(&cuic, "/cuicui/Main.jsp"), Ok(()));
        assert_eq!(ok(&cuic, "/oamp/"), Err(Deny::AdminPath));
        assert_eq!(ok(&cuic, "/cuic/admin/x"), Err(Deny::AdminPath));
        assert_eq!(ok(&cuic, "/desktop/"), Err(Deny::Unsupported(421)));
        assert_eq!(ok(&chat, "/http-bind/"), Ok(()));
        assert_eq!(ok(&chat, "/cupadmin/"), Err(Deny::AdminPath));
        assert_eq!(
            ok(&chat, "/finesse/api/User/1"),
            Err(Deny::Unsupported(421))
        );
    }

    #[test]
    fn ids_allows_only_its_methods() {
        let p = normalize("/ids/v1/oauth/authorize").expect("ok");
        let r = rules(Kind::Ids);
        assert_eq!(
            check(&Method::GET, &p, &HeaderMap::new(), &r, &global()),
            Ok(())
        );
        assert_eq!(
            check(&Method::PUT, &p, &HeaderMap::new(), &r, &global()),
            Err(Deny::Method)
        );
    }

    #[test]
    fn user_agent_and_referer_checks_apply_when_configured() {
        let p = normalize("/desktop/").expect("ok");
        let g = GlobalFilter {
            unsupported_status: 404,
            user_agent: Some(regex::Regex::new("Chrome|Firefox").expect("re")),
            referer_hosts: Some(vec!["finesse.example.com".into()]),
        };
        let mut h = HeaderMap::new();
        h.insert("user-agent", "curl/8".parse().expect("v"));
        assert_eq!(
            check(&Method::GET, &p, &h, &rules(Kind::Finesse), &g),
            Err(Deny::UserAgent)
        );
        h.insert("user-agent", "Mozilla Chrome/120".parse().expect("v"));
        assert_eq!(
            check(&Method::GET, &p, &h, &rules(Kind::Finesse), &g),
            Ok(())
        );
        h.insert("referer", "https://evil.example.net/x".parse().expect("v"));
        assert_eq!(
            check(&Method::GET, &p, &h, &rules(Kind::Finesse), &g),
            Err(Deny::Referer)
        );
        h.insert(
            "referer",
            "https://finesse.example.com:8445/desktop/"
                .parse()
                .expect("v"),
        );
        assert_eq!(
            check(&Method::GET, &p, &h, &rules(Kind::Finesse), &g),
            Ok(())
        );
        let other = normalize("/nope").expect("ok");
        assert_eq!(
            check(&Method::GET, &other, &h, &rules(Kind::Finesse), &g),
            Err(Deny::Unsupported(404))
        );
    }
}
