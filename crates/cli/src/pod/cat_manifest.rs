//! `rkt cat-manifest POD`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt cat-manifest` arguments.
#[derive(Debug, Args)]
pub struct CatManifestArgs {
    /// Pod UUID, unique prefix or name
    pub pod: Option<String>,
    /// Read the UUID from this file
    #[arg(long)]
    pub uuid_file: Option<PathBuf>,
    /// Indent the JSON
    #[arg(long)]
    pub pretty_print: bool,
}

/// Prints the pod manifest.
pub fn run(g: &GlobalArgs, a: CatManifestArgs) -> anyhow::Result<ExitCode> {
    let pods = super::pods(g)?;
    let target = super::targets(a.pod.as_slice(), a.uuid_file.as_deref())?;
    let pod = pods.get(&target[0])?;
    let bytes = std::fs::read(pod.dir().join(rkt_pod::status::files::POD_MANIFEST))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    if a.pretty_print {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", serde_json::to_string(&v)?);
    }
    Ok(ExitCode::SUCCESS)
}
