//! What the benches share: reading criterion's results back, running the
//! Python script that measures the same workload in `multiprocessing`,
//! worker crews ([`crew`]), raw frames ([`frame`]), message types
//! ([`message`]) and trivial children ([`spawn`]), also used by
//! `examples/showdown`.

#![allow(dead_code)]

pub mod crew;
pub mod frame;
pub mod message;
pub mod spawn;

use std::process::Command;

/// Criterion's median estimate for `id` (seconds per iteration).
pub fn median(id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = format!("{dir}/criterion/{id}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let start = text.find("\"median\"")?;
    let at = text[start..].find("\"point_estimate\":")? + start + "\"point_estimate\":".len();
    let end = text[at..].find([',', '}'])? + at;
    Some(text[at..end].trim().parse::<f64>().ok()? * 1e-9)
}

/// Runs `benches/python/<script>` with `arg` and returns its output lines
/// of the form `name number`.
pub fn python(script: &str, arg: &str) -> Result<Vec<(String, f64)>, String> {
    let path = format!("{}/benches/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .args([path.as_str(), arg])
        .output()
        .map_err(|e| format!("python3 not run ({e})"))?;
    if !output.status.success() {
        return Err(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect())
}
