//! A real `systemd-journald` of a test's own, for the tests of rkt's journal copies.
//!
//! [`with_journald`] runs a shell script under `unshare --mount --propagation private`: in that
//! mount namespace, tmpfs covers `/run/systemd/journal` (journald's sockets), `/run/log/journal`
//! (where it writes, `journalctl -D /run/log/journal` reads) and `/var/log/journal` if it
//! exists, so the host's journal, running or not, is never touched; then Debian's
//! `systemd-journald` is started there (it runs fine without systemd as PID 1) and the script
//! runs once its socket is up. journald is killed when the script ends (and dies with it if the
//! test is killed: `setpriv --pdeathsig`).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Debian's journald binary (package `systemd`).
pub const JOURNALD: &str = "/lib/systemd/systemd-journald";
/// journalctl (package `systemd`).
pub const JOURNALCTL: &str = "/usr/bin/journalctl";

/// Makes `$1` a fresh tmpfs in this mount namespace, creating nothing on the host: when it is
/// missing, a tmpfs goes on its nearest existing ancestor (one of ours already, or a new one)
/// and `$1` is made inside.
const SETUP: &str = r#"
set -eu
ours=""
private_dir() {
  d="$1"
  if [ -d "$d" ]; then mount -t tmpfs -o mode=0755 tmpfs "$d"; ours="$ours $d"; return; fi
  a="$d"
  while [ ! -d "$a" ]; do a=$(dirname "$a"); done
  case " $ours " in
    *" $a "*) ;;
    *) mount -t tmpfs -o mode=0755 tmpfs "$a"; ours="$ours $a" ;;
  esac
  mkdir -p "$d"
}
private_dir /run/systemd/journal
private_dir /run/log/journal
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
# journald names its directory after the machine id; an empty one gets a made-up id here.
if [ -f /etc/machine-id ] && [ ! -s /etc/machine-id ]; then
  id=$(cat /proc/sys/kernel/random/uuid | tr -d -)
  echo "$id" > /run/log/machine-id
  mount --bind /run/log/machine-id /etc/machine-id
fi
setpriv --pdeathsig KILL "$JOURNALD" &
jpid=$!
echo "$jpid" > "$JOURNALD_PID_FILE"
trap 'kill "$jpid" 2>/dev/null || true; wait "$jpid" 2>/dev/null || true' EXIT
i=0
while [ ! -S /run/systemd/journal/socket ]; do
  i=$((i+1))
  if [ "$i" -gt 200 ] || ! kill -0 "$jpid" 2>/dev/null; then
    echo "systemd-journald did not come up" >&2; exit 90
  fi
  sleep 0.05
done
script="$1"; shift
eval "$script"
"#;

/// What [`with_journald`] ran.
pub struct JournaldRun {
    /// The script's output and status.
    pub output: Output,
    /// journald's pid (dead by the time this is returned).
    pub journald_pid: i32,
}

/// Panics, saying what to install, unless journald and journalctl are on this machine.
pub fn require_journald() {
    for bin in [JOURNALD, JOURNALCTL] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install what the tests need with `scripts/install.sh --tests` \
             (Debian package `systemd`)"
        );
    }
}

/// Runs the shell `script` (`$1`… are `args`; `envs` set, or with `None` remove, variables)
/// in a private mount namespace with a real journald of its own (see the module doc; the
/// script finds journald's pid in `$jpid`); journald is stopped when the script ends.
pub fn with_journald<S: AsRef<OsStr>>(
    script: &str,
    args: &[S],
    envs: &[(&OsStr, Option<&OsStr>)],
) -> JournaldRun {
    require_journald();
    let dir = tempfile::tempdir().expect("a temp directory");
    let pid_file = dir.path().join("journald.pid");
    let mut c = crate::spawn::tied_command(Path::new("/usr/bin/unshare"));
    c.args([
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        SETUP,
        "sh",
    ])
    .arg(script)
    .args(args)
    .env("JOURNALD", JOURNALD)
    .env("JOURNALD_PID_FILE", &pid_file)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let child = crate::spawn::spawn(c).expect("cannot run unshare");
    let output = child.wait_with_output().expect("waiting for unshare");
    let journald_pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "journald was not started: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    JournaldRun {
        output,
        journald_pid,
    }
}

/// The program and arguments of `c` (for a script's `"$@"`), and the environment changes it
/// makes (for [`with_journald`]'s `envs`).
pub fn command_line(c: &Command) -> (Vec<&OsStr>, Vec<(&OsStr, Option<&OsStr>)>) {
    let mut argv = vec![c.get_program()];
    argv.extend(c.get_args());
    (argv, c.get_envs().collect())
}
