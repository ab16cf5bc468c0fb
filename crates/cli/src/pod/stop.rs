//! `rkt stop POD…`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt stop` arguments.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Pods (UUID, unique prefix or name)
    pub pods: Vec<String>,
    /// Read a UUID from this file
    #[arg(long)]
    pub uuid_file: Option<PathBuf>,
    /// Kill at once (SIGKILL) instead of SIGTERM then SIGKILL after a grace period
    #[arg(long)]
    pub force: bool,
}

/// Stops each pod; goes on past failures and reports them.
pub fn run(g: &GlobalArgs, a: StopArgs) -> anyhow::Result<ExitCode> {
    let pods = super::pods(g)?;
    let stage1 = super::stage1()?;
    let mut failed = false;
    for q in super::targets(&a.pods, a.uuid_file.as_deref())? {
        let r = pods
            .get(&q)
            .map_err(anyhow::Error::from)
            .and_then(|p| Ok(rkt_stage0::ops::stop(&stage1, &p, a.force, g.debug).map(|()| p)?));
        match r {
            Ok(p) => println!("{}", p.uuid()),
            Err(e) => {
                eprintln!("rkt: cannot stop {q}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(crate::EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}
