//! The app policies in a real process: the kernel runs the compiled seccomp filter and the
//! capability sets, in child processes (this test binary, started again with
//! `RKT_STAGE1_TEST_CHILD` naming what to do), since both are one-way for the process that
//! takes them on. The children print `key=value` lines that the tests check.
//!
//! The capability tests need root (this project's machines and CI run tests as root).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rkt_stage1::caps::{self, CapSet, Capability};
use rkt_stage1::seccomp::{self, Arch, SeccompSpec};

const CHILD: &str = "RKT_STAGE1_TEST_CHILD";
const NOBODY: u32 = 65534;

/// Runs this binary again as a child doing `scenario`, and returns its `key=value` lines.
fn child(scenario: &str, extra_env: &[(&str, &str)]) -> BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt as _;
    // A copy of this test binary that any user can execute, for children that drop to nobody.
    let copy_dir = tempfile::Builder::new()
        .prefix("rkt-confinement-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(copy_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = copy_dir.path().join("self");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .env("SELF_COPY", &copy)
        .args([
            "--exact",
            "child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, scenario)
        .envs(extra_env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {scenario} failed: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        // libtest prints "test child_entry ... " before the first line.
        .filter_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn report(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "RESULT {key}={value}").unwrap();
    out.flush().unwrap();
}

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

fn outcome<T, E: std::fmt::Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{e:?}"),
    }
}

/// Confinement fields of the calling thread's status (capabilities and seccomp are per thread,
/// and libtest may run a test on a thread of its own).
fn report_status() {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    const FIELDS: [&str; 8] = [
        "Uid",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ];
    for (k, v) in status.lines().filter_map(|l| l.split_once(':')) {
        if FIELDS.contains(&k) {
            report(k, v.split_whitespace().next().unwrap_or(""));
        }
    }
}

/// What the children do. Not a test of its own: the tests below start it.
#[test]
#[ignore = "entry point of the child processes that the other tests in this file start"]
fn child_entry() {
    let scenario = std::env::var(CHILD).expect("run by the other tests");
    let arch = Arch::native().unwrap();
    match scenario.as_str() {
        "seccomp-default" => {
            let policy = seccomp::resolve(&[], None, false).unwrap().unwrap();
            seccomp::install(&seccomp::compile(&policy, arch).unwrap()).unwrap();
            report("write", "ok");
            report(
                "unshare_user",
                outcome(nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)),
            );
            // pthread_create: glibc tries clone3 (ENOSYS here) and falls back to clone.
            report("thread", std::thread::spawn(|| 42).join().unwrap());
            report_status();
        }
        "seccomp-remove" => {
            let spec = SeccompSpec::parse_cli(&std::env::var("SPEC").unwrap()).unwrap();
            let policy = seccomp::resolve(&[], Some(&spec), false).unwrap().unwrap();
            seccomp::install(&seccomp::compile(&policy, arch).unwrap()).unwrap();
            report(
                "getcwd",
                std::env::current_dir().map_or_else(|e| errno_name(&e), |_| "ok".into()),
            );
            report(
                "unshare_user",
                outcome(nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)),
            );
            report("thread", std::thread::spawn(|| 7).join().unwrap());
        }
        "chown" => {
            let set = CapSet::parse_list(&std::env::var("CAPS").unwrap(), "test").unwrap();
            let file = tempfile::NamedTempFile::new().unwrap();
            caps::apply(&set, true).unwrap();
            let r = std::os::unix::fs::chown(file.path(), Some(1234), Some(1234));
            report("chown", r.map_or_else(|e| errno_name(&e), |()| "ok".into()));
            report_status();
        }
        "app-as-nobody" => {
            // The order the caps module documents, then exec a fresh program.
            let set = CapSet::parse_list(&std::env::var("CAPS").unwrap(), "test").unwrap();
            caps::keep_across_setuid().unwrap();
            nix::unistd::setgroups(&[]).unwrap();
            nix::unistd::setgid(nix::unistd::Gid::from_raw(NOBODY)).unwrap();
            nix::unistd::setuid(nix::unistd::Uid::from_raw(NOBODY)).unwrap();
            caps::apply(&set, false).unwrap();
            let policy = seccomp::resolve(&[], None, false).unwrap().unwrap();
            seccomp::install(&seccomp::compile(&policy, arch).unwrap()).unwrap();
            // Not current_exe(): the checkout may sit under a directory nobody cannot
            // traverse (/root on a fresh machine), so the parent left a copy anyone can run.
            let err = Command::new(std::env::var("SELF_COPY").unwrap())
                .args([
                    "--exact",
                    "child_entry",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, "report")
                .exec();
            panic!("exec: {err}");
        }
        "report" => {
            report_status();
            report(
                "unshare_user",
                outcome(nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)),
            );
            // A port below 1024 on loopback: EACCES without CAP_NET_BIND_SERVICE (a port in
            // use answers EADDRINUSE, which also shows the permission check passed).
            let bind = std::net::TcpListener::bind("127.0.0.1:1023");
            report(
                "bind_low_port",
                bind.map_or_else(|e| errno_name(&e), |_| "ok".into()),
            );
        }
        other => panic!("unknown scenario {other}"),
    }
}

