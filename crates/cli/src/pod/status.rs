//! `rkt status POD`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use rkt_pod::PodState;
use rkt_stage0::view::{PodView, view};

use crate::global::GlobalArgs;

/// `rkt status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Pod UUID, unique prefix or name
    pub pod: Option<String>,
    /// Read the UUID from this file
    #[arg(long)]
    pub uuid_file: Option<PathBuf>,
    /// Wait until the pod has exited (optionally at most this long, e.g. --wait=30s)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "forever", value_name = "DURATION")]
    pub wait: Option<String>,
    /// Wait until every app has been started (optionally at most this long)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "forever", value_name = "DURATION")]
    pub wait_ready: Option<String>,
    /// Output format: json or json-pretty (default: key=value lines)
    #[arg(long)]
    pub format: Option<String>,
}

fn deadline(s: &str) -> anyhow::Result<Option<Instant>> {
    if s == "forever" {
        return Ok(None);
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| anyhow::anyhow!("invalid duration {s:?}: {e} (use e.g. 30s or 5m)"))?;
    Ok(Some(Instant::now() + d))
}

/// Prints the pod's state, waiting first if asked.
pub fn run(g: &GlobalArgs, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let pods = super::pods(g)?;
    let target = super::targets(a.pod.as_slice(), a.uuid_file.as_deref())?;
    let uuid = pods.get(&target[0])?.uuid();
    let current = |pods: &rkt_pod::Pods| -> anyhow::Result<PodView> {
        let info = pods
            .list()?
            .into_iter()
            .find(|p| p.uuid == uuid)
            .ok_or_else(|| anyhow::anyhow!("pod {uuid} disappeared (removed by gc?)"))?;
        Ok(view(&info))
    };
    let mut v = current(&pods)?;
    for (flag, until) in [(&a.wait_ready, true), (&a.wait, false)] {
        let Some(spec) = flag else { continue };
        let limit = deadline(spec)?;
        loop {
            let done = if until {
                v.ready || v.exited()
            } else {
                v.exited() && v.pod_state != PodState::Prepared
            };
            if done {
                break;
            }
            if limit.is_some_and(|l| Instant::now() >= l) {
                let what = if until { "ready" } else { "exited" };
                bail!("pod {uuid} is not {what} after {spec}");
            }
            std::thread::sleep(Duration::from_millis(50));
            v = current(&pods)?;
        }
    }
    match a.format.as_deref() {
        Some("json") => println!("{}", serde_json::to_string(&v)?),
        Some("json-pretty") => println!("{}", serde_json::to_string_pretty(&v)?),
        Some(other) => bail!("unknown --format {other:?}: use json or json-pretty"),
        None => print_lines(&v),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_lines(v: &PodView) {
    let t = |t: Option<std::time::SystemTime>| {
        t.map(|t| humantime::format_rfc3339_nanos(t).to_string())
            .unwrap_or_default()
    };
    println!("state={}", v.state);
    println!("created={}", t(v.created));
    println!("started={}", t(v.started));
    println!("networks={}", v.networks.join(","));
    println!("pid={}", v.pid.unwrap_or(-1));
    println!("exited={}", v.exited());
    if let Some(n) = &v.name {
        println!("name={n}");
    }
    for app in &v.apps {
        if let Some(e) = &app.exit {
            println!("app-{}={}", app.name, e.code);
            if e.oom_killed {
                println!("app-{}-oom-killed=true", app.name);
            }
        }
    }
}
