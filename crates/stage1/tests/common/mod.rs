//! Pods for the tests of the `rkt-stage1` binary: busybox layer trees built here from the
//! host's static busybox, a pod directory made by hand (request, lock), and the binary run
//! as stage0 would run it. The tests need root (namespaces, overlayfs, cgroups), as this
//! project's machines and CI give them.
#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rkt_stage1::abi::{AppRequest, NetMode, RunRequest, Stdio as AppStdio};
use rkt_stage1::caps::CapSet;
use rkt_stage1::seccomp;

/// The binary under test.
pub const STAGE1: &str = env!("CARGO_BIN_EXE_rkt-stage1");

/// Every spawn of this test binary holds this: a pod's lock fd is inheritable for the moment
/// of its spawn, and must not leak into a process another test starts meanwhile.
static SPAWN: Mutex<()> = Mutex::new(());

/// How long any one pod may take before a test gives up on it (a safety net, not a check).
const PATIENCE: Duration = Duration::from_secs(90);

/// Where test pods and layers live: the target directory, a real filesystem (overlayfs
/// refuses an upper dir on overlayfs or tmpfs-backed trouble).
fn scratch() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stage1-tests")
}

/// The two layer trees of the test image (base first): busybox with `/etc/passwd` (root,
/// `user` 1000, nobody), `/etc/group` and `/etc/removed-by-top`; and a top layer adding
/// `/etc/rkt-top` and whiting out `/etc/removed-by-top`.
pub fn layers() -> Vec<PathBuf> {
    static LAYERS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    LAYERS
        .get_or_init(|| {
            let dir = scratch().join(format!("layers-{}", std::process::id()));
            remove_stale_layers();
            remove_stale_pods();
            let _ = std::fs::remove_dir_all(&dir);
            let base = dir.join("base");
            let top = dir.join("top");
            for d in ["bin", "etc", "home/user", "tmp", "root", "var"] {
                std::fs::create_dir_all(base.join(d)).unwrap();
            }
            std::fs::set_permissions(base.join("tmp"), std::fs::Permissions::from_mode(0o1777))
                .unwrap();
            std::fs::copy("/bin/busybox", base.join("bin/busybox")).unwrap();
            let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
            for applet in String::from_utf8(list.stdout).unwrap().lines() {
                if applet != "busybox" {
                    symlink("busybox", base.join("bin").join(applet)).unwrap();
                }
            }
            std::fs::write(
                base.join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:User:/home/user:/bin/sh\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            )
            .unwrap();
            std::fs::write(
                base.join("etc/group"),
                "root:x:0:\ntty:x:5:\nusers:x:100:user\nuser:x:1000:\nnogroup:x:65534:\n",
            )
            .unwrap();
            std::os::unix::fs::chown(base.join("home/user"), Some(1000), Some(1000)).unwrap();
            std::fs::write(base.join("etc/removed-by-top"), "base only\n").unwrap();
            std::fs::create_dir_all(top.join("etc")).unwrap();
            std::fs::write(top.join("etc/rkt-top"), "top layer\n").unwrap();
            // An overlayfs whiteout, as the store unpacks a `.wh.` entry.
            rustix::fs::mknodat(
                rustix::fs::CWD,
                top.join("etc/removed-by-top"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .unwrap();
            vec![base, top]
        })
        .clone()
}

/// Pod directories that earlier, failed test processes kept for a look (their cgroups are
/// gc'd already).
fn remove_stale_pods() {
    let Ok(entries) = std::fs::read_dir(scratch().join("pods")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(Ok(pid)) = name.get(..8).map(|h| u32::from_str_radix(h, 16))
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Layer trees of earlier test processes that are gone.
fn remove_stale_layers() {
    let Ok(entries) = std::fs::read_dir(scratch()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("layers-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// An app running `argv` in the test image, with rkt's defaults (capabilities, seccomp,
/// masked paths).
pub fn app(name: &str, argv: &[&str]) -> AppRequest {
    AppRequest {
        name: name.into(),
        image_id: "sha256:test".into(),
        image_name: "busybox-test".into(),
        layers: layers(),
        exec: argv.iter().map(|s| (*s).to_owned()).collect(),
        env: vec![],
        working_dir: String::new(),
        user: String::new(),
        group: String::new(),
        supplementary_gids: vec![],
        readonly_rootfs: false,
        mounts: vec![],
        caps: CapSet::rkt_default(),
        seccomp: Some(seccomp::default_policy()),
        masked_paths: true,
        limits: Default::default(),
        stdio: AppStdio::Log,
        annotations: vec![],
    }
}

/// `sh -c script`.
pub fn sh(name: &str, script: &str) -> AppRequest {
    app(name, &["sh", "-c", script])
}

/// A pod directory with a request; gc'd (cgroups removed) and deleted when dropped (kept
/// after a failure, until a later test process finds it stale).
pub struct TestPod {
    pub dir: PathBuf,
    pub req: RunRequest,
}

impl TestPod {
    pub fn new(apps: Vec<AppRequest>) -> TestPod {
        let uuid = format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            std::process::id(),
            rand_u16(),
            nanos()
        );
        let dir = scratch().join("pods").join(&uuid);
        std::fs::create_dir_all(dir.join("stage1")).unwrap();
        TestPod {
            dir,
            req: RunRequest {
                version: rkt_stage1::abi::ABI_VERSION,
                uuid,
                hostname: "testpod".into(),
                debug: false,
                net: NetMode::Host,
                ipc_host: false,
                hosts: None,
                resolv_conf: None,
                hosts_from_host: false,
                resolv_conf_from_host: false,
                ignore_network_dns: false,
                interactive: false,
                volumes: vec![],
                apps,
            },
        }
    }

    fn write_request(&self) {
        std::fs::write(
            self.dir.join(rkt_stage1::abi::REQUEST_FILE),
            serde_json::to_vec_pretty(&self.req).unwrap(),
        )
        .unwrap();
    }

    /// `rkt-stage1 run`, with the pod directory locked as stage0 would.
    pub fn spawn(&self) -> Running {
        self.spawn_with_stdin(None)
    }

    /// [`spawn`](Self::spawn), with `input` on stage1's stdin (then closed).
    pub fn spawn_with_stdin(&self, input: Option<&[u8]>) -> Running {
        self.write_request();
        let mut cmd = Command::new(STAGE1);
        cmd.args(["run", "--pod-dir"]).arg(&self.dir);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        let lock = lock_dir(&self.dir);
        rustix::io::fcntl_setfd(&lock, rustix::io::FdFlags::empty()).unwrap();
        cmd.env("RKT_LOCK_FD", lock.as_raw_fd().to_string());
        let mut child = cmd.spawn().unwrap();
        drop(lock);
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write;
            stdin.write_all(bytes).unwrap();
        }
        Running::new(child)
    }

    /// Runs the pod to its end.
    pub fn run(&self) -> Output {
        self.spawn().wait()
    }

    /// `rkt-stage1 run` with `RKT_LOCK_FD` naming a descriptor of the pod directory that does
    /// not hold its lock.
    pub fn spawn_unlocked(&self) -> Running {
        self.write_request();
        let mut cmd = Command::new(STAGE1);
        cmd.args(["run", "--pod-dir"]).arg(&self.dir);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        let fd = rustix::fs::open(
            &self.dir,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        cmd.env("RKT_LOCK_FD", fd.as_raw_fd().to_string());
        let child = cmd.spawn().unwrap();
        drop(fd);
        Running::new(child)
    }

    /// `rkt-stage1 run` with a terminal as stdin, stdout, stderr and controlling terminal
    /// (through util-linux `setsid --ctty`), as from an interactive shell.
    pub fn spawn_on_terminal(&self, tty: &OwnedFd) -> Running {
        self.write_request();
        let mut cmd = Command::new("setsid");
        cmd.args(["--ctty", STAGE1, "run", "--pod-dir"])
            .arg(&self.dir);
        let stdio = || Stdio::from(tty.try_clone().unwrap());
        cmd.stdin(stdio()).stdout(stdio()).stderr(stdio());
        let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        let lock = lock_dir(&self.dir);
        rustix::io::fcntl_setfd(&lock, rustix::io::FdFlags::empty()).unwrap();
        cmd.env("RKT_LOCK_FD", lock.as_raw_fd().to_string());
        let child = cmd.spawn().unwrap();
        drop(lock);
        Running::new(child)
    }

    /// An app's `exit` record.
    pub fn exit(&self, app: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join(format!("apps/{app}/exit")))
            .unwrap_or_else(|e| panic!("no exit record for {app}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    /// An app's `current.log`.
    pub fn log(&self, app: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("apps/{app}/logs/current.log")))
            .unwrap_or_default()
    }

    /// The text an app wrote on `stream`, from its CRI log.
    pub fn logged(&self, app: &str, stream: &str) -> String {
        let mut out = String::new();
        for line in self.log(app).lines() {
            let mut parts = line.splitn(4, ' ');
            let (_ts, s, tag, text) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap_or(""),
            );
            if s == stream {
                out.push_str(text);
                if tag == "F" {
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Host pid of an app, once recorded.
    pub fn app_pid(&self, app: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("apps/{app}/pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Waits until the pod is ready (every app started).
    pub fn wait_ready(&self, running: &mut Running) {
        while !self.dir.join("ready").exists() {
            if let Some(status) = running.child.try_wait().unwrap() {
                let out = running.output_after(status);
                panic!(
                    "the pod ended before it was ready: {status}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                running.started.elapsed() < PATIENCE,
                "the pod never got ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `rkt-stage1 <verb> --pod-dir DIR <args>` to its end.
    pub fn stage1(&self, verb: &str, args: &[&str]) -> Output {
        self.stage1_with_stdin(verb, args, None)
    }

    /// [`stage1`](Self::stage1) with `input` on its stdin.
    pub fn stage1_with_stdin(&self, verb: &str, args: &[&str], input: Option<&[u8]>) -> Output {
        self.write_request();
        let mut cmd = Command::new(STAGE1);
        cmd.arg(verb).arg("--pod-dir").arg(&self.dir).args(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = {
            let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
            cmd.spawn().unwrap()
        };
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write;
            stdin.write_all(bytes).unwrap();
        }
        Running::new(child).wait()
    }

    /// The pod cgroup's directories, from the `cgroup` record.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let text = std::fs::read_to_string(self.dir.join("cgroup")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["dirs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| PathBuf::from(d["path"].as_str().unwrap()))
            .collect()
    }
}

impl Drop for TestPod {
    fn drop(&mut self) {
        if self.dir.join("cgroup").exists() {
            let out = self.stage1("gc", &[]);
            if !out.status.success() {
                eprintln!("cleanup gc: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A running `rkt-stage1`, its stdout and stderr read as they come (so a chatty pod never
/// blocks on a full pipe).
pub struct Running {
    pub child: Child,
    started: Instant,
    readers: Vec<std::thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    fn new(mut child: Child) -> Running {
        let mut readers = Vec::new();
        let out: Option<Box<dyn Read + Send>> = child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>);
        let err: Option<Box<dyn Read + Send>> = child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>);
        for stream in [out, err] {
            readers.push(std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut s) = stream {
                    let _ = s.read_to_end(&mut buf);
                }
                buf
            }));
        }
        Running {
            child,
            started: Instant::now(),
            readers,
        }
    }

    /// Waits for the end (killing it past the safety net) and collects its output.
    pub fn wait(mut self) -> Output {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return self.output_after(status);
            }
            if self.started.elapsed() > PATIENCE {
                let _ = self.child.kill();
                let status = self.child.wait().unwrap();
                let out = self.output_after(status);
                panic!(
                    "stage1 did not finish in {PATIENCE:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn output_after(&mut self, status: ExitStatus) -> Output {
        let mut readers = std::mem::take(&mut self.readers).into_iter();
        let mut next = || {
            readers
                .next()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default()
        };
        let stdout = next();
        let stderr = next();
        Output {
            status,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }
}

/// Waits (up to the safety net) until `cond` holds: for something an app does after it
/// started, such as setting a trap.
pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An fd of `dir` holding its exclusive flock, close-on-exec.
pub fn lock_dir(dir: &Path) -> OwnedFd {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    fd
}

/// stdout and stderr of a run, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `key:\tvalue` fields of a `/proc/<pid>/status` text.
pub fn status_fields(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn nanos() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.as_nanos() & 0xffff_ffff_ffff) as u64
}

fn rand_u16() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static N: AtomicU16 = AtomicU16::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// An `empty` volume (mode 0777, root).
pub fn empty_volume(name: &str) -> rkt_stage1::abi::Volume {
    rkt_stage1::abi::Volume {
        name: name.into(),
        kind: rkt_stage1::abi::VolumeKind::Empty {
            mode: 0o777,
            uid: 0,
            gid: 0,
        },
    }
}
