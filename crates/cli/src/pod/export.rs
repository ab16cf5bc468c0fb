//! `rkt export [--app=NAME] POD OUTPUT`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rkt_stage0::export::{ExportFormat, ExportOptions, export};

use crate::global::GlobalArgs;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An OCI image archive: the image's layers plus one layer of the app's changes.
    Oci,
    /// An uncompressed appc ACI of the flattened root filesystem.
    Aci,
}

/// `rkt export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The app to export (needed when the pod has several)
    #[arg(long)]
    pub app: Option<String>,
    /// Pod UUID, unique prefix or name (an exited pod)
    pub pod: String,
    /// File to write
    pub output: PathBuf,
    /// Replace OUTPUT if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// Output format [default: aci for appc images, oci otherwise]
    #[arg(long)]
    pub format: Option<Format>,
}

/// Writes an exited app's filesystem, with its changes, as a new image.
pub fn run(g: &GlobalArgs, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    let pods = super::pods(g)?;
    let opts = ExportOptions {
        app: a.app,
        output: a.output,
        overwrite: a.overwrite,
        format: a.format.map(|f| match f {
            Format::Oci => ExportFormat::Oci,
            Format::Aci => ExportFormat::Aci,
        }),
    };
    let done = export(&pods, &store, &a.pod, &opts)?;
    tracing::info!(
        app = %done.app,
        name = %done.name,
        "exported to {}",
        opts.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
