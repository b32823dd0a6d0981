//! Why a request was answered by deskgate itself, and the answer it gets.
//!
//! One enum feeds the response, the access log's `deny` field and, later,
//! metrics labels. Bodies are fixed text: they never name an internal host,
//! address or port.

use super::normalize::BadPath;
use http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    BadPath(BadPath),
    BadRequest(&'static str),
    HeadTooLarge,
    UriTooLong,
    BodyTooLarge,
    BodyTimeout,
    UnknownHost,
    Misdirected,
    AdminPath,
    Method,
    Unsupported(u16),
    UserAgent,
    Referer,
    UpstreamUnreachable,
    UpstreamTimeout,
    UpstreamFailed,
    /// Step 5: the client (IP, or user + IP) is blocked.
    Blocked,
    /// Step 7: over the rate; seconds until a token is there.
    RateLimited(u64),
    /// Step 7: too many requests in flight for this client.
    InFlight,
    /// Step 8: no valid credential (the reason is for the logs).
    Unauthorized(&'static str),
    /// Step 8: the credential could not be checked (Finesse gave no answer).
    AuthUnavailable,
    /// Step 9: an upgrade or long-poll without proof of an authenticated user.
    WebSocketDenied(&'static str),
    /// Step 9: too many WebSockets for this user or IP.
    WebSocketCap,
}

impl Deny {
    pub fn status(self) -> StatusCode {
        match self {
            Deny::BadPath(_) | Deny::BadRequest(_) => StatusCode::BAD_REQUEST,
            Deny::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Deny::UriTooLong => StatusCode::URI_TOO_LONG,
            Deny::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Deny::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Deny::UnknownHost | Deny::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Deny::AdminPath => StatusCode::FORBIDDEN,
            Deny::Method => StatusCode::METHOD_NOT_ALLOWED,
            Deny::Unsupported(s) => {
                StatusCode::from_u16(s).unwrap_or(StatusCode::MISDIRECTED_REQUEST)
            }
            Deny::UserAgent => StatusCode::PRECONDITION_FAILED,
            Deny::Referer => StatusCode::EXPECTATION_FAILED,
            Deny::UpstreamUnreachable | Deny::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Deny::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Deny::Blocked => StatusCode::IM_A_TEAPOT,
            Deny::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Deny::InFlight | Deny::AuthUnavailable | Deny::WebSocketCap => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Deny::Unauthorized(_) | Deny::WebSocketDenied(_) => StatusCode::UNAUTHORIZED,
        }
    }

    /// Stable label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Deny::BadPath(b) => b.reason(),
            Deny::BadRequest(r) => r,
            Deny::HeadTooLarge => "head_too_large",
            Deny::UriTooLong => "uri_too_long",
            Deny::BodyTooLarge => "body_too_large",
            Deny::BodyTimeout => "body_timeout",
            Deny::UnknownHost => "unknown_host",
            Deny::Misdirected => "misdirected",
            Deny::AdminPath => "admin_path",
            Deny::Method => "method",
            Deny::Unsupported(_) => "unsupported_url",
            Deny::UserAgent => "user_agent",
            Deny::Referer => "referer",
            Deny::UpstreamUnreachable => "upstream_unreachable",
            Deny::UpstreamTimeout => "upstream_timeout",
            Deny::UpstreamFailed => "upstream_failed",
            Deny::Blocked => "blocked",
            Deny::RateLimited(_) => "rate_limited",
            Deny::InFlight => "in_flight",
            Deny::Unauthorized(r) | Deny::WebSocketDenied(r) => r,
            Deny::AuthUnavailable => "auth_unavailable",
            Deny::WebSocketCap => "websocket_cap",
        }
    }

    /// Whether the connection should be closed after answering.
    pub fn closes(self) -> bool {
        matches!(
            self,
            Deny::BadPath(_)
                | Deny::BadRequest(_)
                | Deny::HeadTooLarge
                | Deny::UriTooLong
                | Deny::BodyTooLarge
                | Deny::BodyTimeout
        )
    }

    /// The plain-text body: status line words only.
    pub fn body(self) -> String {
        let s = self.status();
        format!("{} {}\n", s.as_u16(), s.canonical_reason().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_reference() {
        let table = [
            (Deny::BadRequest("x"), 400),
            (Deny::HeadTooLarge, 431),
            (Deny::UriTooLong, 414),
            (Deny::BodyTooLarge, 413),
            (Deny::BodyTimeout, 408),
            (Deny::UnknownHost, 421),
            (Deny::Misdirected, 421),
            (Deny::AdminPath, 403),
            (Deny::Method, 405),
            (Deny::Unsupported(404), 404),
            (Deny::UserAgent, 412),
            (Deny::Referer, 417),
            (Deny::UpstreamUnreachable, 502),
            (Deny::UpstreamFailed, 502),
            (Deny::UpstreamTimeout, 504),
            (Deny::Blocked, 418),
            (Deny::RateLimited(3), 429),
            (Deny::InFlight, 503),
            (Deny::Unauthorized("x"), 401),
            (Deny::AuthUnavailable, 503),
            (Deny::WebSocketDenied("x"), 401),
            (Deny::WebSocketCap, 503),
        ];
        for (d, status) in table {
            assert_eq!(d.status().as_u16(), status, "{d:?}");
            // bodies are the status line's words: nothing about the request or the upstream
            assert_eq!(
                d.body(),
                format!(
                    "{} {}\n",
                    status,
                    d.status().canonical_reason().unwrap_or("")
                )
            );
        }
    }
}
