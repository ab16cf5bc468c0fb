//! Helpers for the tests on real cgroups (they run as root, under the test process's own
//! cgroup, and remove what they make even when an assertion fails).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use rkt_cgroups::{Cgroup, Hierarchies};

/// A cgroup name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "rkt-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Kills everything in the cgroup and removes it when dropped.
pub struct Guard(pub Cgroup);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill_all() {
            eprintln!("cleanup: kill_all: {e}");
        }
        if let Err(e) = self.0.remove() {
            eprintln!("cleanup: remove: {e}");
        }
    }
}

impl std::ops::Deref for Guard {
    type Target = Cgroup;
    fn deref(&self) -> &Cgroup {
        &self.0
    }
}

/// A child process, killed and reaped when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sleep 300`, to have a process to move around.
pub fn sleeper() -> Proc {
    Proc(
        Command::new("sleep")
            .arg("300")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep"),
    )
}

/// The `/proc/<pid>/cgroup` paths of a process, keyed by the controller list (`""` for v2).
pub fn proc_cgroups(pid: i32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next();
            (it.next().unwrap().to_owned(), it.next().unwrap().to_owned())
        })
        .collect()
}

/// Space-separated words of a cgroup file.
pub fn words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A cgroup file's contents, trimmed.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

pub fn discover() -> Hierarchies {
    Hierarchies::discover().expect("discover cgroups")
}
