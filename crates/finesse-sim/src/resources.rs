//! The documents Finesse answers with, written as its developer guide shows
//! them: User, Users, SystemInfo, UserAuthMode, ApiErrors, the notification
//! `Update`, and the desktop configuration (JSON).

use crate::directory::User;
use crate::names::Names;
use crate::xml::escape;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn user(u: &User) -> String {
    let mut roles = String::new();
    for r in &u.roles {
        let _ = write!(roles, "<role>{}</role>", r.as_str());
    }
    let ext = u.extension.as_deref().unwrap_or("");
    format!(
        "<User><uri>/finesse/api/User/{id}</uri><roles>{roles}</roles><loginId>{id}</loginId>\
         <loginName>{login}</loginName><firstName>{first}</firstName><lastName>{last}</lastName>\
         <state>{state}</state><extension>{ext}</extension><pendingState/><reasonCodeId>-1</reasonCodeId>\
         <stateChangeTime>{now}</stateChangeTime></User>",
        id = escape(&u.id),
        login = escape(&u.login_name),
        first = escape(&u.first_name),
        last = escape(&u.last_name),
        state = u.state.as_str(),
        ext = escape(ext),
        now = iso_now(),
    )
}

pub fn users(list: &[&User]) -> String {
    let mut out = String::from("<Users>");
    for u in list {
        out.push_str(&user(u));
    }
    out.push_str("</Users>");
    out
}

/// Facts about the cluster that SystemInfo reports besides its nodes.
pub struct SystemFacts<'a> {
    pub xmpp_domain: &'a str,
    pub deployment_type: &'a str,
    pub auth_mode: &'a str,
    pub status: &'a str,
}

/// SystemInfo as the request sees it: `primary` and `secondary` are the
/// node names in the request's view (external ones through a proxy).
pub fn system_info(f: &SystemFacts<'_>, names: &Names) -> String {
    let node = |tag: &str, n: &crate::names::HostPort| {
        format!(
            "<{tag}><host>{}</host><httpsPort>{}</httpsPort><xmppPort>5222</xmppPort>\
             <xmppSecurePort>5223</xmppSecurePort></{tag}>",
            escape(&n.host),
            n.port
        )
    };
    let primary = node("primaryNode", names.primary());
    let secondary = names
        .secondary()
        .map(|n| node("secondaryNode", n))
        .unwrap_or_default();
    format!(
        "<SystemInfo><uri>/finesse/api/SystemInfo</uri><deploymentType>{dt}</deploymentType>\
         <status>{status}</status><systemAuthMode>{auth}</systemAuthMode>\
         <xmppDomain>{xd}</xmppDomain><xmppPubSubDomain>pubsub.{xd}</xmppPubSubDomain>\
         {primary}{secondary}<currentTimestamp>{now}</currentTimestamp>\
         <timezoneOffset>0</timezoneOffset><isProxyRequest>{proxied}</isProxyRequest></SystemInfo>",
        dt = escape(f.deployment_type),
        status = escape(f.status),
        auth = escape(f.auth_mode),
        xd = escape(f.xmpp_domain),
        now = iso_now(),
        proxied = names.proxied,
    )
}

pub fn user_auth_mode(mode: &str) -> String {
    format!(
        "<UserAuthMode><authMode>{}</authMode></UserAuthMode>",
        escape(mode)
    )
}

/// Finesse's error document.
pub fn api_error(error_type: &str, message: &str, data: &str) -> String {
    format!(
        "<ApiErrors><ApiError><ErrorType>{}</ErrorType><ErrorMessage>{}</ErrorMessage>\
         <ErrorData>{}</ErrorData></ApiError></ApiErrors>",
        escape(error_type),
        escape(message),
        escape(data)
    )
}

/// The `<Update>` a pubsub notification carries.
pub fn update(source: &str, data_xml: &str, request_id: &str) -> String {
    format!(
        "<Update><data>{data_xml}</data><event>PUT</event><requestId>{}</requestId>\
         <source>{}</source></Update>",
        escape(request_id),
        escape(source)
    )
}

/// The desktop configuration the page fetches before sign-in.
pub fn desktop_config(f: &SystemFacts<'_>, names: &Names) -> String {
    serde_json::json!({
        "deploymentType": f.deployment_type,
        "systemStatus": f.status,
        "host": names.this.to_string(),
        "isAlternateSystemAvailable": names.peer.is_some(),
        "alternateHost": names.peer.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "redirectToAlternateHost": false,
        "systemAuthMode": f.auth_mode,
        "xmppDomain": f.xmpp_domain,
        "isProxyRequest": names.proxied,
    })
    .to_string()
}

/// A UTC time split into its calendar fields.
struct Utc {
    year: i64,
    month: u32,
    day: u32,
    secs_of_day: u64,
    weekday: usize,
}

impl Utc {
    fn of(t: SystemTime) -> Utc {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let days = secs / 86_400;
        let (year, month, day) = civil_from_days(days as i64);
        Utc {
            year,
            month,
            day,
            secs_of_day: secs % 86_400,
            // 1970-01-01 was a Thursday
            weekday: (days % 7) as usize,
        }
    }
    fn clock(&self) -> String {
        let s = self.secs_of_day;
        format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }
}

/// Now, as `2026-12-01T08:00:00Z` (UTC, whole seconds).
pub fn iso_now() -> String {
    let u = Utc::of(SystemTime::now());
    format!("{:04}-{:02}-{:02}T{}Z", u.year, u.month, u.day, u.clock())
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An HTTP date (`Tue, 01 Dec 2026 08:00:00 GMT`), for Last-Modified.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let u = Utc::of(t);
    let month = MONTHS[(u.month as usize).saturating_sub(1) % 12];
    format!(
        "{}, {:02} {month} {:04} {} GMT",
        DAYS[u.weekday],
        u.day,
        u.year,
        u.clock()
    )
}

/// Seconds since the epoch of an IMF-fixdate (`Tue, 01 Dec 2026 08:00:00
/// GMT`), the only form HTTP senders may generate; `None` for anything else.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let (_weekday, rest) = s.trim().split_once(", ")?;
    let f: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, clock, "GMT"] = f[..] else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let year: i64 = year.parse().ok()?;
    let t: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = t[..] else {
        return None;
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

/// A civil date to days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Role;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let t = UNIX_EPOCH + std::time::Duration::from_secs(20_788 * 86_400 + 8 * 3600);
        assert_eq!(http_date(t), "Tue, 01 Dec 2026 08:00:00 GMT");
        assert_eq!(
            parse_http_date("Tue, 01 Dec 2026 08:00:00 GMT"),
            Some(20_788 * 86_400 + 8 * 3600)
        );
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        for bad in [
            "",
            "yesterday",
            "Tue, 01 Dec 2026 08:00:00 UTC",
            "Tue, 32 Dec 2026 08:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn user_document_escapes_its_fields() {
        let u = User::new("1001", "pw", "A<nn", "Agent", &[Role::Agent]);
        let x = user(&u);
        assert!(x.contains("<firstName>A&lt;nn</firstName>"), "{x}");
        assert!(x.contains("<state>LOGOUT</state>"));
        crate::xml::parse(&x).expect("well-formed");
    }

    #[test]
    fn api_error_is_well_formed() {
        let x = api_error("Authorization Failure", "Unauthorized", "1001");
        let el = crate::xml::parse(&x).expect("parse");
        let e = el.child("ApiError").expect("ApiError");
        assert_eq!(e.child_text("ErrorType"), Some("Authorization Failure"));
    }
}
