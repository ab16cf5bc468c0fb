//! `rkt gc`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt gc` arguments.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// How long exited pods are kept before they are removed (e.g. 30m, 0s)
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub grace_period: Duration,
    /// How long prepared pods are kept before they expire
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub expire_prepared: Duration,
    /// Only mark exited pods (start their grace period); remove nothing
    #[arg(long)]
    pub mark_only: bool,
}

/// Marks exited pods, then removes those past their grace period.
pub fn run(g: &GlobalArgs, a: GcArgs) -> anyhow::Result<ExitCode> {
    let pods = super::pods(g)?;
    let stage1 = super::stage1()?;
    let r = rkt_stage0::ops::gc(
        &stage1,
        &pods,
        a.grace_period,
        a.expire_prepared,
        a.mark_only,
        g.debug,
    )?;
    for u in &r.marked {
        eprintln!("moving pod {u} to garbage");
    }
    for u in &r.removed {
        eprintln!("garbage collected pod {u}");
    }
    for (u, e) in &r.failed {
        eprintln!("rkt: cannot garbage collect pod {u}: {e}");
    }
    Ok(if r.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_ERROR)
    })
}