fn hex_caps(set: &[Capability]) -> String {
    format!(
        "{:016x}",
        set.iter().map(|c| c.bitmask()).fold(0, |a, b| a | b)
    )
}

#[test]
fn default_seccomp_filter_denies_unshare_and_lets_ordinary_work_through() {
    let r = child("seccomp-default", &[]);
    assert_eq!(r["write"], "ok");
    assert_eq!(r["unshare_user"], "EPERM");
    assert_eq!(r["thread"], "42");
    assert_eq!(r["Seccomp"], "2");
    assert_eq!(r["NoNewPrivs"], "1");
}

#[test]
fn remove_set_denies_with_the_chosen_errno() {
    let r = child(
        "seccomp-remove",
        &[(
            "SPEC",
            "mode=remove,errno=ENOTSUP,getcwd,@rkt/default-blacklist",
        )],
    );
    assert_eq!(r["getcwd"], "EOPNOTSUPP");
    assert_eq!(r["unshare_user"], "EOPNOTSUPP");
    assert_eq!(r["thread"], "7");
}

#[test]
fn chown_needs_cap_chown() {
    let mut without = CapSet::rkt_default();
    without.remove(Capability::CAP_CHOWN);
    let list = without.names().join(",");
    let r = child("chown", &[("CAPS", &list)]);
    assert_eq!(r["chown"], "EPERM");
    let mut want: Vec<Capability> = without.iter().collect();
    assert_eq!(r["CapEff"], hex_caps(&want));
    assert_eq!(r["CapBnd"], hex_caps(&want));

    let r = child(
        "chown",
        &[("CAPS", &CapSet::rkt_default().names().join(","))],
    );
    assert_eq!(r["chown"], "ok");
    want.push(Capability::CAP_CHOWN);
    assert_eq!(r["CapEff"], hex_caps(&want));
}

#[test]
fn a_non_root_app_keeps_its_capabilities_across_exec_and_nothing_else() {
    let r = child("app-as-nobody", &[("CAPS", "NET_BIND_SERVICE")]);
    let one = hex_caps(&[Capability::CAP_NET_BIND_SERVICE]);
    assert_eq!(r["Uid"], NOBODY.to_string());
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(r[set], one, "{set}");
    }
    assert_eq!(
        (r["Seccomp"].as_str(), r["NoNewPrivs"].as_str()),
        ("2", "1")
    );
    assert_eq!(r["unshare_user"], "EPERM");
    assert!(
        ["ok", "EADDRINUSE"].contains(&r["bind_low_port"].as_str()),
        "{r:?}"
    );

    let r = child("app-as-nobody", &[("CAPS", "KILL")]);
    assert_eq!(r["CapEff"], hex_caps(&[Capability::CAP_KILL]));
    assert_eq!(r["bind_low_port"], "EACCES");
}
