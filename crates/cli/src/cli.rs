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
    /// Run images as a pod in the foreground; rkt becomes the pod.
    Run(crate::run::RunArgs),
    /// Prepare a pod to run later with run-prepared, and print its UUID.
    Prepare(crate::run::RunArgs),
    /// Run a prepared pod.
    RunPrepared(crate::run::RunPreparedArgs),
    /// List pods.
    List(crate::pod::list::ListArgs),
    /// Show a pod's state and its apps' exit codes.
    Status(crate::pod::status::StatusArgs),
    /// Run a command inside a running app, confined exactly as the app is.
    Enter(crate::pod::enter::EnterArgs),
    /// Stop running pods.
    Stop(crate::pod::stop::StopArgs),
    /// Remove pods that are not running, now.
    Rm(crate::pod::rm::RmArgs),
    /// Garbage-collect exited pods after a grace period.
    Gc(crate::pod::gc::GcArgs),
    /// Print a pod's manifest.
    CatManifest(crate::pod::cat_manifest::CatManifestArgs),
    /// Print a pod's app logs (stdout and stderr), also after it exited.
    Logs(crate::pod::logs::LogsArgs),
    /// Write an exited app's filesystem, with its changes, as a new image.
    Export(crate::pod::export::ExportArgs),
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
        Command::Run(a) => crate::run::run(&g, a),
        Command::Prepare(a) => crate::run::prepare_verb(&g, a),
        Command::RunPrepared(a) => crate::run::run_prepared(&g, a),
        Command::List(a) => crate::pod::list::run(&g, a),
        Command::Status(a) => crate::pod::status::run(&g, a),
        Command::Enter(a) => crate::pod::enter::run(&g, a),
        Command::Stop(a) => crate::pod::stop::run(&g, a),
        Command::Rm(a) => crate::pod::rm::run(&g, a),
        Command::Gc(a) => crate::pod::gc::run(&g, a),
        Command::CatManifest(a) => crate::pod::cat_manifest::run(&g, a),
        Command::Logs(a) => crate::pod::logs::run(&g, a),
        Command::Export(a) => crate::pod::export::run(&g, a),
        Command::Fetch(a) => crate::fetch::run(&g, a),
        Command::Image(c) => crate::image::run(&g, c),
        Command::Config(a) => crate::config::run(&g, a),
        Command::Version => crate::version::run(),
    }
}
