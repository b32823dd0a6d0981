//! Stage 2: path normalisation, before any decision is made on the path.
//!
//! The raw path is split into segments, each percent-decoded once; dot
//! segments are resolved and empty segments dropped. Tomcat-style `;`
//! parameters are accepted only on the last segment and are ignored for
//! decisions. Anything that could mean different things to us and to the
//! upstream is refused with 400: encoded slashes, backslashes, NUL and other
//! control bytes, invalid UTF-8, bad escapes, `..` above the root, and dot
//! segments carrying parameters. The path forwarded is re-encoded
//! canonically from the decided segments, so decoding it again never
//! changes its meaning.

use std::fmt::Write as _;

/// A path the pipeline decides on and forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Decoded, normalised path used for every decision (`/desktop/x`).
    pub decided: String,
    /// Canonically encoded path sent upstream, with the last segment's parameters.
    pub forward: String,
}

/// Why a path was refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    NotOriginForm,
    BadEscape,
    EncodedSlash,
    Backslash,
    ControlByte,
    InvalidUtf8,
    AboveRoot,
    ParamOnDotSegment,
    ParamOnEmptySegment,
    ParamNotLast,
    TrailingDotOrSpace,
}

impl BadPath {
    pub fn reason(self) -> &'static str {
        match self {
            BadPath::NotOriginForm => "path_not_origin_form",
            BadPath::BadEscape => "path_bad_escape",
            BadPath::EncodedSlash => "path_encoded_slash",
            BadPath::Backslash => "path_backslash",
            BadPath::ControlByte => "path_control_byte",
            BadPath::InvalidUtf8 => "path_invalid_utf8",
            BadPath::AboveRoot => "path_above_root",
            BadPath::ParamOnDotSegment => "path_param_on_dot_segment",
            BadPath::ParamOnEmptySegment => "path_param_on_empty_segment",
            BadPath::TrailingDotOrSpace => "path_trailing_dot_or_space",
            BadPath::ParamNotLast => "path_param_not_last",
        }
    }
}

/// Normalises a raw request path (without the query string).
pub fn normalize(raw: &str) -> Result<NormalPath, BadPath> {
    if is_canonical(raw) {
        // what `resolve` would make of it is itself (most paths are like this)
        return Ok(NormalPath {
            decided: raw.to_string(),
            forward: raw.to_string(),
        });
    }
    resolve(raw)
}

/// A path `resolve` returns unchanged: absolute, only bytes that are never
/// encoded, no empty segment but a trailing slash, no segment ending in a
/// dot (which covers `.` and `..`).
fn is_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut seg_start = 1;
    for i in 1..=b.len() {
        if i == b.len() || b[i] == b'/' {
            let seg = &b[seg_start..i];
            if (seg.is_empty() && i != b.len()) || seg.last() == Some(&b'.') {
                return false;
            }
            seg_start = i + 1;
        } else if !kept(b[i]) {
            return false;
        }
    }
    true
}

/// Splits, decodes and resolves the path, then encodes it again.
fn resolve(raw: &str) -> Result<NormalPath, BadPath> {
    if !raw.starts_with('/') {
        return Err(BadPath::NotOriginForm);
    }
    let raw_segments: Vec<&str> = raw[1..].split('/').collect();
    let last_index = raw_segments.len() - 1;
    let mut segments: Vec<String> = Vec::with_capacity(raw_segments.len());
    let mut params: Option<&str> = None;
    let mut trailing_slash = raw.ends_with('/');
    for (i, raw_seg) in raw_segments.iter().enumerate() {
        let (name, param) = match raw_seg.find(';') {
            Some(at) => (&raw_seg[..at], Some(&raw_seg[at..])),
            None => (*raw_seg, None),
        };
        let decoded = decode_segment(name)?;
        let is_dot = decoded == "." || decoded == "..";
        // `cfadmin.` or `cfadmin ` mean `cfadmin` to some file systems
        if !is_dot && (decoded.ends_with('.') || decoded.ends_with(' ')) {
            return Err(BadPath::TrailingDotOrSpace);
        }
        if let Some(p) = param {
            if is_dot {
                return Err(BadPath::ParamOnDotSegment);
            }
            if decoded.is_empty() {
                return Err(BadPath::ParamOnEmptySegment);
            }
            if i != last_index {
                return Err(BadPath::ParamNotLast);
            }
            check_param(p)?;
            params = Some(p);
        }
        match decoded.as_str() {
            "" => {}
            "." => trailing_slash |= i == last_index,
            ".." => {
                if segments.pop().is_none() {
                    return Err(BadPath::AboveRoot);
                }
                trailing_slash |= i == last_index;
            }
            _ => segments.push(decoded),
        }
    }
    let mut decided = String::with_capacity(raw.len());
    let mut forward = String::with_capacity(raw.len() + 8);
    for s in &segments {
        decided.push('/');
        decided.push_str(s);
        forward.push('/');
        encode_segment(s, &mut forward);
    }
    if segments.is_empty() || trailing_slash {
        decided.push('/');
        forward.push('/');
    }
    if let Some(p) = params {
        forward.push_str(p);
    }
    Ok(NormalPath { decided, forward })
}

