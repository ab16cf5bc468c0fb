//! `rkt rm POD…`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt rm` arguments.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Pods (UUID, unique prefix or name)
    pub pods: Vec<String>,
    /// Read a UUID from this file
    #[arg(long)]
    pub uuid_file: Option<PathBuf>,
}

/// Removes each pod that is not running, now (no grace period).
pub fn run(g: &GlobalArgs, a: RmArgs) -> anyhow::Result<ExitCode> {
    let pods = super::pods(g)?;
    let stage1 = super::stage1()?;
    let mut failed = false;
    for q in super::targets(&a.pods, a.uuid_file.as_deref())? {
        let r = pods.get(&q).map_err(anyhow::Error::from).and_then(|p| {
            rkt_stage0::ops::remove(&stage1, &pods, &p, g.debug)?;
            Ok(p)
        });
        match r {
            Ok(p) => println!("\"{}\"", p.uuid()),
            Err(e) => {
                eprintln!("rkt: cannot remove {q}: {e}");
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
