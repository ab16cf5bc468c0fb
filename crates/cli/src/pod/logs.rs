//! `rkt logs [--app=NAME] [-f] [--tail N] [--since T] POD`: the apps' stdout and stderr, kept
//! by the pod supervisor in CRI log files in the pod directory, readable after the pod exited.
//! (The supervisor also copies each line to the host's journal when journald runs; the help
//! says how to read it there.)

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use clap::Args;
use rkt_pod::PodState;
use rkt_pod::status::files;

use crate::global::GlobalArgs;

/// `rkt logs` arguments.
#[derive(Debug, Args)]
#[command(after_help = JOURNAL_HELP)]
pub struct LogsArgs {
    /// Only this app (default: every app, each line prefixed with its name)
    #[arg(long)]
    pub app: Option<String>,
    /// Keep printing new lines until the pod exits
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines newer than this: a duration (10m) or an RFC 3339 time
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Show each line's timestamp
    #[arg(long)]
    pub timestamps: bool,
    /// Pod UUID, unique prefix or name
    pub pod: String,
}

/// Where else app output goes (stage1's `ns::journal` sends it).
const JOURNAL_HELP: &str = "\
When the host runs journald (its socket /run/systemd/journal/socket exists when the pod \
starts), every line also goes to the host's journal, with the pod's UUID and the app's name:
  journalctl RKT_POD_UUID=<uuid>      journalctl CONTAINER_NAME=<app>      journalctl -t <app>
`rkt logs` reads the pod's own log files, which have every line either way.";

/// One parsed CRI log line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    time: String,
    stderr: bool,
    partial: bool,
    text: String,
    app: String,
}

/// Parses `TIME STREAM TAG TEXT`; `None` for a damaged line.
fn parse_line(app: &str, l: &str) -> Option<Line> {
    let mut it = l.splitn(4, ' ');
    let time = it.next()?.to_owned();
    let stderr = match it.next()? {
        "stdout" => false,
        "stderr" => true,
        _ => return None,
    };
    let partial = it.next()? == "P";
    Some(Line {
        time,
        stderr,
        partial,
        text: it.next().unwrap_or("").to_owned(),
        app: app.to_owned(),
    })
}

/// The app's log files, oldest first.
fn log_files(pod_dir: &Path, app: &str) -> Vec<PathBuf> {
    let dir = pod_dir
        .join(files::APPS_DIR)
        .join(app)
        .join(files::APP_LOGS_DIR);
    let cur = dir.join(files::APP_LOG_CURRENT);
    let mut rotated: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let k = n
                .strip_prefix(&format!("{}.", files::APP_LOG_CURRENT))?
                .parse()
                .ok()?;
            Some((k, e.path()))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    rotated.into_iter().map(|(_, p)| p).chain([cur]).collect()
}

fn since_cutoff(s: &str) -> anyhow::Result<String> {
    let t = match humantime::parse_duration(s) {
        Ok(d) => SystemTime::now() - d,
        Err(_) => humantime::parse_rfc3339_weak(s).map_err(|_| {
            anyhow::anyhow!("--since {s:?}: use a duration (10m) or a time (2026-01-02T15:04:05Z)")
        })?,
    };
    Ok(humantime::format_rfc3339_nanos(t).to_string())
}

/// Prints the pod's logs.
pub fn run(g: &GlobalArgs, a: LogsArgs) -> anyhow::Result<ExitCode> {
    let pods = super::pods(g)?;
    let pod = pods.get(&a.pod)?;
    let req = rkt_stage0::view::read_request(pod.dir())
        .ok_or_else(|| anyhow::anyhow!("pod {} has no readable stage1 request", pod.uuid()))?;
    let apps: Vec<String> = match &a.app {
        Some(x) if req.apps.iter().any(|r| &r.name == x) => vec![x.clone()],
        Some(x) => bail!("pod {} has no app {x:?}", pod.uuid()),
        None => req.apps.iter().map(|r| r.name.clone()).collect(),
    };
    let prefix = apps.len() > 1;
    let cutoff = a.since.as_deref().map(since_cutoff).transpose()?;
    let mut lines = Vec::new();
    let mut offsets = Vec::new();
    for app in &apps {
        let files = log_files(pod.dir(), app);
        for f in &files {
            let Ok(file) = std::fs::File::open(f) else {
                continue;
            };
            for l in BufReader::new(file).lines().map_while(Result::ok) {
                lines.extend(parse_line(app, &l));
            }
        }
        let end = files
            .last()
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(0, |m| m.len());
        offsets.push((app.clone(), end));
    }
    // RFC 3339 times of one format sort as strings; a stable sort keeps each app's order.
    lines.sort_by(|x, y| x.time.cmp(&y.time));
    if let Some(c) = &cutoff {
        lines.retain(|l| &l.time >= c);
    }
    if let Some(n) = a.tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    for l in &lines {
        emit(l, prefix, a.timestamps)?;
    }
    if a.follow {
        follow(&pods, pod.uuid(), pod.dir(), offsets, prefix, a.timestamps)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn emit(l: &Line, prefix: bool, timestamps: bool) -> std::io::Result<()> {
    let mut s = String::new();
    if timestamps {
        s.push_str(&l.time);
        s.push(' ');
    }
    if prefix {
        s.push_str(&l.app);
        s.push_str(": ");
    }
    s.push_str(&l.text);
    if !l.partial {
        s.push('\n');
    }
    if l.stderr {
        std::io::stderr().write_all(s.as_bytes())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(s.as_bytes())?;
        out.flush()
    }
}

/// Prints lines appended to each app's current log until the pod is no longer running.
fn follow(
    pods: &rkt_pod::Pods,
    uuid: uuid::Uuid,
    pod_dir: &Path,
    mut offsets: Vec<(String, u64)>,
    prefix: bool,
    timestamps: bool,
) -> anyhow::Result<()> {
    loop {
        let running = pods
            .find(uuid)?
            .is_some_and(|p| p.state() == PodState::Running);
        for (app, off) in offsets.iter_mut() {
            let cur = pod_dir
                .join(files::APPS_DIR)
                .join(app.as_str())
                .join(files::APP_LOGS_DIR)
                .join(files::APP_LOG_CURRENT);
            let Ok(mut f) = std::fs::File::open(&cur) else {
                continue;
            };
            let len = f.metadata()?.len();
            if len < *off {
                *off = 0; // rotated: the current file started over
            }
            f.seek(SeekFrom::Start(*off))?;
            let mut r = BufReader::new(f);
            let mut buf = String::new();
            while r.read_line(&mut buf)? > 0 {
                if !buf.ends_with('\n') {
                    break; // a line still being written: read it whole next time
                }
                *off += buf.len() as u64;
                if let Some(l) = parse_line(app, buf.trim_end_matches('\n')) {
                    emit(&l, prefix, timestamps)?;
                }
                buf.clear();
            }
        }
        if !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines() {
        let l = parse_line("web", "2026-01-02T15:04:05.000000001Z stderr F oops: a b").unwrap();
        assert!(l.stderr && !l.partial);
        assert_eq!(l.text, "oops: a b");
        let p = parse_line("web", "2026-01-02T15:04:05Z stdout P part").unwrap();
        assert!(p.partial && !p.stderr);
        assert!(parse_line("web", "garbage").is_none());
        assert!(parse_line("web", "t stdin F x").is_none());
        let empty = parse_line("web", "2026-01-02T15:04:05Z stdout F ").unwrap();
        assert_eq!(empty.text, "");
    }
}
