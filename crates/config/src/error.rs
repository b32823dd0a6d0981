//! Config problems that name the file, the line, the key and what to do.

use std::fmt;
use std::path::PathBuf;

/// One segment of a key path such as `listener[1].cert[0].names`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A key path inside the config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }
    /// This path with a key appended.
    pub fn key(&self, k: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        KeyPath(v)
    }
    /// This path with an array index appended.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        KeyPath(v)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        if first {
            f.write_str("(top level)")?;
        }
        Ok(())
    }
}

/// One problem found in a config file.
#[derive(Clone, Debug)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line, when the key could be located.
    pub line: Option<usize>,
    pub key: KeyPath,
    /// What is wrong.
    pub message: String,
    /// What to change.
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}", self.key, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (fix: {})", self.hint)?;
        }
        Ok(())
    }
}

/// All the problems of one config file; an empty list never leaves `load`.
#[derive(Clone, Debug)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Problems collected during validation, before lines are looked up.
#[derive(Default)]
pub(crate) struct Problems {
    pub(crate) list: Vec<(KeyPath, String, String)>,
}

impl Problems {
    pub(crate) fn add(
        &mut self,
        key: KeyPath,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.list.push((key, message.into(), hint.into()));
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
