//! `rkt config`: the merged stage0 configuration.

use std::process::ExitCode;

use clap::Args;

use crate::global::GlobalArgs;

/// `rkt config` arguments.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Indent the JSON
    #[arg(long)]
    pub pretty_print: bool,
}

/// Prints the configuration as rkt's `{"stage0": [...]}` document, secrets redacted.
pub fn run(g: &GlobalArgs, a: ConfigArgs) -> anyhow::Result<ExitCode> {
    let mut doc = g.config()?.to_json();
    // The effective data directory, even when it comes from --dir or the default.
    if let Some(entries) = doc["stage0"].as_array_mut() {
        for e in entries.iter_mut() {
            if e["rktKind"] == "paths" {
                e["data"] = serde_json::json!(g.data_dir(&g.config()?).display().to_string());
            }
        }
    }
    let out = if a.pretty_print {
        serde_json::to_string_pretty(&doc)?
    } else {
        serde_json::to_string(&doc)?
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
