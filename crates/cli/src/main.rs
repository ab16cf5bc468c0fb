//! `rkt`: a daemonless, pod-native container engine.
#![forbid(unsafe_code)]

mod cli;
mod config;
mod fetch;
mod global;
mod image;
mod pod;
mod pod_args;
mod run;
mod table;
mod version;

use std::process::ExitCode;

use clap::Parser as _;

/// The exit status of every rkt error, as rkt had it (apps' own codes are passed through).
const EXIT_ERROR: u8 = 254;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        // Usage errors exit like every other rkt error (254); help output exits 0.
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    global::init_logging(cli.global.debug);
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Prints an error and its causes once each, as one readable block.
fn print_error(e: &anyhow::Error) {
    let mut chain = e.chain();
    if let Some(top) = chain.next() {
        eprintln!("rkt: {top}");
    }
    for cause in chain {
        eprintln!("  caused by: {cause}");
    }
}
