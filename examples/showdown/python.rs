//! Python's `multiprocessing` on the same workloads, through
//! `benches/python/showdown.py`, run once per round.

use std::collections::BTreeMap;
use std::process::Command;

/// The implementation name of every Python row.
pub const NAME: &str = "Python multiprocessing";

/// Runs the script and returns its seconds per operation by workload key.
pub fn run(scale: f64) -> Result<BTreeMap<String, f64>, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/showdown.py");
    let output = Command::new("python3")
        .args([script, "--scale", &scale.to_string()])
        .output()
        .map_err(|e| format!("python3 not run ({e})"))?;
    if !output.status.success() {
        return Err(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("unreadable output: {e}"))
}
