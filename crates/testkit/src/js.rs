//! Real JavaScript clients (tests/js): run one script with Node and collect
//! what it printed.

use std::ffi::OsString;
use std::path::PathBuf;

/// `tests/js` of the workspace.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

/// What a script printed, and whether it exited 0.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with everything the script said unless it succeeded.
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.ok,
            "{what} failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
    }
}

/// Runs `node <script>` in tests/js with `env`. `None` (after a loud skip
/// line) when Node or one of `packages` is missing and
/// DESKGATE_ALLOW_MISSING_TOOLS=1; otherwise a missing tool fails the test.
pub async fn run(script: &str, packages: &[&str], env: &[(&str, OsString)]) -> Option<Run> {
    let node = crate::require("node")?;
    for p in packages {
        if !dir().join("node_modules").join(p).exists() {
            if std::env::var("DESKGATE_ALLOW_MISSING_TOOLS").as_deref() == Ok("1") {
                eprintln!(
                    "SKIPPED LOUDLY: npm package {p} is missing (run .ci/install-test-tools)"
                );
                return None;
            }
            panic!("npm package {p} is missing in tests/js: run .ci/install-test-tools");
        }
    }
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(script).current_dir(dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run node");
    Some(Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