/// Decodes `%XX` escapes once and refuses ambiguous bytes.
fn decode_segment(s: &str) -> Result<String, BadPath> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let v = if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| hex(*c));
            let lo = bytes.get(i + 2).and_then(|c| hex(*c));
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    i += 3;
                    h << 4 | l
                }
                _ => return Err(BadPath::BadEscape),
            }
        } else {
            i += 1;
            b
        };
        match v {
            b'/' => return Err(BadPath::EncodedSlash),
            b'\\' => return Err(BadPath::Backslash),
            0..=0x1f | 0x7f => return Err(BadPath::ControlByte),
            _ => out.push(v),
        }
    }
    String::from_utf8(out).map_err(|_| BadPath::InvalidUtf8)
}

/// Parameters are forwarded as written; they must still be clean bytes.
fn check_param(p: &str) -> Result<(), BadPath> {
    let decoded = decode_segment(&p.replace(';', ""))?;
    if decoded.contains("..") {
        return Err(BadPath::ParamOnDotSegment);
    }
    Ok(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Unreserved and sub-delimiters except `;`: written as they are.
fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

/// Unreserved and sub-delimiters except `;` pass; everything else is `%XX`.
fn encode_segment(s: &str, out: &mut String) {
    for b in s.bytes() {
        if kept(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(raw: &str) -> String {
        normalize(raw).expect(raw).decided
    }

    #[test]
    fn the_shortcut_agrees_with_the_full_resolution() {
        let paths = [
            "/",
            "/a",
            "/a/",
            "/desktop/js/app.js",
            "/finesse/api/User/1001",
            "/a//b",
            "//",
            "/a/./b",
            "/a/../b",
            "/..",
            "/.",
            "/a.",
            "/a/b./",
            "/.hidden",
            "/a/.b/c",
            "/a%20b",
            "/a;jsessionid=x",
            "/a b",
            "/a\\b",
            "/x:y@z!$&'()*+,=~-_",
            "relative",
            "",
            "/a/b//",
            "/é",
        ];
        for p in paths {
            assert_eq!(normalize(p), resolve(p), "{p:?}");
            if is_canonical(p) {
                assert_eq!(resolve(p).map(|n| n.decided).as_deref(), Ok(p), "{p:?}");
            }
        }
    }

    #[test]
    fn plain_paths_are_unchanged() {
        assert_eq!(decided("/desktop/container/"), "/desktop/container/");
        assert_eq!(decided("/finesse/api/User/1001"), "/finesse/api/User/1001");
        assert_eq!(decided("/"), "/");
    }

    #[test]
    fn dot_segments_and_duplicate_slashes_are_resolved() {
        assert_eq!(decided("/desktop/../cfadmin"), "/cfadmin");
        assert_eq!(decided("/desktop/%2e%2e/cfadmin"), "/cfadmin");
        assert_eq!(decided("/desktop/.%2E/cfadmin"), "/cfadmin");
        assert_eq!(decided("//cfadmin"), "/cfadmin");
        assert_eq!(decided("/desktop/./x"), "/desktop/x");
        assert_eq!(decided("/desktop/x/.."), "/desktop/");
    }

    #[test]
    fn escapes_are_decoded_once() {
        assert_eq!(decided("/%63fadmin"), "/cfadmin");
        // a double-encoded dot is the text "%2e", not a dot, and stays encoded upstream
        let p = normalize("/desktop/%252e%252e/cfadmin").expect("ok");
        assert_eq!(p.decided, "/desktop/%2e%2e/cfadmin");
        assert_eq!(p.forward, "/desktop/%252e%252e/cfadmin");
    }

    #[test]
    fn ambiguous_bytes_are_refused() {
        assert_eq!(normalize("/desktop%2fcfadmin"), Err(BadPath::EncodedSlash));
        assert_eq!(normalize("/desktop%2Fx"), Err(BadPath::EncodedSlash));
        assert_eq!(normalize("/desktop%5ccfadmin"), Err(BadPath::Backslash));
        assert_eq!(normalize("/desktop\\x"), Err(BadPath::Backslash));
        assert_eq!(normalize("/desktop%00x"), Err(BadPath::ControlByte));
        assert_eq!(normalize("/desktop%c0%ae"), Err(BadPath::InvalidUtf8));
        assert_eq!(normalize("/desktop%zz"), Err(BadPath::BadEscape));
        assert_eq!(normalize("/desktop%2"), Err(BadPath::BadEscape));
        assert_eq!(normalize("/.."), Err(BadPath::AboveRoot));
        assert_eq!(normalize("*"), Err(BadPath::NotOriginForm));
    }

    #[test]
    fn trailing_dots_and_spaces_are_refused() {
        assert_eq!(normalize("/cfadmin."), Err(BadPath::TrailingDotOrSpace));
        assert_eq!(normalize("/cfadmin%20"), Err(BadPath::TrailingDotOrSpace));
        assert_eq!(
            normalize("/desktop/.../x"),
            Err(BadPath::TrailingDotOrSpace)
        );
        assert_eq!(decided("/desktop/.hidden/x"), "/desktop/.hidden/x");
    }

    #[test]
    fn tomcat_parameters_follow_the_rules() {
        assert_eq!(
            normalize("/desktop/..;/cfadmin"),
            Err(BadPath::ParamOnDotSegment)
        );
        assert_eq!(
            normalize("/desktop/.;x/cfadmin"),
            Err(BadPath::ParamOnDotSegment)
        );
        assert_eq!(normalize("/desktop;x/cfadmin"), Err(BadPath::ParamNotLast));
        let p = normalize("/cfadmin;x=y").expect("ok");
        assert_eq!(p.decided, "/cfadmin");
        let p = normalize("/desktop/main.js;jsessionid=ABC").expect("ok");
        assert_eq!(p.decided, "/desktop/main.js");
        assert_eq!(p.forward, "/desktop/main.js;jsessionid=ABC");
        assert_eq!(
            normalize("/desktop/x;a=%2e%2e"),
            Err(BadPath::ParamOnDotSegment)
        );
        assert_eq!(normalize("/desktop/;x"), Err(BadPath::ParamOnEmptySegment));
        assert_eq!(normalize("/desktop//;x"), Err(BadPath::ParamOnEmptySegment));
    }

    #[test]
    fn forward_form_keeps_syntax_characters_encoded() {
        let p = normalize("/a%3Bb/c%3Fd/e%23f/g%25h/%20x").expect("ok");
        assert_eq!(p.decided, "/a;b/c?d/e#f/g%h/ x");
        assert_eq!(p.forward, "/a%3Bb/c%3Fd/e%23f/g%25h/%20x");
        // normalising the forwarded form again is a fixed point
        let again = normalize(&p.forward).expect("ok");
        assert_eq!(again, p);
    }

    #[test]
    fn utf8_is_kept_and_re_encoded() {
        let p = normalize("/desktop/%C3%A9t%C3%A9").expect("ok");
        assert_eq!(p.decided, "/desktop/été");
        assert_eq!(p.forward, "/desktop/%C3%A9t%C3%A9");
    }
}
