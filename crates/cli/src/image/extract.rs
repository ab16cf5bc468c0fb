//! `rkt image extract|render IMAGE DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use rkt_image::render::{RenderOptions, render};

use crate::global::GlobalArgs;

/// `rkt image extract` / `rkt image render` arguments.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Image id, id prefix or name[:tag]
    pub image: String,
    /// Directory to write (created; must be absent or empty unless --overwrite)
    #[arg(value_name = "DIR")]
    pub target: PathBuf,
    /// Write only the filesystem, directly into DIR (else DIR/rootfs plus DIR/manifest)
    #[arg(long)]
    pub rootfs_only: bool,
    /// Replace DIR if it exists and is not empty
    #[arg(long)]
    pub overwrite: bool,
}

/// Flattens the image's layer trees (whiteouts applied) into a temp directory beside DIR, then
/// renames it into place, so a failure never leaves a half-written DIR.
pub fn run(g: &GlobalArgs, a: ExtractArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    let rec = store.resolve(&a.image)?;
    let trees = rec
        .layers
        .iter()
        .map(|l| {
            store.layer_tree(&l.diff_id).ok_or_else(|| {
                anyhow!(
                    "layer {} of {} is missing from the store; fetch the image again",
                    l.diff_id,
                    a.image
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !is_absent_or_empty(&a.target)? && !a.overwrite {
        bail!(
            "{} exists and is not empty; pass --overwrite to replace it",
            a.target.display()
        );
    }
    let parent = match a.target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".rkt-extract-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    let rootfs = if a.rootfs_only {
        tmp.path().to_owned()
    } else {
        let r = tmp.path().join("rootfs");
        std::fs::create_dir(&r)?;
        std::fs::write(
            tmp.path().join("manifest"),
            std::fs::read(store.blob_path(&rec.manifest))?,
        )?;
        r
    };
    let layers: Vec<&Path> = trees.iter().map(PathBuf::as_path).collect();
    let report = render(&layers, &rootfs, &RenderOptions::default())?;
    for s in &report.skipped {
        tracing::warn!("not extracted: {s}");
    }
    // The temp dir is the same mode as a fresh mkdir would be, not 0700.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    if a.target.exists() {
        remove_tree(&a.target)?;
    }
    let done = tmp.keep();
    std::fs::rename(&done, &a.target)
        .with_context(|| format!("cannot move the result into {}", a.target.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn is_absent_or_empty(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

fn remove_tree(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        std::fs::remove_dir_all(dir)
    } else {
        std::fs::remove_file(dir)
    }
    .with_context(|| format!("cannot remove {}", dir.display()))
}
