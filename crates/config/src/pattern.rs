//! Path patterns for the unauthenticated list and the rate classes.
//!
//! A pattern is a normalised path whose segments may hold `*` (any run of
//! characters inside one segment, e.g. `*.js`) or be `**` (any number of
//! whole segments, including none). `/desktop/**/*.css` matches every
//! stylesheet below `/desktop/`; `/finesse/api/UserAuthMode/*` matches one
//! user's entry and nothing below it. Patterns match the normalised path the
//! other decisions use, so encodings and dot segments cannot dodge them.

/// One compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segs: Vec<Seg>,
    /// What every matching path starts with (up to the segment of the
    /// first `*`): most patterns of a list are ruled out by it alone.
    prefix_len: usize,
    /// What every matching path ends with (`.js` of `**/*.js`): a list of
    /// one pattern per file type is ruled out by it before any glob runs.
    suffix_start: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Any,
    Glob(String),
}

impl PathPattern {
    /// Compiles a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("a pattern starts with /".into());
        };
        if text.contains(['%', ';', '\\', '?', '#']) {
            return Err("a pattern is a plain normalised path (no %, ;, \\, ? or #)".into());
        }
        let mut segs = Vec::new();
        for s in rest.split('/') {
            if s == "." || s == ".." {
                return Err("a pattern has no dot segments".into());
            }
            if s.contains("**") && s != "**" {
                return Err("** stands alone between slashes".into());
            }
            segs.push(if s == "**" {
                Seg::Any
            } else {
                Seg::Glob(s.to_string())
            });
        }
        let prefix_len = match text.find('*') {
            Some(star) => text[..star].rfind('/').unwrap_or(0),
            None => text.len(),
        };
        // the literal tail of the last segment, after its last `*`
        let last = text.rsplit('/').next().unwrap_or("");
        let suffix_start = match last.rfind('*') {
            Some(star) => text.len() - last.len() + star + 1,
            None => text.len() - last.len(),
        };
        Ok(PathPattern {
            text: text.to_string(),
            segs,
            prefix_len,
            suffix_start,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Does the normalised `path` match? `fold_case` compares without case.
    pub fn matches(&self, path: &str, fold_case: bool) -> bool {
        let prefix = &self.text.as_bytes()[..self.prefix_len];
        let starts = path.as_bytes().get(..prefix.len()).is_some_and(|head| {
            if fold_case {
                head.eq_ignore_ascii_case(prefix)
            } else {
                head == prefix
            }
        });
        let suffix = &self.text.as_bytes()[self.suffix_start..];
        let ends = path.len() >= suffix.len() && {
            let tail = &path.as_bytes()[path.len() - suffix.len()..];
            if fold_case {
                tail.eq_ignore_ascii_case(suffix)
            } else {
                tail == suffix
            }
        };
        if !starts || !ends {
            return false;
        }
        match path.strip_prefix('/') {
            Some(rest) => match_segs(&self.segs, rest, fold_case),
            None => false,
        }
    }
}

/// Matches pattern segments against `/`-separated path segments.
fn match_segs(segs: &[Seg], path: &str, fold: bool) -> bool {
    let Some((first, rest)) = segs.split_first() else {
        return false;
    };
    let (head, tail) = match path.bytes().position(|b| b == b'/') {
        Some(i) => (&path[..i], Some(&path[i + 1..])),
        None => (path, None),
    };
    match first {
        Seg::Any => {
            if rest.is_empty() {
                return true;
            }
            // zero segments, or swallow one and try again
            match_segs(rest, path, fold) || tail.is_some_and(|t| match_segs(segs, t, fold))
        }
        Seg::Glob(g) => {
            if !glob(g.as_bytes(), head.as_bytes(), fold) {
                return false;
            }
            match (rest.is_empty(), tail) {
                (true, None) => true,
                (true, Some(_)) | (false, None) => {
                    // `/a/**` also matches `/a`
                    tail.is_none() && rest.len() == 1 && rest[0] == Seg::Any
                }
                (false, Some(t)) => match_segs(rest, t, fold),
            }
        }
    }
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob(p: &[u8], s: &[u8], fold: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && eq(p[pi], s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

/// Does any pattern of a list match?
pub fn any_matches(list: &[PathPattern], path: &str, fold_case: bool) -> bool {
    list.iter().any(|p| p.matches(path, fold_case))
}

/// A list of patterns indexed by their literal prefix: a path is tried
/// only against the patterns whose prefix it starts with (a Finesse
/// unauthenticated list has about 130 patterns, and this runs for every
/// request). Reads as the plain list (`Deref`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatternSet {
    all: Vec<PathPattern>,
    /// Literal prefix (segment-aligned) -> indexes into `all`.
    by_prefix: std::collections::HashMap<String, Vec<usize>, Fnv>,
}

/// FNV-1a for the prefix index: its keys come from the config, so a
/// request cannot fill it with collisions, and a lookup per path segment
/// must be cheap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fnv;

impl std::hash::BuildHasher for Fnv {
    type Hasher = FnvHasher;
    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FromIterator<PathPattern> for PatternSet {
    fn from_iter<I: IntoIterator<Item = PathPattern>>(iter: I) -> Self {
        let all: Vec<PathPattern> = iter.into_iter().collect();
        let mut by_prefix: std::collections::HashMap<String, Vec<usize>, Fnv> = Default::default();
        for (i, p) in all.iter().enumerate() {
            by_prefix
                .entry(p.text[..p.prefix_len].to_string())
                .or_default()
                .push(i);
        }
        PatternSet { all, by_prefix }
    }
}

impl std::ops::Deref for PatternSet {
    type Target = [PathPattern];
    fn deref(&self) -> &[PathPattern] {
        &self.all
    }
}

impl PatternSet {
    /// Does any pattern match the normalised `path`?
    pub fn matches(&self, path: &str, fold_case: bool) -> bool {
        if fold_case {
            // the index is exact-case: fold-case components scan the list
            return any_matches(&self.all, path, true);
        }
        let try_key = |key: &str| {
            self.by_prefix
                .get(key)
                .is_some_and(|ix| ix.iter().any(|&i| self.all[i].matches(path, false)))
        };
        // every segment boundary of the path, the empty prefix, and the whole path
        if try_key("") || try_key(path) {
            return true;
        }
        // a byte scan: `match_indices` costs more on these short paths
        path.bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'/')
            .skip(1)
            .any(|(i, _)| try_key(&path[..i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        let one = PathPattern::parse(p).expect("pattern");
        let plain = one.matches(path, false);
        let set: PatternSet = [one].into_iter().collect();
        assert_eq!(
            set.matches(path, false),
            plain,
            "{p} {path}: the index disagrees"
        );
        plain
    }

    #[test]
    fn globs_and_double_stars() {
        assert!(m("/desktop/**/*.css", "/desktop/a.css"));
        assert!(m("/desktop/**/*.css", "/desktop/x/y/a.css"));
        assert!(!m("/desktop/**/*.css", "/desktop/x/y/a.css/z"));
        assert!(!m("/desktop/**/*.css", "/finesse/a.css"));
        assert!(m(
            "/finesse/api/UserAuthMode/*",
            "/finesse/api/UserAuthMode/1001"
        ));
        assert!(!m(
            "/finesse/api/UserAuthMode/*",
            "/finesse/api/UserAuthMode/1001/x"
        ));
        assert!(!m(
            "/finesse/api/UserAuthMode/*",
            "/finesse/api/userauthmode/1001"
        ));
        assert!(m("/desktop/", "/desktop/"));
        assert!(!m("/desktop/", "/desktop/x"));
        assert!(!m("/desktop/", "/desktop"));
        assert!(m("/desktop/sso/**", "/desktop/sso/token"));
        assert!(m("/desktop/sso/**", "/desktop/sso"));
        assert!(m("/desktop/sso/**", "/desktop/sso/"));
        assert!(!m("/desktop/sso/**", "/desktop/ssox"));
        assert!(m(
            "/finesse/api/User/*/ClientLog",
            "/finesse/api/User/1001/ClientLog"
        ));
        assert!(m("/**", "/anything/at/all"));
        assert!(m("/a*b*c", "/aXXbYYc"));
        assert!(!m("/a*b*c", "/aXXbYY"));
        assert!(PathPattern::parse("/Desktop/*.JS")
            .expect("p")
            .matches("/desktop/a.js", true));
        assert!(!m("/x", ""));
    }

    #[test]
    fn bad_patterns_are_explained() {
        for bad in ["desktop/", "/a/../b", "/a%2f", "/a;x", "/a**/b", "/a?b"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
