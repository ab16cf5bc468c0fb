//! Helpers shared by the `e2e_pod*` tests: a sandboxed `rkt` that runs the busybox fixture,
//! pods in the background, and what a pod leaves on the host (pod directories, cgroups,
//! mounts).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rkt_tests::Fixtures;
use rkt_tests::rkt::{Rkt, RktOutput};

/// rkt's exit status for its own errors.
pub const EXIT_ERROR: i32 = 254;

/// rkt's default capability set (appc's): AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FSETID, FOWNER,
/// KILL, MKNOD, NET_RAW, NET_BIND_SERVICE, SETUID, SETGID, SETPCAP, SETFCAP, SYS_CHROOT.
pub const RKT_DEFAULT_CAPS: u64 = (1 << 29)
    | (1 << 0)
    | (1 << 1)
    | (1 << 4)
    | (1 << 3)
    | (1 << 5)
    | (1 << 27)
    | (1 << 13)
    | (1 << 10)
    | (1 << 7)
    | (1 << 6)
    | (1 << 8)
    | (1 << 31)
    | (1 << 18);

/// The capabilities an app gets by default on this host: rkt's set, less CAP_MKNOD where
/// nothing could stop it from using the nodes it makes (neither a cgroup v1 devices controller
/// nor a cgroup2 hierarchy for the BPF device filter).
pub fn default_caps_here() -> u64 {
    let devices = my_cgroup_dirs().iter().any(|d| {
        d.starts_with("/sys/fs/cgroup/devices") || d.starts_with("/sys/fs/cgroup/unified")
    }) || Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if devices {
        RKT_DEFAULT_CAPS
    } else {
        RKT_DEFAULT_CAPS & !(1 << 27)
    }
}

/// The shared fixtures.
pub fn fx() -> &'static Fixtures {
    Fixtures::get()
}

/// The busybox fixture as `rkt run` takes it.
pub fn busybox() -> String {
    format!("oci:{}", fx().busybox.reference())
}

/// A sandboxed `rkt` for pods. Every invocation gets `--insecure-options=image` (the fixture
/// is unsigned) unless the arguments start with their own `--insecure-options`. On drop, every
/// pod still running is killed and every pod is collected, so no cgroup outlives a test.
pub struct PodEnv {
    /// The sandbox.
    pub rkt: Rkt,
}

impl Default for PodEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl PodEnv {
    /// A fresh sandbox.
    pub fn new() -> PodEnv {
        PodEnv { rkt: Rkt::new() }
    }

    fn args<S: AsRef<OsStr>>(args: &[S]) -> Vec<String> {
        let mut v: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        if !v
            .first()
            .is_some_and(|a| a.starts_with("--insecure-options"))
        {
            v.insert(0, "--insecure-options=image".into());
        }
        v
    }

