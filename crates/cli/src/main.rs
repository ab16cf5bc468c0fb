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
    quiet_on_broken_pipe();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(e) => {
            print_error(&e);
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// How a program that a closed pipe stopped exits in a shell: 128 + SIGPIPE.
const EXIT_BROKEN_PIPE: u8 = 128 + 13;

/// A reader that went away early (`rkt list | head`) is not an error to report: rkt stops
/// quietly, as a program killed by SIGPIPE does. Rust ignores SIGPIPE (restoring it needs
/// `unsafe`), so the closed pipe reaches `println!` as EPIPE and `println!` panics; this hook
/// turns that one panic into a quiet exit and leaves every other panic alone.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // EPIPE is 32 on every Linux architecture.
        if msg.starts_with("failed printing to std") && msg.contains("(os error 32)") {
            std::process::exit(EXIT_BROKEN_PIPE.into());
        }
        default(info);
    }));
}

/// Whether `e` comes from writing to a pipe nobody reads any more.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
