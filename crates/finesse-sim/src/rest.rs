//! The REST API under `/finesse/api/`, with Finesse's authentication rules
//! and error documents:
//!
//! | call | auth | answers |
//! |---|---|---|
//! | `GET User/<id>` | Basic; agents only themselves | 200, 401, 404, 503 |
//! | `PUT User/<id>` | Basic; agents only themselves | 202, 400, 401, 404 |
//! | `GET Users` | Basic, administrator | 200, 401 |
//! | `GET SystemInfo` | none direct; Basic through a proxy | 200, 401 |
//! | `GET UserAuthMode/<id>` | none | 200, 404 |

use crate::directory::{Role, SignIn, StateError, StateRequest, User};
use crate::names::Names;
use crate::resources::{self, SystemFacts};
use crate::server::{xml_response, Reply};
use crate::Cluster;
use base64::Engine;
use http::{HeaderMap, Method, StatusCode};

/// One REST request, body already read.
pub struct Call<'a> {
    pub method: &'a Method,
    /// The path after `/finesse/api/`.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub names: &'a Names,
}

pub fn handle(c: &Call<'_>, cluster: &Cluster) -> Reply {
    let mut parts = c.path.splitn(2, '/');
    let object = parts.next().unwrap_or("");
    let rest = parts.next();
    // `User/1001/Dialogs` and other sub-resources are not simulated: 404
    if rest.is_some_and(|r| r.is_empty() || r.contains('/')) {
        return error(StatusCode::NOT_FOUND, "Not Found", "no such API", c.path);
    }
    let id = rest;
    cluster.count(&label(c.method, object));
    match (c.method, object, id) {
        (&Method::GET, "UserAuthMode", Some(id)) => user_auth_mode(cluster, id),
        (&Method::GET, "SystemInfo", None) => system_info(c, cluster),
        (&Method::GET, "User", Some(id)) => with_user(c, cluster, |me| get_user(cluster, me, id)),
        (&Method::PUT, "User", Some(id)) => {
            with_user(c, cluster, |me| put_user(cluster, me, id, c.body))
        }
        (&Method::GET, "Users", None) => with_user(c, cluster, |me| list_users(cluster, me)),
        (_, "User" | "Users" | "SystemInfo" | "UserAuthMode", _) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "this method is not supported on this resource",
            object,
        ),
        _ => error(StatusCode::NOT_FOUND, "Not Found", "no such API", object),
    }
}

/// The counter a call is counted under: known objects and methods only, so
/// that made-up paths cannot grow the counters.
fn label(method: &Method, object: &str) -> String {
    let object = match object {
        "User" | "Users" | "SystemInfo" | "UserAuthMode" => object,
        _ => "other",
    };
    let method = match *method {
        Method::GET | Method::PUT | Method::POST | Method::DELETE | Method::HEAD => method.as_str(),
        _ => "OTHER",
    };
    format!("{method} /finesse/api/{object}")
}

fn error(status: StatusCode, kind: &str, message: &str, data: &str) -> Reply {
    xml_response(status, resources::api_error(kind, message, data))
}

fn unauthorized(data: &str) -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "Authorization Failure",
        "Unauthorized",
        data,
    )
}

/// `Basic base64(id:password)`.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, password) = text.split_once(':')?;
    Some((id.to_string(), password.to_string()))
}

/// `Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Authenticates (Basic, or an SSO bearer token), then runs `f` with the signed-in user.
fn with_user(c: &Call<'_>, cluster: &Cluster, f: impl FnOnce(&User) -> Reply) -> Reply {
    let id = if let Some(token) = bearer_token(c.headers) {
        // SSO: a token our IdS signed names the user
        match cluster.sso().and_then(|s| s.verify(token)) {
            Some(id) => id,
            None => {
                cluster.count("failed-token");
                return unauthorized("");
            }
        }
    } else {
        let Some((id, password)) = basic_credentials(c.headers) else {
            return unauthorized("");
        };
        match cluster.sign_in(&id, &password) {
            SignIn::Ok => {}
            SignIn::Failed => {
                cluster.count("failed-sign-in");
                return unauthorized(&id);
            }
            SignIn::Locked => {
                cluster.count("failed-sign-in");
                tracing::info!(user = %id, "sign-in refused: user is locked");
                return unauthorized(&id);
            }
        }
        id
    };
    if cluster.outage() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "a Finesse dependency is out of service",
            "",
        );
    }
    match cluster.user(&id) {
        Some(me) => f(&me),
        None => unauthorized(&id),
    }
}

