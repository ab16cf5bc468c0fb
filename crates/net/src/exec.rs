//! Running one CNI plugin: lookup, the CNI environment, JSON on stdin, bounded output, a deadline.
//! rkt's own `iptables-restore`/`iptables` runs ([`run_tool`], for `rktIpMasq`) go the same way.
//!
//! Everything happens on the calling thread (stage1 stays single-threaded until its apps run):
//! the configuration is written into the stdin pipe before the plugin starts (the pipe is sized
//! to hold it, so nothing can block or raise SIGPIPE), and stdout, stderr and a pidfd are
//! polled together until the plugin exits or the deadline passes. The plugin runs in its own
//! process group so that a timeout kills the `iptables` it may have started along with it.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open};
use serde_json::Value;

use crate::config::validate_plugin_name;
use crate::error::{NetError, PluginError};

/// The `PATH` plugins get; nothing else of the caller's environment reaches them. `portmap` and
/// the masquerading plugins run `iptables` from it.
pub(crate) const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How much of a plugin's stderr is kept for the user.
const MAX_STDERR: usize = 64 << 10;

/// How long to keep reading a plugin's output after it exited (a child it left behind may hold
/// the pipes open).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Bounds on one plugin run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub max_output: usize,
}

/// One plugin invocation: the command and the CNI parameters.
pub(crate) struct Call<'a> {
    pub command: &'static str,
    pub network: &'a str,
    pub plugin: &'a str,
    pub container_id: Option<&'a str>,
    pub netns: Option<&'a Path>,
    pub ifname: Option<&'a str>,
    pub args: Option<&'a str>,
    pub cni_path: &'a str,
}

/// Finds `plugin` as a regular executable file directly in one of `dirs` (first match wins).
pub(crate) fn find_plugin(
    dirs: &[PathBuf],
    plugin: &str,
    network: &str,
) -> Result<PathBuf, NetError> {
    validate_plugin_name(plugin)?;
    for dir in dirs {
        let path = dir.join(plugin);
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(path);
        }
    }
    Err(NetError::PluginNotFound {
        plugin: plugin.to_string(),
        network: network.to_string(),
        dirs: dirs.to_vec(),
    })
}

