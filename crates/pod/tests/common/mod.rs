//! Helpers shared by the integration tests: a fresh data dir, state counts, and running this
//! test binary again as a child process in a given role.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rkt_pod::{PodState, Pods, Uuid};

/// Environment variable naming the role a child copy of the test binary plays.
pub const ROLE_ENV: &str = "RKT_POD_TEST_ROLE";
/// Environment variable carrying the data dir to a child.
pub const DIR_ENV: &str = "RKT_POD_TEST_DIR";
/// Environment variable carrying an argument (a UUID, a name) to a child.
pub const ARG_ENV: &str = "RKT_POD_TEST_ARG";
/// Prefix of the lines a child reports on stdout (the test harness prints its own lines too).
pub const REPORT: &str = "REPORT ";

pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rkt-pod-test")
        .tempdir()
        .expect("temp dir")
}

pub fn open(dir: &Path) -> Pods {
    Pods::open(dir).expect("open pods")
}

/// How many pods are in each state.
pub fn counts(pods: &Pods) -> BTreeMap<PodState, usize> {
    let mut m = BTreeMap::new();
    for p in pods.list().expect("list") {
        *m.entry(p.state).or_default() += 1;
    }
    m
}

pub fn state_of(pods: &Pods, uuid: Uuid) -> Option<PodState> {
    pods.find(uuid).expect("find").map(|h| h.state())
}

/// Polls until `f` holds, failing the test after 10 s.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts this test binary again, running only `test` with `role`.
pub fn spawn_role(
    test: &str,
    role: &str,
    dir: &Path,
    arg: &str,
) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(DIR_ENV, dir)
        .env(ARG_ENV, arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    (child, out)
}

/// The next report line of a child (without the prefix), or `None` at EOF.
pub fn next_report(out: &mut BufReader<ChildStdout>) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).expect("read child stdout") == 0 {
            return None;
        }
        // The harness may have started the line ("test name ... ").
        if let Some(at) = line.find(REPORT) {
            return Some(line[at + REPORT.len()..].trim_end().to_owned());
        }
    }
}

/// In a child: the role it was started for, with the data dir and argument.
pub fn child_role() -> Option<(String, std::path::PathBuf, String)> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let dir = std::env::var_os(DIR_ENV)
        .expect("data dir for the child")
        .into();
    let arg = std::env::var(ARG_ENV).unwrap_or_default();
    Some((role, dir, arg))
}

/// In a child: reports a line to the parent.
pub fn report(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{REPORT}{line}").expect("write report");
    out.flush().expect("flush report");
}

/// In a child: blocks until the parent writes a line (or closes stdin).
pub fn wait_for_parent() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}