fn invalid_user_specified(id: &str) -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "Invalid Authorization User Specified",
        "the signed-in user may not act on this user",
        id,
    )
}

fn get_user(cluster: &Cluster, me: &User, id: &str) -> Reply {
    if !me.may_see(id) {
        return invalid_user_specified(id);
    }
    match cluster.user(id) {
        Some(u) => xml_response(StatusCode::OK, resources::user(&u)),
        None => error(StatusCode::NOT_FOUND, "Not Found", "user not found", id),
    }
}

fn put_user(cluster: &Cluster, me: &User, id: &str, body: &[u8]) -> Reply {
    if !me.may_see(id) {
        return invalid_user_specified(id);
    }
    let bad = |msg: &str| error(StatusCode::BAD_REQUEST, "Invalid Input", msg, id);
    let Ok(text) = std::str::from_utf8(body) else {
        return bad("the body is not UTF-8");
    };
    let doc = match crate::xml::parse(text) {
        Ok(d) if d.name == "User" => d,
        Ok(_) => return bad("the body must be a <User> document"),
        Err(e) => return bad(&e),
    };
    let Some(state) = doc.child_text("state") else {
        return bad("<state> is required");
    };
    let Some(req) = StateRequest::parse(state) else {
        return bad("unknown state");
    };
    match cluster.change_state(id, req, doc.child_text("extension")) {
        Ok(_) => crate::server::empty(StatusCode::ACCEPTED),
        Err(StateError::NoSuchUser) => {
            error(StatusCode::NOT_FOUND, "Not Found", "user not found", id)
        }
        Err(StateError::ExtensionRequired) => bad("LOGIN needs an <extension>"),
        Err(StateError::NotLoggedIn) => error(
            StatusCode::BAD_REQUEST,
            "Invalid State",
            "the agent is not signed in",
            id,
        ),
    }
}

fn list_users(cluster: &Cluster, me: &User) -> Reply {
    if !me.has(Role::Administrator) {
        return invalid_user_specified(&me.id);
    }
    let body = cluster.with_directory(|d| resources::users(&d.all()));
    xml_response(StatusCode::OK, body)
}

fn system_info(c: &Call<'_>, cluster: &Cluster) -> Reply {
    // Direct from the LAN SystemInfo needs no credentials; through a proxy
    // it does (FINESSE-API.md).
    if c.names.proxied {
        return with_user(c, cluster, |_| system_info_doc(c.names, cluster));
    }
    system_info_doc(c.names, cluster)
}

fn system_info_doc(names: &Names, cluster: &Cluster) -> Reply {
    xml_response(
        StatusCode::OK,
        resources::system_info(&facts(cluster), names),
    )
}

pub fn facts(cluster: &Cluster) -> SystemFacts<'_> {
    SystemFacts {
        xmpp_domain: &cluster.xmpp_domain,
        deployment_type: &cluster.deployment_type,
        auth_mode: cluster.auth_mode(),
        status: if cluster.outage() {
            "OUT_OF_SERVICE"
        } else {
            "IN_SERVICE"
        },
    }
}

fn user_auth_mode(cluster: &Cluster, id: &str) -> Reply {
    match cluster.user(id) {
        Some(_) => xml_response(
            StatusCode::OK,
            resources::user_auth_mode(cluster.auth_mode()),
        ),
        None => error(StatusCode::NOT_FOUND, "Not Found", "user not found", id),
    }
}
