//! `deskgate gen-certs`: a private CA and the certificate files a config names.

use deskgate_devcerts::Ca;
use std::path::Path;

/// Writes missing files (or all, with `force`). Keys are owner-only.
pub fn run(config: &Path, force: bool) -> Result<(), String> {
    let plan = deskgate_config::cert_plan(config).map_err(|e| e.to_string())?;
    let ca = Ca::new("deskgate lab CA").map_err(|e| e.to_string())?;
    let dir = config.parent().unwrap_or(Path::new("."));
    let ca_path = plan
        .trust
        .first()
        .cloned()
        .unwrap_or_else(|| dir.join("certs").join("ca.pem"));
    let mut wrote = 0;
    let missing = |p: &Path| force || !p.exists();
    let needed = plan.server.iter().any(|s| missing(&s.cert))
        || plan.trust.iter().any(|t| missing(t))
        || plan.client.iter().any(|(c, _)| missing(c));
    if !needed {
        println!("all certificate files exist (use --force to remake them)");
        return Ok(());
    }
    // One new CA signs everything written now, so every trust path gets it.
    for t in plan.trust.iter().chain(std::iter::once(&ca_path)) {
        write(t, ca.cert_pem(), false)?;
        wrote += 1;
    }
    for s in &plan.server {
        let names: Vec<&str> = s.names.iter().map(String::as_str).collect();
        let issued = ca.server(&names).map_err(|e| e.to_string())?;
        write(&s.cert, &issued.cert_pem, false)?;
        if let Some(k) = &s.key {
            write(k, &issued.key_pem, true)?;
        }
        wrote += 1;
    }
    for (c, k) in &plan.client {
        let issued = ca.client("deskgate").map_err(|e| e.to_string())?;
        write(c, &issued.cert_pem, false)?;
        if let Some(k) = k {
            write(k, &issued.key_pem, true)?;
        }
        wrote += 1;
    }
    println!(
        "wrote {wrote} certificate file set(s); clients trust {}",
        ca_path.display()
    );
    Ok(())
}

fn write(path: &Path, pem: &str, secret: bool) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
