//! `rkt image gc`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt image gc` arguments.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep unreferenced data younger than this (e.g. 30m, 24h, 0s)
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub grace_period: Duration,
}

/// Removes blobs and layer trees no image references, and debris of killed fetches.
pub fn run(g: &GlobalArgs, a: GcArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    // Trees that pods use stay, even if their image was removed.
    let pods = rkt_pod::Pods::open(&g.data_dir(&config))?;
    let keep = rkt_stage0::prepare::layers_in_use(&pods)?;
    let report = store.gc(a.grace_period, &keep)?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
