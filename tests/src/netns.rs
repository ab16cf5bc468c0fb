//! The network sandbox every test of pod networking runs in.
//!
//! Network safety: such a test never touches the machine's own network namespace. [`sandboxed`]
//! makes a fresh network namespace (`ip netns add`: only `lo`, no default route, no uplink) and
//! re-runs the test binary inside it, with an environment variable telling that run to do the
//! work. Everything the test starts (rkt, its stage1, CNI plugins, iptables) inherits the
//! namespace, so veths, routes and NAT rules land there and lead nowhere. The namespace is
//! deleted when the test ends, pass or fail.
//!
//! How the run enters it ([`Enter`]): `nsenter --net=…` changes the network namespace only, so
//! the cgroup hierarchies pods need stay visible and the pods' netns bind mounts are made on the
//! host, where the test's checks for leftovers see them (rkt's end-to-end tests); `ip netns exec`
//! also gives the run its own mount namespace and remounts `/sys`, so bind mounts the test makes
//! vanish with it (the `rkt-net` tests, which start no pods).

use std::env;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const INNER: &str = "RKT_E2E_NET_SANDBOX";
const DONE: &str = "RKT_E2E_NET_DONE";

/// Defines a test whose body runs inside a fresh network namespace, entered as [`Enter`] says
/// (`NetOnly` unless the definition starts with `NetAndMounts;`).
#[macro_export]
macro_rules! net_sandbox_test {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $crate::net_sandbox_test!(NetOnly; $(#[$m])* fn $name() $body);
    };
    ($enter:ident; $(#[$m:meta])* fn $name:ident() $body:block) => {
        #[test]
        $(#[$m])*
        fn $name() {
            let path = concat!(module_path!(), "::", stringify!($name));
            // libtest names tests without the crate name.
            let path = path.split_once("::").map_or(path, |(_, rest)| rest);
            $crate::netns::sandboxed(path, $crate::netns::Enter::$enter, || $body);
        }
    };
}

/// How the test's run enters its network namespace (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enter {
    /// `nsenter --net=…`: the network namespace only.
    NetOnly,
    /// `ip netns exec`: the network namespace, a private mount namespace and its own `/sys`.
    NetAndMounts,
}

/// Whether this process is the run inside a sandbox.
pub fn inside() -> bool {
    env::var_os(INNER).is_some()
}

/// The sandbox's name (`ip netns` name), inside one.
pub fn name() -> Option<String> {
    env::var(INNER).ok()
}

/// Runs `body` in a fresh network namespace, entered as `enter` says (see the module docs).
pub fn sandboxed(test: &str, enter: Enter, body: impl FnOnce()) {
    if inside() {
        body();
        fs::write(env::var_os(DONE).expect("the sandbox sets DONE"), "ok").unwrap();
        return;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "the networking tests need root"
    );
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "rkte2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let ns = Netns::add(&name);
    run("ip", &["-n", &ns.0, "link", "set", "lo", "up"]);
    let scratch = tempfile::tempdir().unwrap();
    let done = scratch.path().join("done");
    let mut c = match enter {
        Enter::NetOnly => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{}", ns.0));
            c
        }
        Enter::NetAndMounts => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.0]);
            c
        }
    };
    let status = c
        .arg(env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INNER, &ns.0)
        .env(DONE, &done)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{test} failed inside network namespace {}",
        ns.0
    );
    assert!(done.exists(), "the run inside {} did not run {test}", ns.0);
}

/// A named network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn add(name: &str) -> Netns {
        run("ip", &["netns", "add", name]);
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs a command, asserts it succeeded, returns its stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Connects to `addr` (retrying for 20 s while a server starts), sends `hello pod\n`, closes
/// its side and returns all the server sent back.
pub fn exchange(addr: SocketAddr) -> String {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"hello pod\n").unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let mut got = String::new();
                let _ = s.read_to_string(&mut got);
                if !got.is_empty() {
                    return got;
                }
            }
            Err(e) if start.elapsed() > Duration::from_secs(20) => {
                panic!("cannot connect to {addr}: {e}")
            }
            Err(_) => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{addr} never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The IP leases host-local IPAM holds under `ipam` (its `dataDir`): one file per address,
/// named by it, in a directory per network; its `lock` and `last_reserved_ip.*` files are not
/// leases.
pub fn leases(ipam: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for net in fs::read_dir(ipam).into_iter().flatten().flatten() {
        for f in fs::read_dir(net.path()).into_iter().flatten().flatten() {
            if f.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
            {
                out.push(f.path());
            }
        }
    }
    out
}

/// The network interfaces of the current network namespace, by name.
pub fn links() -> Vec<String> {
    run("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// The iptables rules of the current network namespace (`iptables-save`), empty if iptables
/// has never been used here.
pub fn iptables_rules() -> String {
    let out = Command::new("iptables-save").output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(_) => String::new(),
    }
}
