//! `rkt image export IMAGE OUTPUT`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use rkt_image::compress::auto_decoder;
use rkt_image::export::write_oci_archive;
use rkt_store::Store;
use rkt_types::oci::Descriptor;
use rkt_types::{ImageFormat, ImageRecord};

use crate::global::GlobalArgs;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// An OCI image layout archive (tar), for OCI and Docker images.
    Oci,
    /// An uncompressed appc ACI, for appc images.
    Aci,
}

/// `rkt image export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Image id, id prefix or name[:tag]
    pub image: String,
    /// File to write
    pub output: PathBuf,
    /// Replace OUTPUT if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// Output format [default: aci for appc images, oci otherwise]
    #[arg(long)]
    pub format: Option<ExportFormat>,
}

/// Writes the image to a temp file beside OUTPUT and renames it into place, so a failed
/// export never leaves a partial file behind.
pub fn run(g: &GlobalArgs, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    // Held while the blobs are read, so a concurrent `rkt image gc` cannot remove them.
    let _fence = store.gc_fence()?;
    let rec = store.resolve(&a.image)?;
    let format = a.format.unwrap_or(if rec.format == ImageFormat::Appc {
        ExportFormat::Aci
    } else {
        ExportFormat::Oci
    });
    if a.output.exists() && !a.overwrite {
        bail!(
            "{} already exists; pass --overwrite to replace it",
            a.output.display()
        );
    }
    let parent = match a.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".rkt-export-")
        .tempfile_in(&parent)
        .with_context(|| format!("cannot create a file in {}", parent.display()))?;
    match (format, rec.format) {
        (ExportFormat::Oci, ImageFormat::Appc) => bail!(
            "{} is an appc image; export it as an ACI (--format=aci)",
            a.image
        ),
        (ExportFormat::Aci, ImageFormat::Oci | ImageFormat::Docker) => bail!(
            "{} is an {} image; export it as an OCI archive (--format=oci)",
            a.image,
            rec.format.as_str()
        ),
        (ExportFormat::Oci, _) => export_oci(&store, &rec, tmp.as_file_mut())?,
        (ExportFormat::Aci, _) => export_aci(&store, &rec, tmp.as_file_mut())?,
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&a.output)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn export_oci(store: &Store, rec: &ImageRecord, out: &mut File) -> anyhow::Result<()> {
    let manifest = std::fs::read(store.blob_path(&rec.manifest))?;
    let config = std::fs::read(store.blob_path(&rec.config_blob))?;
    let mut blobs = Vec::with_capacity(rec.layers.len());
    for l in &rec.layers {
        let desc = Descriptor {
            media_type: l.media_type.clone(),
            digest: l.blob.clone(),
            size: l.size,
            urls: None,
            annotations: Default::default(),
            platform: None,
        };
        blobs.push((desc, store.open_blob(&l.blob)?));
    }
    let ref_name = first_name(store, rec)?;
    let w = write_oci_archive(
        BufWriter::new(out),
        &manifest,
        &config,
        blobs,
        ref_name.as_deref(),
    )?;
    w.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// An appc image's blob is the ACI as fetched; exporting writes it uncompressed, as rkt did.
fn export_aci(store: &Store, rec: &ImageRecord, out: &mut File) -> anyhow::Result<()> {
    let [layer] = rec.layers.as_slice() else {
        bail!(
            "appc image {} has {} layers, expected 1",
            rec.id,
            rec.layers.len()
        );
    };
    let (_, mut dec) = auto_decoder(store.open_blob(&layer.blob)?)?;
    let mut w = BufWriter::new(out);
    std::io::copy(&mut dec, &mut w)?;
    w.flush()?;
    Ok(())
}

/// The image's first `name:tag`, used as the OCI ref name.
fn first_name(store: &Store, rec: &ImageRecord) -> anyhow::Result<Option<String>> {
    Ok(store
        .list_images()?
        .into_iter()
        .find(|e| e.id == rec.id)
        .and_then(|e| e.names.first().map(|n| n.to_string())))
}
