//! `rkt image verify IMAGE...`.

use std::process::ExitCode;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt image verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image ids, id prefixes or name[:tag]s
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Re-hashes every layer tree and blob of each image; exits non-zero on any mismatch.
pub fn run(g: &GlobalArgs, a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    let mut bad = 0;
    for q in &a.images {
        let rec = store.resolve(q)?;
        let report = store.verify_image(&rec.id)?;
        if report.is_ok() {
            println!("{}: OK ({} layers)", rec.id, report.layers.len());
            continue;
        }
        bad += 1;
        println!("{}: FAILED", rec.id);
        if !report.manifest.is_ok() {
            println!("  manifest {}: {}", rec.manifest, report.manifest);
        }
        if !report.config.is_ok() {
            println!("  config {}: {}", rec.config_blob, report.config);
        }
        for l in &report.layers {
            if !l.blob_check.is_ok() {
                println!("  layer blob {}: {}", l.blob, l.blob_check);
            }
            if !l.tree_check.is_ok() {
                println!("  layer tree {}: {}", l.diff_id, l.tree_check);
            }
        }
    }
    Ok(if bad > 0 {
        ExitCode::from(crate::EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}
