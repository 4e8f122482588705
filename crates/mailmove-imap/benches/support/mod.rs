//! What the IMAP benches share: starting a throw-away server with the project's own script.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Runs `scripts/SCRIPT start DIR` and returns the variables it wrote to `DIR/env`
/// (`export NAME=VALUE` lines).
pub fn start_server(script: &str, dir: &Path) -> BTreeMap<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts").join(script);
    let output = Command::new(&script).arg("start").arg(dir).output().expect("run the server script");
    assert!(
        output.status.success(),
        "{} start failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let env = std::fs::read_to_string(dir.join("env")).expect("DIR/env");
    env.lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