    /// `rkt ARGS…` to completion.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> RktOutput {
        self.rkt.run(&Self::args(args))
    }

    /// `rkt ARGS…`, which must exit 0.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> RktOutput {
        self.rkt.ok(&Self::args(args))
    }

    /// `rkt ARGS…`, which must exit with `code`.
    pub fn code<S: AsRef<OsStr>>(&self, args: &[S], code: i32) -> RktOutput {
        let out = self.run(args);
        assert_eq!(out.code(), Some(code), "{out}");
        out
    }

    /// `rkt ARGS…`, which must fail as rkt fails (254) with a message on stderr.
    pub fn fail<S: AsRef<OsStr>>(&self, args: &[S]) -> RktOutput {
        let out = self.code(args, EXIT_ERROR);
        assert!(
            out.stderr.trim_start().starts_with("rkt") || out.stderr.contains("error"),
            "no error message: {out}"
        );
        assert!(!out.stderr.contains("panicked"), "{out}");
        out
    }

    /// `rkt run --uuid-file-save F POD_FLAGS… APPS…`: its output and the pod's UUID.
    pub fn run_pod(&self, pod_flags: &[&str], apps: &[&str]) -> (RktOutput, String) {
        let file = self.uuid_file();
        let mut a: Vec<String> = vec!["run".into(), format!("--uuid-file-save={}", file.display())];
        a.extend(pod_flags.iter().map(|s| (*s).to_owned()));
        a.extend(apps.iter().map(|s| (*s).to_owned()));
        let out = self.run(&a);
        let uuid = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("no UUID saved ({e}): {out}"))
            .trim()
            .to_owned();
        (out, uuid)
    }

    /// Runs one busybox app `sh -c SCRIPT` (with `APP_FLAGS` after the image) and returns the
    /// output.
    pub fn sh(&self, pod_flags: &[&str], app_flags: &[&str], script: &str) -> RktOutput {
        let mut a: Vec<String> = vec!["run".into()];
        a.extend(pod_flags.iter().map(|s| (*s).to_owned()));
        a.push(busybox());
        a.extend(app_flags.iter().map(|s| (*s).to_owned()));
        a.extend([
            "--exec=/bin/sh".into(),
            "--".into(),
            "-c".into(),
            script.into(),
        ]);
        self.run(&a)
    }

    /// [`sh`](Self::sh) that must exit 0; its stdout.
    pub fn sh_ok(&self, pod_flags: &[&str], app_flags: &[&str], script: &str) -> String {
        let out = self.sh(pod_flags, app_flags, script);
        assert!(out.success(), "{out}");
        out.stdout
    }

    /// A fresh path for `--uuid-file-save`.
    pub fn uuid_file(&self) -> PathBuf {
        let dir = self.rkt.home().join("uuids");
        std::fs::create_dir_all(&dir).unwrap();
        let n = std::fs::read_dir(&dir).unwrap().count();
        dir.join(format!("uuid-{n}"))
    }

    /// Starts `rkt ARGS…` in the background.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Background {
        let args = Self::args(args);
        let mut c = self.rkt.command(&args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = rkt_tests::spawn::spawn(c).expect("cannot start rkt");
        Background {
            command: format!("rkt {}", args.join(" ")),
            child: Some(child),
        }
    }

    /// Starts a pod running busybox `sh -c SCRIPT` in the background and waits until its apps
    /// have started; returns it and its UUID.
    pub fn spawn_sh(
        &self,
        pod_flags: &[&str],
        app_flags: &[&str],
        script: &str,
    ) -> (Background, String) {
        let mut apps: Vec<String> = vec![busybox()];
        apps.extend(app_flags.iter().map(|s| (*s).to_owned()));
        apps.extend([
            "--exec=/bin/sh".into(),
            "--".into(),
            "-c".into(),
            script.into(),
        ]);
        let apps: Vec<&str> = apps.iter().map(String::as_str).collect();
        self.spawn_pod(pod_flags, &apps)
    }

    /// Starts `rkt run POD_FLAGS… APPS…` in the background and waits until its apps have
    /// started; returns it and the pod's UUID.
    pub fn spawn_pod(&self, pod_flags: &[&str], apps: &[&str]) -> (Background, String) {
        let file = self.uuid_file();
        let mut a: Vec<String> = vec!["run".into(), format!("--uuid-file-save={}", file.display())];
        a.extend(pod_flags.iter().map(|s| (*s).to_owned()));
        a.extend(apps.iter().map(|s| (*s).to_owned()));
        let mut bg = self.spawn(&a);
        let deadline = Instant::now() + Duration::from_secs(60);
        let uuid = loop {
            if let Ok(s) = std::fs::read_to_string(&file)
                && s.ends_with('\n')
            {
                break s.trim().to_owned();
            }
            if bg.exited() || Instant::now() > deadline {
                panic!("the pod did not start: {}", bg.wait());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.wait_ready(&uuid);
        (bg, uuid)
    }

    /// `rkt status --wait-ready` (bounded, so a broken pod fails the test instead of hanging
    /// it).
    pub fn wait_ready(&self, pod: &str) {
        self.ok(&["status", "--wait-ready=60s", pod]);
    }

    /// `rkt status POD` as key=value pairs.
    pub fn status(&self, pod: &str) -> BTreeMap<String, String> {
        parse_status(&self.ok(&["status", pod]).stdout)
    }

    /// `rkt list --format=json`, parsed.
    pub fn list_json(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["list", "--format=json"]);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The pod directory of `uuid`, in whatever state it is.
    pub fn pod_dir(&self, uuid: &str) -> Option<PathBuf> {
        pod_states()
            .iter()
            .map(|s| self.rkt.dir().join("pods").join(s).join(uuid))
            .find(|p| p.exists())
    }

    /// Every pod directory, as `state/uuid`.
    pub fn pod_dirs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in pod_states() {
            let Ok(rd) = std::fs::read_dir(self.rkt.dir().join("pods").join(s)) else {
                continue;
            };
            for e in rd.flatten() {
                out.push(format!("{s}/{}", e.file_name().to_string_lossy()));
            }
        }
        out.sort();
        out
    }

    /// The host pid of an app's process (`apps/<app>/pid` in the pod directory).
    pub fn app_pid(&self, uuid: &str, app: &str) -> i32 {
        let dir = self.pod_dir(uuid).expect("the pod exists");
        std::fs::read_to_string(dir.join("apps").join(app).join("pid"))
            .unwrap_or_else(|e| panic!("no pid for app {app}: {e}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Asserts that nothing of pod `uuid` is left: no pod directory, no name reservation
    /// pointing at it, no cgroup under this process's cgroups, no mount on the host under the
    /// data directory.
    pub fn assert_gone(&self, uuid: &str) {
        assert_eq!(self.pod_dir(uuid), None, "pod {uuid} still has a directory");
        let cgroups = pod_cgroups(uuid);
        assert!(cgroups.is_empty(), "pod {uuid} left cgroups: {cgroups:?}");
        let mounts = host_mounts_under(&self.rkt.dir());
        assert!(mounts.is_empty(), "mounts left on the host: {mounts:?}");
        if let Ok(rd) = std::fs::read_dir(self.rkt.dir().join("pods/names")) {
            for e in rd.flatten() {
                let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
                assert!(
                    !owner.contains(uuid),
                    "name {:?} still reserved for {uuid}",
                    e.file_name()
                );
            }
        }
    }
}

impl Drop for PodEnv {
    /// Kills what still runs and collects every pod, then checks that this left nothing
    /// behind: every test also tests that a pod's removal cleans up after it.
    fn drop(&mut self) {
        let pods = serde_json::from_str::<Vec<serde_json::Value>>(
            &self.run(&["list", "--format=json"]).stdout,
        )
        .unwrap_or_default();
        let uuids: Vec<String> = pods
            .iter()
            .filter_map(|p| p["uuid"].as_str().map(str::to_owned))
            .collect();
        for p in &pods {
            if p["state"] == "running"
                && let Some(u) = p["uuid"].as_str()
            {
                let _ = self.run(&["stop", "--force", u]);
                // stop signals; the pod is gone only once its stage1 has exited.
                let _ = self.run(&["status", "--wait=30s", u]);
            }
        }
        let gc = self.run(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
        if std::thread::panicking() {
            return;
        }
        assert!(gc.success(), "cleaning up: {gc}");
        for u in &uuids {
            self.assert_gone(u);
        }
    }
}

/// The state directories under `pods/`.
pub fn pod_states() -> [&'static str; 6] {
    [
        "embryo",
        "prepare",
        "prepared",
        "run",
        "exited-garbage",
        "garbage",
    ]
}

/// `key=value` lines.
pub fn parse_status(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A `rkt` process in the background; killed on drop if still running.
pub struct Background {
    command: String,
    child: Option<Child>,
}

impl Background {
    /// Whether it has exited (without reaping it).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits for it and collects its output.
    pub fn wait(&mut self) -> RktOutput {
        let child = self.child.take().expect("waited for twice");
        RktOutput::wait(self.command.clone(), child)
    }

    /// Its pid (that of `setpriv`, which execs rkt, which execs stage1).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("still there").id() as i32
    }

    /// Sends it `sig`, as whatever supervises `rkt run` would.
    pub fn signal(&self, sig: rustix::process::Signal) {
        signal(self.pid(), sig);
    }
}

/// Sends `sig` to the process `pid`.
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    let target = rustix::process::Pid::from_raw(pid).expect("a positive pid");
    rustix::process::kill_process(target, sig).unwrap_or_else(|e| panic!("signal {pid}: {e}"));
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// This process's cgroup directory in every mounted hierarchy (v1 and v2), from
/// `/proc/self/cgroup` and `/proc/self/mountinfo`. rkt, started from here, makes its pod
/// cgroups inside these.
pub fn my_cgroup_dirs() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // (mount point, root, fstype, super options)
    let mut mounts = Vec::new();
    for l in mountinfo.lines() {
        let (pre, post) = l.split_once(" - ").unwrap();
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if post[0] == "cgroup" || post[0] == "cgroup2" {
            mounts.push((
                pre[4].to_owned(),
                pre[3].to_owned(),
                post[0],
                post[2].to_owned(),
            ));
        }
    }
    let mut out = Vec::new();
    for l in std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
    {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let m = mounts.iter().find(|(_, _, ty, opts)| {
            if controllers.is_empty() {
                *ty == "cgroup2"
            } else {
                *ty == "cgroup"
                    && controllers
                        .split(',')
                        .all(|c| opts.split(',').any(|o| o == c))
            }
        });
        let Some((point, root, _, _)) = m else {
            continue;
        };
        let rel = path.strip_prefix(root.as_str()).unwrap_or(path);
        out.push(Path::new(point).join(rel.trim_start_matches('/')));
    }
    out
}

/// The cgroup directories of pod `uuid` (`rkt-<uuid>`) that exist under this process's
/// cgroups.
pub fn pod_cgroups(uuid: &str) -> Vec<PathBuf> {
    my_cgroup_dirs()
        .into_iter()
        .map(|d| d.join(format!("rkt-{uuid}")))
        .filter(|d| d.exists())
        .collect()
}

/// The cgroup directory of an app in the hierarchy whose mount point ends in `hierarchy`
/// (`cpu`, `memory`, `unified`).
pub fn app_cgroup(uuid: &str, app: &str, hierarchy: &str) -> PathBuf {
    pod_cgroups(uuid)
        .into_iter()
        .find(|d| d.components().any(|c| c.as_os_str() == hierarchy))
        .unwrap_or_else(|| panic!("pod {uuid} has no cgroup in the {hierarchy} hierarchy"))
        .join(app)
}

/// Mount points in this process's mount namespace at or under `dir`.
pub fn host_mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == d || p.starts_with(&format!("{d}/")))
        .map(str::to_owned)
        .collect()
}

/// The fields of `/proc/<pid>/status` that say how confined a process is.
pub fn confinement(pid: i32) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let keep = [
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ];
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| keep.contains(k))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The namespaces of a process, by kind.
pub fn namespaces(pid: i32) -> BTreeMap<String, String> {
    ["mnt", "pid", "uts", "ipc", "net", "cgroup", "user"]
        .iter()
        .map(|ns| {
            let l = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            ((*ns).to_owned(), l.to_string_lossy().into_owned())
        })
        .collect()
}

/// The value of one line of `/proc/self/status`-style text (`CapEff:\t…`).
pub fn status_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.trim().to_owned())
}

/// A hex capability mask (`00000000a80425fb`).
pub fn cap_mask(hex: &str) -> u64 {
    u64::from_str_radix(hex.trim(), 16).unwrap_or_else(|_| panic!("not a mask: {hex:?}"))
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Host pids whose command line is exactly `argv`.
pub fn pids_with_cmdline(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv.iter().fold(Vec::new(), |mut v, a| {
        v.extend_from_slice(a.as_bytes());
        v.push(0);
        v
    });
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want) {
            out.push(pid);
        }
    }
    out
}

/// A short description of a map, for assertion messages.
pub fn show_map(m: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in m {
        let _ = writeln!(s, "{k}={v}");
    }
    s
}

/// Whether `s` is a hyphenated UUID.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        })
}
