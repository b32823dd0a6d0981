//! The certificate files a config names, for `deskgate gen-certs`: it makes
//! a private CA and the missing files so the example (or a lab) runs
//! before real certificates exist. Only the file model is read, since the
//! files it lists do not exist yet.

use crate::error::{ConfigError, KeyPath, Problem};
use crate::file::FileConfig;
use std::path::{Path, PathBuf};

/// A server certificate to make.
#[derive(Debug, Clone)]
pub struct ServerCertPlan {
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: Option<PathBuf>,
}

/// Everything `gen-certs` should write.
#[derive(Debug, Clone, Default)]
pub struct CertPlan {
    pub server: Vec<ServerCertPlan>,
    /// Trust bundles: written with the CA certificate.
    pub trust: Vec<PathBuf>,
    /// Client certificates for upstream mutual TLS (cert, key).
    pub client: Vec<(PathBuf, Option<PathBuf>)>,
}

pub fn cert_plan(path: &Path) -> Result<CertPlan, ConfigError> {
    let err = |message: String| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: None,
            key: KeyPath::root(),
            message,
            hint: "run deskgate check -c FILE for details".into(),
        }],
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let f: FileConfig = toml_edit::de::from_str(&text).map_err(|e| err(e.message().to_string()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let abs = |s: &str| {
        let p = Path::new(s);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let mut plan = CertPlan::default();
    for l in &f.listener {
        for c in &l.cert {
            plan.server.push(ServerCertPlan {
                names: c.names.clone(),
                cert: abs(&c.cert),
                key: c.key_file.as_deref().map(abs),
            });
        }
    }
    let tls = f
        .upstream_tls
        .iter()
        .chain(f.component.iter().filter_map(|c| c.upstream_tls.as_ref()));
    for u in tls {
        if let Some(t) = &u.trust {
            plan.trust.push(abs(t));
        }
        if let Some(c) = &u.client_cert {
            plan.client
                .push((abs(c), u.client_key_file.as_deref().map(abs)));
        }
    }
    plan.trust.sort();
    plan.trust.dedup();
    plan.client.sort();
    plan.client.dedup();
    Ok(plan)
}
