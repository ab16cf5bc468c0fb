//! Running the real `rkt` binary in a sandbox of its own: a fresh `--dir`, empty configuration
//! directories and a private `HOME`, so nothing on the machine (`/var/lib/rkt`, `/etc/rkt`,
//! `~/.docker/config.json`) leaks into a test and a test leaks nothing out.
//!
//! ```no_run
//! use rkt_tests::rkt::Rkt;
//! let rkt = Rkt::new();
//! let out = rkt.run(&["image", "list", "--format=json"]);
//! assert!(out.success(), "{out}");
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use tempfile::TempDir;

/// Where the `rkt` binary is: `$RKT_BIN`, else `target/<profile>/rkt` next to the running test
/// executable (`target/<profile>/deps/<test>-<hash>`).
///
/// # Panics
/// If it is not there; the message says how to build it.
pub fn rkt_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RKT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("cannot find the test executable");
    let profile_dir = exe
        .parent()
        .filter(|d| d.ends_with("deps"))
        .and_then(Path::parent)
        .or_else(|| exe.parent())
        .expect("the test executable has a directory");
    let bin = profile_dir.join("rkt");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build --workspace --bins`, as \
         scripts/test.sh does) or point RKT_BIN at an rkt binary",
        bin.display()
    );
    bin
}

/// One sandbox for `rkt`: a data directory, configuration directories and a home directory,
/// all temporary. Several invocations on one `Rkt` share the store.
pub struct Rkt {
    bin: PathBuf,
    root: TempDir,
    env: Vec<(String, String)>,
}

impl Default for Rkt {
    fn default() -> Self {
        Self::new()
    }
}

impl Rkt {
    /// A fresh sandbox. Its temp directory is created under `$RKT_TEST_TMPDIR` when set, else
    /// the system temp dir (which must not be overlayfs: the store refuses it).
    pub fn new() -> Rkt {
        let mut b = tempfile::Builder::new();
        b.prefix("rkt-e2e-");
        let root = match std::env::var_os("RKT_TEST_TMPDIR") {
            Some(d) => b.tempdir_in(d),
            None => b.tempdir(),
        }
        .expect("cannot create a temp directory for rkt");
        for d in ["data", "system-config", "local-config", "home"] {
            fs::create_dir_all(root.path().join(d)).expect("cannot populate the rkt sandbox");
        }
        Rkt {
            bin: rkt_bin(),
            root,
            env: Vec::new(),
        }
    }

    /// The `--dir` data directory.
    pub fn dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The image store (`<dir>/store`).
    pub fn store(&self) -> PathBuf {
        self.dir().join("store")
    }

    /// The `--local-config` directory (empty unless a test writes into it).
    pub fn local_config(&self) -> PathBuf {
        self.root.path().join("local-config")
    }

    /// The `--system-config` directory (empty unless a test writes into it).
    pub fn system_config(&self) -> PathBuf {
        self.root.path().join("system-config")
    }

    /// `$HOME` for rkt (empty: no `~/.docker/config.json` unless a test writes one).
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// Sets an environment variable for every later invocation.
    pub fn set_env(&mut self, key: &str, value: impl AsRef<OsStr>) {
        let value = value.as_ref().to_string_lossy().into_owned();
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value));
    }

    /// A command running `rkt ARGS…` in this sandbox; it dies with the test process.
    ///
    /// Network safety: `rkt run` and `rkt prepare` without a `--net` flag get `--net=none`
    /// here, since rkt's own default (`--net=default`) would put veths, routes and NAT rules
    /// into whatever network namespace the test runs in. Tests of pod networking pass `--net`
    /// themselves and run inside [`crate::netns::sandboxed`].
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let args = with_safe_net(args);
        let mut c = crate::spawn::tied_command(&self.bin);
        c.arg("--dir")
            .arg(self.dir())
            .arg("--local-config")
            .arg(self.local_config())
            .arg("--system-config")
            .arg(self.system_config())
            .args(&args)
            .stdin(Stdio::null())
            .env("HOME", self.home())
            .env_remove("DOCKER_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("XDG_RUNTIME_DIR");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `rkt ARGS…` to completion.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> RktOutput {
        let mut c = self.command(args);
        let shown = format!(
            "rkt {}",
            args.iter()
                .map(|a| a.as_ref().to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = crate::spawn::spawn(c)
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        RktOutput::wait(shown, child)
    }

    /// Runs `rkt ARGS…` and panics unless it exits 0.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> RktOutput {
        let out = self.run(args);
        assert!(out.success(), "{out}");
        out
    }

    /// `rkt image list --format=json`, parsed.
    pub fn image_list(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["image", "list", "--format=json"]);
        match serde_json::from_str(&out.stdout) {
            Ok(serde_json::Value::Array(v)) => v,
            _ => panic!("`rkt image list --format=json` printed no JSON array:\n{out}"),
        }
    }
}

/// What one `rkt` run did.
pub struct RktOutput {
    /// The command line, for messages.
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl RktOutput {
    /// Waits for `child` (spawned with piped stdout and stderr) and collects its output.
    pub fn wait(command: String, child: Child) -> RktOutput {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {command} failed: {e}"));
        RktOutput {
            command,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The last non-empty line of stdout (what `rkt fetch` prints for the last image).
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
    }
}

impl fmt::Display for RktOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// `args` with `--net=none` after a `run` or `prepare` verb that has no `--net` of its own
/// (see [`Rkt::command`]).
fn with_safe_net<S: AsRef<OsStr>>(args: &[S]) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let verb = v.iter().position(|a| !a.to_string_lossy().starts_with('-'));
    if let Some(i) = verb
        && matches!(v[i].to_str(), Some("run" | "prepare"))
        && !v.iter().any(|a| {
            let a = a.to_string_lossy();
            a == "--net" || a.starts_with("--net=")
        })
    {
        v.insert(i + 1, "--net=none".into());
    }
    v
}
