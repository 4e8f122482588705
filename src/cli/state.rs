//! Where a job's checkpoint lives by default.

use std::path::PathBuf;

/// The default checkpoint file of the job `source` → `destination` (identities carry no secrets),
/// so running the same command again resumes the same job.
pub fn default_state_path(source_identity: &str, destination_identity: &str) -> PathBuf {
    let directory = std::env::var_os("MAILMOVE_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|dir| PathBuf::from(dir).join("mailmove")))
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state/mailmove")))
        .unwrap_or_else(|| PathBuf::from(".mailmove-state"));
    let mut hasher = blake3::Hasher::new();
    hasher.update(source_identity.as_bytes());
    hasher.update(b"\n");
    hasher.update(destination_identity.as_bytes());
    let hash = hasher.finalize().to_hex();
    directory.join(format!("job-{}.sqlite", &hash[..16]))
}
