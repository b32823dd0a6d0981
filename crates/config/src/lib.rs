//! deskgate configuration: one TOML file for a whole deployment.
//!
//! Two layers: the file model (`file`, serde, unknown keys rejected) and the
//! validated immutable runtime (`runtime`). `load` reports every problem with
//! the file, line, key and what to change; it never returns half a config.
#![forbid(unsafe_code)]

pub mod error;
mod file;
pub mod kinds;
pub mod pattern;
mod plan;
pub mod proxymap;
pub mod runtime;
pub mod security;
mod spans;
pub mod tls;
mod validate;

pub use error::{ConfigError, KeyPath, Problem};
pub use plan::{cert_plan, CertPlan, ServerCertPlan};
pub use runtime::*;
pub use security::*;

use std::path::Path;
use toml_edit::ImDocument;

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Deployment, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: None,
            key: KeyPath::root(),
            message: format!("cannot read the config file: {e}"),
            hint: "check the path given with -c".into(),
        }],
    })?;
    load_str(&text, path)
}

/// Parses and validates config text; `path` names it in messages and anchors relative paths.
pub fn load_str(text: &str, path: &Path) -> Result<Deployment, ConfigError> {
    let one = |line, key: Option<KeyPath>, message: String, hint: &str| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line,
            key: key.unwrap_or_default(),
            message,
            hint: hint.into(),
        }],
    };
    let doc = ImDocument::parse(text.to_string()).map_err(|e| {
        let line = e.span().map(|s| spans::line_of_offset(text, s.start));
        one(line, None, flatten(e.message()), "fix the TOML syntax")
    })?;
    let model: file::FileConfig = toml_edit::de::from_document(doc.clone()).map_err(|e| {
        let line = e.span().map(|s| spans::line_of_offset(text, s.start));
        let key = e.span().and_then(|s| spans::path_at(&doc, s.start));
        let msg = flatten(e.message());
        let hint = if msg.contains("unknown field") {
            "remove or correct the key; see examples/deskgate.toml for every key"
        } else {
            "correct the value's type"
        };
        one(line, key, msg, hint)
    })?;
    validate::validate(model, path).map_err(|list| ConfigError {
        problems: list
            .into_iter()
            .map(|(key, message, hint)| Problem {
                file: path.to_path_buf(),
                line: spans::line_of(&doc, &key),
                key,
                message,
                hint,
            })
            .collect(),
    })
}

fn flatten(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
