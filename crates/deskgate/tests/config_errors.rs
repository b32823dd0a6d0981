//! Broken configs, each with the message an administrator gets: the file,
//! the line, the key, and what to change.

use deskgate_testkit::pki::Pki;
use std::path::Path;

/// A valid base: side A and B listeners, one Finesse cluster.
fn base(pki: &Pki) -> String {
    let a = pki.server("a", &["finesse1a.example.com"]);
    let b = pki.server("b", &["finesse1b.example.com"]);
    let other = pki.server("other", &["other.example.com"]);
    std::fs::write(
        pki.path().join("other-only.key"),
        std::fs::read(&other.key).expect("key"),
    )
    .expect("write");
    format!(
        r#"[[listener]]
name = "a"
side = "a"
bind = "0.0.0.0:8445"
external_port = 8445
[[listener.cert]]
names = ["finesse1a.example.com"]
cert = "{acert}"
key_file = "{akey}"

[[listener]]
name = "b"
side = "b"
bind = "0.0.0.0:8445"
external_port = 8445
[[listener.cert]]
names = ["finesse1b.example.com"]
cert = "{bcert}"
key_file = "{bkey}"

[upstream_tls]
trust = "{ca}"

[[component]]
name = "finesse1"
kind = "finesse"
[[component.node]]
internal = "finesse1a.internal.test:8445"
external = "finesse1a.example.com:8445"
side = "a"
[[component.node]]
internal = "finesse1b.internal.test:8445"
external = "finesse1b.example.com:8445"
side = "b"

[client_ip]
trusted = ["10.0.0.0/8"]
"#,
        acert = a.cert.display(),
        akey = a.key.display(),
        bcert = b.cert.display(),
        bkey = b.key.display(),
        ca = pki.ca_path.display(),
    )
}

fn errors_of(pki: &Pki, text: &str) -> String {
    let path = pki.path().join("broken.toml");
    std::fs::write(&path, text).expect("write");
    match deskgate_config::load(&path) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// 1-based line where `needle` (which may span lines) starts.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in config"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn the_base_config_is_valid() {
    let pki = Pki::new();
    let path = pki.path().join("ok.toml");
    std::fs::write(&path, base(&pki)).expect("write");
    let d = deskgate_config::load(&path).expect("valid");
    assert_eq!(d.listeners.len(), 2);
}

struct Case {
    what: &'static str,
    /// Edits the base text.
    edit: fn(&str, &Path) -> String,
    /// A line to expect the error on: the first line holding this text after the edit.
    line_with: &'static str,
    key: &'static str,
    message: &'static str,
}

