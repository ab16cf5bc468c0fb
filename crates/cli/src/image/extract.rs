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
    // Held while the trees are read, so a concurrent `rkt image gc` cannot remove them.
    let _fence = store.gc_fence()?;
    let rec = store.resolve(&a.image)?;
    let target = target_path(&a.target, store.root())?;
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
    if !is_absent_or_empty(&target)? && !a.overwrite {
        bail!(
            "{} exists and is not empty; pass --overwrite to replace it",
            a.target.display()
        );
    }
    let parent = target
        .parent()
        .ok_or_else(|| anyhow!("cannot replace the root directory"))?
        .to_owned();
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
    if std::fs::symlink_metadata(&target).is_ok() {
        remove_tree(&target)?;
    }
    let done = tmp.keep();
    std::fs::rename(&done, &target)
        .with_context(|| format!("cannot move the result into {}", a.target.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// DIR as an absolute path with symlinks resolved (so `.` or `dir/..` name the directory
/// itself and the temp directory goes beside it, not inside it). Refuses a DIR that is the
/// store, inside it or above it: replacing it would destroy the image being read.
fn target_path(dir: &Path, store_root: &Path) -> anyhow::Result<PathBuf> {
    let abs = match std::fs::canonicalize(dir) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?
        }
        Err(e) => return Err(e).with_context(|| format!("cannot resolve {}", dir.display())),
    };
    let store = std::fs::canonicalize(store_root).unwrap_or_else(|_| store_root.to_owned());
    if store.starts_with(&abs) || abs.starts_with(&store) {
        bail!(
            "{} overlaps the image store {}; choose a directory outside it",
            dir.display(),
            store.display()
        );
    }
    Ok(abs)
}

/// Whether DIR can be written without `--overwrite`: it does not exist or is an empty
/// directory (a file or a dangling symlink there counts as content).
fn is_absent_or_empty(dir: &Path) -> anyhow::Result<bool> {
    let read = |e| Err(e).with_context(|| format!("cannot read {}", dir.display()));
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => read(e),
        Ok(m) if m.is_dir() => match std::fs::read_dir(dir) {
            Ok(mut rd) => Ok(rd.next().is_none()),
            Err(e) => read(e),
        },
        Ok(_) => Ok(false),
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
