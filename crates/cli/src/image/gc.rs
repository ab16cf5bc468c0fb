//! `rkt image gc`.

use std::collections::HashSet;
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
    // No pods exist yet to pin layer trees; they will pass what they mount here.
    let report = store.gc(a.grace_period, &HashSet::new())?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
