//! The sandbox every networking test runs in, and helpers to look at what plugins did.
//!
//! Network safety: a test never touches the machine's own network namespace: `sandbox_test!`
//! runs its body in a fresh one (`rkt_tests::netns`, entered with `ip netns exec`: only `lo`, no
//! default route, its own mount namespace, deleted when the test ends). Everything the test
//! starts (plugins, iptables, busybox) inherits that namespace, so veths, routes and NAT rules
//! land there and lead nowhere.
//!
//! A pod's network namespace ([`PodNs`]) is made inside the sandbox by `unshare --net sleep`,
//! bound to a file with `create_netns_file` (the code under test), after which the sleeper is
//! killed: the bind mount alone keeps the namespace, as in a real pod directory.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rkt_net::{Cni, create_netns_file, remove_netns_file};

/// Defines a test whose body runs inside a fresh network namespace, with a private mount
/// namespace (`ip netns exec`), so the netns bind mounts a test makes vanish with its run.
#[macro_export]
macro_rules! sandbox_test {
    ($($test:tt)*) => {
        rkt_tests::net_sandbox_test!(NetAndMounts; $($test)*);
    };
}

pub use rkt_tests::netns::{exchange as echo, run};

/// A pod's network namespace, bound on `<dir>/netns`.
pub struct PodNs {
    pub path: PathBuf,
}

impl PodNs {
    pub fn new(dir: &Path) -> PodNs {
        let mut sleeper = Command::new("unshare")
            .args(["--net", "--", "sleep", "300"])
            .spawn()
            .unwrap();
        let proc_ns = format!("/proc/{}/ns/net", sleeper.id());
        let ours = fs::read_link("/proc/self/ns/net").unwrap();
        let start = Instant::now();
        // unshare(1) may not have unshared yet: wait until its netns differs from ours.
        while fs::read_link(&proc_ns).map_or(true, |l| l == ours) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "unshare --net did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let path = dir.join("netns");
        create_netns_file(sleeper.id() as i32, &path).unwrap();
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        let pod = PodNs { path };
        pod.run("ip link set lo up");
        pod
    }

    /// Runs a shell command in the pod's network namespace; returns stdout.
    pub fn run(&self, script: &str) -> String {
        run(
            "nsenter",
            &[
                &format!("--net={}", self.path.display()),
                "sh",
                "-c",
                script,
            ],
        )
    }

    /// Starts a one-connection echo server on `port` in the pod.
    pub fn echo_server(&self, port: u16) -> Server {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args([
                "busybox",
                "nc",
                "-l",
                "-p",
                &port.to_string(),
                "-e",
                "/bin/busybox",
                "cat",
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Server(child)
    }
}

impl Drop for PodNs {
    fn drop(&mut self) {
        let _ = remove_netns_file(&self.path);
    }
}

/// A server process, killed on drop.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `addr` answers a ping from the sandbox.
pub fn pings(addr: IpAddr) -> bool {
    Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "2", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// The veth interfaces in the sandbox (the host sides of pod links).
pub fn veths() -> Vec<String> {
    run("ip", &["-o", "link", "show", "type", "veth"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The veths left once the kernel has finished tearing down network namespaces that were let
/// go (that happens asynchronously, after the last reference is dropped, and takes the pods'
/// veth pairs with it): polls [`veths`] for up to 10 s.
pub fn veths_settled() -> Vec<String> {
    let start = Instant::now();
    loop {
        let left = veths();
        if left.is_empty() || start.elapsed() > Duration::from_secs(10) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub use rkt_tests::netns::leases;

/// The NAT rules and chains plugins made for one pod: every line of `iptables -t nat -S` that
/// names the container, or a per-pod chain (`CNI-<hash>`, `CNI-DN-<hash>`). portmap's shared
/// chains (`CNI-HOSTPORT-*`) stay by design and are not counted.
pub fn pod_nat_rules(container_id: &str) -> Vec<String> {
    run("iptables", &["-w", "-t", "nat", "-S"])
        .lines()
        .filter(|l| {
            l.contains(container_id)
                || l.split_whitespace()
                    .any(|w| w.starts_with("CNI-") && !w.starts_with("CNI-HOSTPORT-"))
        })
        .map(str::to_string)
        .collect()
}

/// A directory of test plugins (shell scripts), placed before the system plugins.
pub struct Plugins {
    pub dir: tempfile::TempDir,
}

impl Plugins {
    pub fn new() -> Plugins {
        Plugins {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Adds an executable script plugin.
    pub fn add(&self, name: &str, script: &str) {
        let path = self.dir.path().join(name);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A client searching these plugins, then Debian's.
    pub fn cni(&self) -> Cni {
        Cni::new(vec![
            self.dir.path().to_path_buf(),
            Cni::SYSTEM_PLUGIN_DIR.into(),
        ])
        .unwrap()
    }
}

/// The addresses in `ip -o addr` of the pod's `ifname`.
pub fn pod_addrs(pod: &PodNs, ifname: &str) -> BTreeSet<String> {
    pod.run(&format!("ip -o addr show dev {ifname}"))
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet" || *x == "inet6")?;
            w.next().map(str::to_string)
        })
        .filter(|a| !a.starts_with("fe80:"))
        .collect()
}
