//! Stage 2 (sizes): request head and declared body limits (SPEC 6).
//!
//! HTTP/1.1 heads are also bounded by the parser's buffer and header count
//! before they reach us; these checks apply the same limits to HTTP/2 and
//! catch single oversized fields. Streamed bodies are capped while they flow
//! (`body::LimitedBody`).

use super::deny::Deny;
use deskgate_config::Limits;
use http::HeaderMap;

/// 414 when the request target (path and query) is longer than one header
/// line may be; 431 when the head has too many fields, one too long a field,
/// or is too big in all.
pub fn check_head(h: &HeaderMap, target_len: usize, l: &Limits) -> Result<(), Deny> {
    if target_len > l.max_header_line {
        return Err(Deny::UriTooLong);
    }
    if h.len() > l.max_headers {
        return Err(Deny::HeadTooLarge);
    }
    let mut total = target_len;
    for (name, value) in h {
        let line = name.as_str().len() + value.len() + 4;
        if line > l.max_header_line {
            return Err(Deny::HeadTooLarge);
        }
        total += line;
    }
    if total > l.max_head {
        return Err(Deny::HeadTooLarge);
    }
    Ok(())
}

/// 413 when the declared body is bigger than allowed; 400 when it is unreadable.
pub fn check_declared_body(h: &HeaderMap, l: &Limits) -> Result<(), Deny> {
    let mut declared: Option<u64> = None;
    for v in h.get_all(http::header::CONTENT_LENGTH) {
        let n = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(Deny::BadRequest("bad_content_length"))?;
        if declared.is_some_and(|d| d != n) {
            return Err(Deny::BadRequest("conflicting_content_length"));
        }
        declared = Some(n);
    }
    if declared.is_some_and(|n| n > l.max_body) {
        return Err(Deny::BodyTooLarge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_or_too_long_headers_are_refused() {
        let l = Limits::default();
        let mut h = HeaderMap::new();
        for i in 0..101 {
            h.insert(
                http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("n"),
                "1".parse().expect("v"),
            );
        }
        assert_eq!(check_head(&h, 1, &l), Err(Deny::HeadTooLarge));
        let mut h = HeaderMap::new();
        h.insert("x-big", "a".repeat(9000).parse().expect("v"));
        assert_eq!(check_head(&h, 1, &l), Err(Deny::HeadTooLarge));
        let mut h = HeaderMap::new();
        h.insert("x-ok", "a".repeat(1000).parse().expect("v"));
        assert_eq!(check_head(&h, 1, &l), Ok(()));
    }

    #[test]
    fn declared_bodies_are_checked() {
        let l = Limits::default();
        let mut h = HeaderMap::new();
        h.insert(
            "content-length",
            (16u64 * 1024 * 1024).to_string().parse().expect("v"),
        );
        assert_eq!(check_declared_body(&h, &l), Err(Deny::BodyTooLarge));
        h.insert("content-length", "12".parse().expect("v"));
        assert_eq!(check_declared_body(&h, &l), Ok(()));
        h.insert("content-length", "x".parse().expect("v"));
        assert_eq!(
            check_declared_body(&h, &l),
            Err(Deny::BadRequest("bad_content_length"))
        );
    }
}
