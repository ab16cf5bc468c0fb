//! `rkt image cat-manifest IMAGE`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt image cat-manifest` arguments.
#[derive(Debug, Args)]
pub struct CatManifestArgs {
    /// Image id, id prefix or name[:tag]
    pub image: String,
    /// Indent the JSON
    #[arg(long)]
    pub pretty_print: bool,
}

/// Prints the manifest exactly as stored (OCI/Docker manifest, or the ACI's manifest).
pub fn run(g: &GlobalArgs, a: CatManifestArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    let rec = store.resolve(&a.image)?;
    let bytes = std::fs::read(store.blob_path(&rec.manifest))?;
    if a.pretty_print {
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        // The bytes as stored (their digest is the manifest digest), plus a final newline.
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)?;
        if !bytes.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
