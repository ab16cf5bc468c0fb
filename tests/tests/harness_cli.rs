//! The `rkt-fixtures` binary: `build --print-paths` describes the cache, and `serve` runs a
//! registry with the requested fixtures until SIGTERM, then cleans up.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{inspect, reported_digest};
use rkt_tests::Fixtures;

const BIN: &str = env!("CARGO_BIN_EXE_rkt-fixtures");

#[test]
fn build_prints_the_fixture_description() {
    let fx = Fixtures::get();
    let out = Command::new(BIN)
        .args(["build", "--print-paths"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["small"]["busybox"]["path"],
        fx.busybox.path.to_str().unwrap()
    );
    assert_eq!(
        v["small"]["busybox"]["image"]["manifest"]["digest"],
        fx.busybox.image.manifest.digest.to_string()
    );
    assert!(v["large"].is_null());
    let list = Command::new(BIN).arg("list").output().unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.lines().any(|l| l == "adversarial/zip-bomb"),
        "{names}"
    );
}

#[test]
fn serve_runs_until_sigterm() {
    let fx = Fixtures::get();
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready.json");
    let mut child = Command::new(BIN)
        .args(["serve", "--tls", "--auth", "token"])
        .args(["--push", "busybox=busybox", "--push", "multi:v1=multiarch"])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("rkt-fixtures serve exited with {st}: {err}");
        }
        assert!(Instant::now() < deadline, "no ready file after 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    let addr = info["addr"].as_str().unwrap();
    assert!(addr.starts_with("127.0.0.1:"));
    assert_eq!(
        info["pushed"][0]["digest"],
        fx.busybox.image.manifest.digest.to_string()
    );
    assert_eq!(info["pushed"][1]["reference"], format!("{addr}/multi:v1"));
    let cert_dir = format!("--cert-dir={}", info["cert_dir"].as_str().unwrap());
    let creds = format!(
        "--creds={}:{}",
        info["username"].as_str().unwrap(),
        info["password"].as_str().unwrap()
    );
    let v = inspect(&[
        &cert_dir,
        &creds,
        &format!("docker://{addr}/busybox:latest"),
    ]);
    assert_eq!(reported_digest(&v), fx.busybox.image.manifest.digest);

    let registry_pid = info["registry_pid"].as_u64().unwrap();
    let ca = info["ca"].as_str().unwrap().to_owned();
    // Not kill(1): it comes from procps, which a minimal Debian lacks.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a live child");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
    assert!(!ready.exists(), "ready file left behind");
    assert!(!Path::new(&ca).exists(), "registry directory left behind");
    assert!(
        !Path::new(&format!("/proc/{registry_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{registry_pid}/status"))
                .unwrap_or_default()
                .contains("State:\tZ"),
        "registry still running"
    );
}

#[test]
fn registry_dies_when_serve_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready.json");
    let mut child = Command::new(BIN)
        .args(["serve", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        assert!(Instant::now() < deadline, "no ready file after 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    let registry_pid = info["registry_pid"].as_u64().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // SIGKILL gives no chance to clean up: the kernel's parent-death signal stops it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status =
            std::fs::read_to_string(format!("/proc/{registry_pid}/status")).unwrap_or_default();
        if status.is_empty() || status.contains("State:\tZ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "registry {registry_pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