#[test]
fn broken_configs_are_reported_with_file_line_key_and_fix() {
    let cases = [
        Case {
            what: "duplicate external host+port",
            edit: |t, _| t.replace("external = \"finesse1b.example.com:8445\"", "external = \"finesse1a.example.com:8445\""),
            line_with: "external = \"finesse1a.example.com:8445\"\nside = \"b\"",
            key: "component[0].node[1].external",
            message: "is already used by component \"finesse1\"",
        },
        Case {
            what: "unreadable certificate",
            edit: |t, _| t.replacen("a.pem\"", "missing.pem\"", 1),
            line_with: "missing.pem",
            key: "listener[0].cert[0].cert",
            message: "cannot read",
        },
        Case {
            what: "certificate and key that do not match",
            edit: |t, dir| t.replacen(&format!("{}/a.key", dir.display()), &format!("{}/other-only.key", dir.display()), 1),
            line_with: "other-only.key",
            key: "listener[0].cert[0].key_file",
            message: "does not belong to the certificate",
        },
        Case {
            what: "certificate that does not cover its SNI name",
            edit: |t, _| t.replacen("names = [\"finesse1a.example.com\"]", "names = [\"finesse1a.example.com\", \"cuic.example.com\"]", 1),
            line_with: "cuic.example.com",
            key: "listener[0].cert[0].names[1]",
            message: "does not cover \"cuic.example.com\"",
        },
        Case {
            what: "bad CIDR",
            edit: |t, _| t.replace("trusted = [\"10.0.0.0/8\"]", "trusted = [\"10.0.0.0/33\"]"),
            line_with: "10.0.0.0/33",
            key: "client_ip.trusted[0]",
            message: "is not an IP address or CIDR",
        },
        Case {
            what: "out-of-range node port",
            edit: |t, _| t.replace("internal = \"finesse1a.internal.test:8445\"", "internal = \"finesse1a.internal.test:84450\""),
            line_with: "84450",
            key: "component[0].node[0].internal",
            message: "out of range",
        },
        Case {
            what: "out-of-range listener port",
            edit: |t, _| t.replacen("external_port = 8445", "external_port = 0", 1),
            line_with: "external_port = 0",
            key: "listener[0].external_port",
            message: "port 0 is out of range",
        },
        Case {
            what: "two listeners of one side on one address",
            edit: |t, _| t.replace("side = \"b\"\nbind", "side = \"a\"\nbind"),
            line_with: "bind = \"0.0.0.0:8445\"\nexternal_port = 8445\n[[listener.cert]]\nnames = [\"finesse1b",
            key: "listener[1].bind",
            message: "already binds 0.0.0.0:8445",
        },
        Case {
            what: "a node on no listener",
            edit: |t, _| t.replace("external = \"finesse1b.example.com:8445\"", "external = \"finesse9.example.com:8445\""),
            line_with: "finesse9",
            key: "component[0].node[1].external",
            message: "no listener of side b serves finesse9.example.com:8445",
        },
        Case {
            what: "an unknown key",
            edit: |t, _| t.replace("kind = \"finesse\"", "kind = \"finesse\"\ncolour = \"blue\""),
            line_with: "colour",
            key: "component[0].colour",
            message: "unknown field `colour`",
        },
        Case {
            what: "an unknown kind",
            edit: |t, _| t.replace("kind = \"finesse\"", "kind = \"fineses\""),
            line_with: "fineses",
            key: "component[0].kind",
            message: "kind \"fineses\" is unknown",
        },
        Case {
            what: "a bad side",
            edit: |t, _| t.replacen("side = \"a\"", "side = \"c\"", 1),
            line_with: "side = \"c\"",
            key: "listener[0].side",
            message: "side \"c\" is not a or b",
        },
        Case {
            what: "a bad duration",
            edit: |t, _| format!("{t}\n[timeouts]\nkeepalive = \"twenty\"\n"),
            line_with: "twenty",
            key: "timeouts.keepalive",
            message: "is not a duration",
        },
        Case {
            what: "a key in an unset environment variable",
            edit: |t, dir| t.replacen(&format!("key_file = \"{}/a.key\"", dir.display()), "key_env = \"DESKGATE_TEST_NO_SUCH_VARIABLE\"", 1),
            line_with: "DESKGATE_TEST_NO_SUCH_VARIABLE",
            key: "listener[0].cert[0].key_env",
            message: "environment variable DESKGATE_TEST_NO_SUCH_VARIABLE is not set",
        },
        Case {
            what: "a TOML syntax error",
            edit: |t, _| t.replace("[client_ip]", "[client_ip"),
            line_with: "[client_ip",
            key: "(top level)",
            message: "invalid table header",
        },
        Case {
            what: "a wrong value type",
            edit: |t, _| t.replacen("external_port = 8445", "external_port = \"8445\"", 1),
            line_with: "external_port = \"8445\"",
            key: "listener[0].external_port",
            message: "invalid type",
        },
        Case {
            what: "a bad bind address",
            edit: |t, _| t.replacen("bind = \"0.0.0.0:8445\"", "bind = \"0.0.0.0:99999\"", 1),
            line_with: "99999",
            key: "listener[0].bind",
            message: "is not an address:port",
        },
        Case {
            what: "an internal address listed twice",
            edit: |t, _| t.replace("internal = \"finesse1b.internal.test:8445\"", "internal = \"finesse1a.internal.test:8445\""),
            line_with: "\"finesse1a.internal.test:8445\"\nexternal = \"finesse1b",
            key: "component[0].node[1].internal",
            message: "is already a node of component",
        },
        Case {
            what: "a wildcard bind and a specific bind on one port of one side",
            edit: |t, _| t.replace("side = \"b\"\nbind = \"0.0.0.0:8445\"", "side = \"a\"\nbind = \"10.0.0.5:8445\""),
            line_with: "bind = \"10.0.0.5:8445\"",
            key: "listener[1].bind",
            message: "already binds 0.0.0.0:8445 (this one wants 10.0.0.5:8445)",
        },
        Case {
            what: "the internal listener on a listener's address",
            edit: |t, _| format!("{t}\n[[internal]]\nside = \"a\"\nbind = \"127.0.0.1:8445\"\n"),
            line_with: "bind = \"127.0.0.1:8445\"",
            key: "internal[0].bind",
            message: "listener[0] of side a already binds 127.0.0.1:8445",
        },
        Case {
            what: "an absurd duration",
            edit: |t, _| format!("{t}\n[timeouts]\ntunnel_idle = \"1000000y\"\n"),
            line_with: "1000000y",
            key: "timeouts.tunnel_idle",
            message: "is longer than a day",
        },
        Case {
            what: "unknown auth mode",
            edit: |t, _| t.replace("kind = \"finesse\"\n", "kind = \"finesse\"\nauth = \"ldap\"\n"),
            line_with: "auth = \"ldap\"",
            key: "component[0].auth",
            message: "auth \"ldap\" is unknown",
        },
        Case {
            what: "unauthenticated pattern with a dot segment",
            edit: |t, _| t.replace("kind = \"finesse\"\n", "kind = \"finesse\"\nunauthenticated = [\"/desktop/../finesse/**\"]\n"),
            line_with: "unauthenticated = ",
            key: "component[0].unauthenticated[0]",
            message: "a pattern has no dot segments",
        },
        Case {
            what: "check_against names a component that is not Finesse",
            edit: |t, _| format!("{t}\n[auth]\ncheck_against = \"nosuch\"\n"),
            line_with: "check_against = \"nosuch\"",
            key: "auth.check_against",
            message: "there is no component \"nosuch\"",
        },
        Case {
            what: "a validate request without {user}",
            edit: |t, _| format!("{t}\n[auth]\nvalidate = \"GET /finesse/api/SystemInfo\"\n"),
            line_with: "validate = ",
            key: "auth.validate",
            message: "is not a check request",
        },
        Case {
            what: "revalidation longer than the cache",
            edit: |t, _| format!("{t}\n[auth]\nrevalidate = \"20m\"\n"),
            line_with: "revalidate = ",
            key: "auth.revalidate",
            message: "revalidate is longer than cache_ttl",
        },
        Case {
            what: "SSO algorithm that does not fit the mode",
            edit: |t, _| format!("{t}\n[sso]\nmode = \"keys\"\nkeys_file = \"ids.pem\"\nalgorithm = \"HS256\"\n"),
            line_with: "algorithm = \"HS256\"",
            key: "sso.algorithm",
            message: "HS256 does not fit mode \"keys\"",
        },
        Case {
            what: "SSO keys URL that is no configured node",
            edit: |t, _| format!("{t}\n[sso]\nmode = \"keys\"\nkeys_url = \"https://ids.example.com:8553/ids/v1/keys\"\n"),
            line_with: "keys_url = ",
            key: "sso.keys_url",
            message: "does not name a configured node",
        },
        Case {
            what: "SSO hmac secret from an unset variable",
            edit: |t, _| format!("{t}\n[sso]\nmode = \"hmac\"\nsecret_env = \"DG_NO_SUCH_SECRET_VAR\"\n"),
            line_with: "secret_env = ",
            key: "sso.secret_env",
            message: "environment variable DG_NO_SUCH_SECRET_VAR is not set",
        },
        Case {
            what: "a zero rate",
            edit: |t, _| t.replace("kind = \"finesse\"\n", "kind = \"finesse\"\nrate = 0\n"),
            line_with: "rate = 0",
            key: "component[0].rate",
            message: "0 is out of range",
        },
        Case {
            what: "bad exempt address",
            edit: |t, _| format!("{t}\n[rate]\nexempt = [\"10.0.0.300\"]\n"),
            line_with: "10.0.0.300",
            key: "rate.exempt[0]",
            message: "is not an IP address or CIDR",
        },
        Case {
            what: "cache object larger than the cache",
            edit: |t, _| format!("{t}\n[cache]\nmax_bytes = \"1MB\"\nmax_object = \"4MB\"\n"),
            line_with: "max_object = ",
            key: "cache.max_object",
            message: "is larger than max_bytes",
        },
        Case {
            what: "cache size that is not a size",
            edit: |t, _| format!("{t}\n[cache]\nmax_bytes = \"lots\"\n"),
            line_with: "max_bytes = ",
            key: "cache.max_bytes",
            message: "is not a size",
        },
        Case {
            what: "websocket window that is not a duration",
            edit: |t, _| format!("{t}\n[websocket]\nip_window = \"soon\"\n"),
            line_with: "ip_window = ",
            key: "websocket.ip_window",
            message: "is not a duration",
        },
    ];
    let pki = Pki::new();
    let good = base(&pki);
    let mut failures = Vec::new();
    for c in &cases {
        let text = (c.edit)(&good, pki.path());
        assert_ne!(text, good, "{}: the edit changed nothing", c.what);
        let err = errors_of(&pki, &text);
        let want_line = line_of(&text, c.line_with);
        let want_prefix = format!("broken.toml:{want_line}: {}: ", c.key);
        let matched = err
            .lines()
            .any(|l| l.contains(&want_prefix) && l.contains(c.message) && l.contains("(fix: "));
        if !matched {
            failures.push(format!(
                "{}\n  want: {want_prefix}...{}...(fix: ...)\n  got:  {err}",
                c.what, c.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let pki = Pki::new();
    let text = base(&pki)
        .replace("trusted = [\"10.0.0.0/8\"]", "trusted = [\"nope\"]")
        .replacen("side = \"a\"", "side = \"x\"", 1);
    let err = errors_of(&pki, &text);
    assert!(
        err.contains("client_ip.trusted[0]") && err.contains("listener[0].side"),
        "{err}"
    );
}