/// Runs the plugin at `path` with `stdin` and returns its stdout if it succeeded.
pub(crate) fn run(
    path: &Path,
    call: &Call<'_>,
    stdin: &[u8],
    limits: Limits,
) -> Result<Vec<u8>, NetError> {
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .env("PATH", PLUGIN_PATH)
        .env("CNI_COMMAND", call.command)
        .env("CNI_PATH", call.cni_path)
        .current_dir("/")
        .stdin(stdin_pipe(path, stdin)?)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(id) = call.container_id {
        cmd.env("CNI_CONTAINERID", id);
    }
    // DEL may run without a namespace (it is gone); the variable is then absent, which plugins
    // read as empty.
    if let Some(ns) = call.netns {
        cmd.env("CNI_NETNS", ns);
    }
    if let Some(ifname) = call.ifname {
        cmd.env("CNI_IFNAME", ifname);
    }
    if let Some(args) = call.args {
        cmd.env("CNI_ARGS", args);
    }
    let started = Instant::now();
    let out = spawn_collect(&mut cmd, limits);
    tracing::debug!(
        plugin = call.plugin,
        command = call.command,
        network = call.network,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "CNI plugin ran"
    );
    let out = match out {
        Ok(out) => out,
        Err(Stop::Spawn(source)) => {
            return Err(NetError::Spawn {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(Stop::TimedOut(stderr)) => {
            return Err(NetError::Timeout {
                network: call.network.to_string(),
                plugin: call.plugin.to_string(),
                command: call.command,
                after: limits.timeout,
                stderr: stderr_text(&stderr),
            });
        }
        Err(Stop::TooLarge) => {
            return Err(NetError::OutputTooLarge {
                network: call.network.to_string(),
                plugin: call.plugin.to_string(),
                command: call.command,
                limit: limits.max_output,
            });
        }
        Err(Stop::Io(action, source)) => {
            return Err(NetError::io(action, path, source));
        }
    };
    let stderr = stderr_text(&out.stderr);
    if out.status.success() {
        if !stderr.is_empty() {
            tracing::warn!(
                plugin = call.plugin,
                network = call.network,
                "CNI plugin: {stderr}"
            );
        }
        return Ok(out.stdout);
    }
    Err(plugin_error(call, &out.stdout, stderr, out.status))
}

/// How a helper tool ([`run_tool`]) ended.
pub(crate) struct ToolRun {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Trimmed, bounded.
    pub stderr: String,
}

/// Runs a system tool (`iptables-restore`, `iptables`) the way plugins run: found in
/// [`PLUGIN_PATH`] only, with only `PATH` in its environment, in `/`, in its own process group,
/// `stdin` from a pipe, under the same time and output limits. An error says why it could not
/// run to its end (its exit status is the caller's to judge).
pub(crate) fn run_tool(
    tool: &str,
    args: &[&str],
    stdin: &[u8],
    limits: Limits,
) -> Result<ToolRun, String> {
    let path = PLUGIN_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| format!("{tool} is not installed (searched {PLUGIN_PATH})"))?;
    let mut cmd = Command::new(&path);
    cmd.args(args)
        .env_clear()
        .env("PATH", PLUGIN_PATH)
        .current_dir("/")
        .stdin(stdin_pipe(&path, stdin).map_err(|e| e.to_string())?)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let out = spawn_collect(&mut cmd, limits);
    tracing::debug!(
        tool,
        ?args,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "tool ran"
    );
    match out {
        Ok(out) => Ok(ToolRun {
            status: out.status,
            stdout: out.stdout,
            stderr: stderr_text(&out.stderr),
        }),
        Err(Stop::Spawn(e)) => Err(format!("cannot run {}: {e}", path.display())),
        Err(Stop::TimedOut(stderr)) => Err(format!(
            "{tool} did not finish within {}s and was killed{}",
            limits.timeout.as_secs(),
            Some(stderr_text(&stderr))
                .filter(|s| !s.is_empty())
                .map(|s| format!(" (stderr: {s})"))
                .unwrap_or_default()
        )),
        Err(Stop::TooLarge) => Err(format!(
            "{tool} wrote more than {} bytes of output and was stopped",
            limits.max_output
        )),
        Err(Stop::Io(action, e)) => Err(format!("cannot {action} {tool}: {e}")),
    }
}

/// Starts `cmd` (its stdio set up: stdin ready, stdout and stderr piped, own process group) and
/// collects its output within `limits`.
fn spawn_collect(cmd: &mut Command, limits: Limits) -> Result<Output, Stop> {
    let mut child = cmd.spawn().map_err(Stop::Spawn)?;
    collect(&mut child, limits)
}

/// A pipe already holding `data`, as the plugin's stdin.
fn stdin_pipe(path: &Path, data: &[u8]) -> Result<Stdio, NetError> {
    let io_err = |e: Errno| NetError::io("make a pipe for", path, e.into());
    let (read, write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io_err)?;
    if data.len() > rustix::pipe::fcntl_getpipe_size(&write).map_err(io_err)? {
        // Configs are small; this is for the rare huge one (up to the system's pipe-max-size).
        rustix::pipe::fcntl_setpipe_size(&write, data.len()).map_err(io_err)?;
    }
    File::from(write)
        .write_all(data)
        .map_err(|e| NetError::io("write the configuration for", path, e))?;
    Ok(Stdio::from(read))
}

struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

enum Stop {
    Spawn(std::io::Error),
    TimedOut(Vec<u8>),
    TooLarge,
    Io(&'static str, std::io::Error),
}

/// Reads the plugin's stdout and stderr until it exits, within the limits; on a limit it kills
/// the plugin's process group and reaps the plugin.
fn collect(child: &mut Child, limits: Limits) -> Result<Output, Stop> {
    let result = collect_inner(child, limits);
    if result.is_err() {
        // The group is the plugin's own (process_group(0)); the plugin is not reaped yet, so
        // its id still names that group.
        if let Some(pgid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
        let _ = child.wait();
    }
    result
}

fn collect_inner(child: &mut Child, limits: Limits) -> Result<Output, Stop> {
    let io = |what: &'static str| move |e: Errno| Stop::Io(what, e.into());
    let mut stdout_fd: Option<OwnedFd> = child.stdout.take().map(OwnedFd::from);
    let mut stderr_fd: Option<OwnedFd> = child.stderr.take().map(OwnedFd::from);
    for fd in stdout_fd.iter().chain(stderr_fd.iter()) {
        rustix::io::ioctl_fionbio(fd, true).map_err(io("read the output of"))?;
    }
    let pidfd = pidfd_open(Pid::from_child(child), PidfdFlags::empty())
        .map_err(io("watch (pidfd_open)"))?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut exited = false;
    let mut deadline = Instant::now() + limits.timeout;
    loop {
        if exited && stdout_fd.is_none() && stderr_fd.is_none() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            if exited {
                // Output pipes held open by something the plugin left behind: take what we have.
                break;
            }
            return Err(Stop::TimedOut(stderr));
        }
        let left = deadline - now;
        // rustix's conversion; a span too long for a timespec is as good as forever.
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let mut fds = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(3);
        if let Some(fd) = &stdout_fd {
            fds.push(PollFd::new(fd, PollFlags::IN));
            which.push(0);
        }
        if let Some(fd) = &stderr_fd {
            fds.push(PollFd::new(fd, PollFlags::IN));
            which.push(1);
        }
        if !exited {
            fds.push(PollFd::new(&pidfd, PollFlags::IN));
            which.push(2);
        }
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(io("wait for")(e)),
        }
        let ready: Vec<(usize, bool)> = fds
            .iter()
            .zip(&which)
            .map(|(p, w)| (*w, !p.revents().is_empty()))
            .collect();
        drop(fds);
        for (w, is_ready) in ready {
            if !is_ready {
                continue;
            }
            match w {
                0 => {
                    if drain(&mut stdout_fd, &mut stdout, Some(limits.max_output))? {
                        return Err(Stop::TooLarge);
                    }
                }
                1 => {
                    drain(&mut stderr_fd, &mut stderr, None)?;
                }
                _ => {
                    exited = true;
                    deadline = deadline.min(Instant::now() + DRAIN_GRACE);
                }
            }
        }
    }
    let status = child.wait().map_err(|e| Stop::Io("wait for", e))?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Reads what is there; closes the fd at EOF. With a `limit`, returns true when the output went
/// over it; without, keeps the first [`MAX_STDERR`] bytes and discards the rest.
fn drain(fd: &mut Option<OwnedFd>, buf: &mut Vec<u8>, limit: Option<usize>) -> Result<bool, Stop> {
    let Some(f) = fd.as_ref() else {
        return Ok(false);
    };
    let mut chunk = [0u8; 16 << 10];
    loop {
        match rustix::io::read(f, &mut chunk) {
            Ok(0) => {
                *fd = None;
                return Ok(false);
            }
            Ok(n) => match limit {
                Some(limit) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > limit {
                        return Ok(true);
                    }
                }
                None => {
                    let room = MAX_STDERR.saturating_sub(buf.len());
                    buf.extend_from_slice(&chunk[..n.min(room)]);
                }
            },
            Err(Errno::AGAIN) => return Ok(false),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(Stop::Io("read the output of", e.into())),
        }
    }
}

fn stderr_text(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(bytes).trim().to_string();
    if bytes.len() >= MAX_STDERR {
        s.push_str(" … (cut)");
    }
    s
}

/// The error a failed plugin reported: its CNI error JSON (stdout, or stderr for plugins that
/// print it there), else how it ended.
fn plugin_error(call: &Call<'_>, stdout: &[u8], stderr: String, status: ExitStatus) -> NetError {
    let parsed = cni_error(stdout)
        .map(|e| (e, stderr.clone()))
        .or_else(|| cni_error(stderr.as_bytes()).map(|e| (e, String::new())));
    let (code, msg, details, stderr) = match parsed {
        Some(((code, msg, details), stderr)) => (code, msg, details, stderr),
        None => {
            let how = match (status.code(), status.signal()) {
                (Some(c), _) => format!("exited with status {c}"),
                (None, Some(s)) => format!("was killed by signal {s}"),
                _ => "failed".to_string(),
            };
            let out = String::from_utf8_lossy(stdout)
                .trim()
                .chars()
                .take(4096)
                .collect::<String>();
            let details = if out.is_empty() {
                String::new()
            } else {
                format!("output: {out}")
            };
            (None, format!("{how} without a CNI error"), details, stderr)
        }
    };
    NetError::PluginFailed {
        network: call.network.to_string(),
        plugin: call.plugin.to_string(),
        command: call.command,
        error: Box::new(PluginError {
            code,
            msg,
            details,
            stderr,
        }),
    }
}

fn cni_error(bytes: &[u8]) -> Option<(Option<u64>, String, String)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let obj = v.as_object()?;
    let code = obj.get("code").and_then(Value::as_u64);
    let msg = obj.get("msg").and_then(Value::as_str);
    if code.is_none() && msg.is_none() {
        return None;
    }
    let details = obj
        .get("details")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((
        code,
        msg.unwrap_or("(no message)").to_string(),
        details.to_string(),
    ))
}
