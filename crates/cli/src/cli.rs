//! The command line: global flags and the verbs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::global::GlobalArgs;

/// rkt: fetch, verify, store and run container images as pods, with no daemon.
#[derive(Debug, Parser)]
#[command(
    name = "rkt",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch images into the store and print their ids.
    Fetch(crate::fetch::FetchArgs),
    /// Operate on images in the store.
    #[command(subcommand)]
    Image(crate::image::ImageCommand),
    /// Print the merged stage0 configuration as JSON (secrets redacted).
    Config(crate::config::ConfigArgs),
    /// Print the versions of rkt and the formats it speaks.
    Version,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = cli.global;
    match cli.command {
        Command::Fetch(a) => crate::fetch::run(&g, a),
        Command::Image(c) => crate::image::run(&g, c),
        Command::Config(a) => crate::config::run(&g, a),
        Command::Version => crate::version::run(),
    }
}
