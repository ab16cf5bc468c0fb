//! `rkt image rm IMAGE...`.

use std::process::ExitCode;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt image rm` arguments.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Image ids, id prefixes or name[:tag]s
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Removes each image; goes on past failures and reports them all.
pub fn run(g: &GlobalArgs, a: RmArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    let mut failed = 0;
    let mut removed = 0;
    for q in &a.images {
        match store
            .resolve(q)
            .and_then(|rec| store.remove_image(&rec.id).map(|()| rec))
        {
            Ok(rec) => {
                println!("successfully removed image {}", rec.id);
                removed += 1;
            }
            Err(e) => {
                eprintln!("rkt: cannot remove {q}: {e}");
                failed += 1;
            }
        }
    }
    if removed > 0 {
        eprintln!(
            "{removed} image(s) successfully removed; run `rkt image gc` to free their space"
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(crate::EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}
