//! Helpers shared by the harness's own tests.
#![allow(dead_code)]

use std::process::Command;

use rkt_types::Digest;

/// Runs `skopeo ARGS…`, returning stdout, or panicking with stderr.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = skopeo_output(args);
    assert!(
        out.status.success(),
        "skopeo {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `skopeo ARGS…` and returns its output whatever the status.
pub fn skopeo_output(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("skopeo is not installed; run scripts/install.sh --tests")
}

/// `skopeo inspect ARGS…` parsed as JSON.
pub fn inspect(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["inspect"];
    a.extend_from_slice(args);
    serde_json::from_slice(&skopeo(&a)).expect("skopeo inspect printed JSON")
}

/// sha256 of `skopeo inspect --raw ARGS…` (the manifest bytes as stored).
pub fn raw_digest(args: &[&str]) -> Digest {
    let mut a = vec!["inspect", "--raw"];
    a.extend_from_slice(args);
    Digest::sha256_of(&skopeo(&a))
}

/// sha256 of `skopeo inspect --config --raw ARGS…` (the config bytes).
pub fn config_digest(args: &[&str]) -> Digest {
    let mut a = vec!["inspect", "--config", "--raw"];
    a.extend_from_slice(args);
    Digest::sha256_of(&skopeo(&a))
}

/// The `Digest` field of `skopeo inspect`.
pub fn reported_digest(v: &serde_json::Value) -> Digest {
    v["Digest"]
        .as_str()
        .expect("Digest in skopeo output")
        .parse()
        .expect("a valid digest")
}
