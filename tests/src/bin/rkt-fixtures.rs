//! `rkt-fixtures`: builds the test fixtures and serves them from a loopback registry, for
//! scripts, demos and benchmarks.
//!
//! ```text
//! rkt-fixtures build [--large] [--print-paths]
//! rkt-fixtures list
//! rkt-fixtures layers FIXTURE
//! rkt-fixtures serve [--tls] [--auth none|basic|token] [--user U] [--password P]
//!                    --push NAME=FIXTURE ... [--ready-file F]
//! ```
//!
//! Environment: `RKT_FIXTURES_DIR` (cache directory), `RKT_FIXTURES_LARGE_MB` (size of the
//! large image's content), `RKT_FIXTURES_BUSYBOX` (the busybox binary).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rkt_tests::fixtures::chain;
use rkt_tests::{Auth, Fixtures, Registry, RegistryOptions};
use serde_json::json;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

#[derive(Parser)]
#[command(about = "Build rkt's test fixture images and serve them from a loopback registry")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or load from the cache) the fixtures.
    Build {
        /// Also build the large image and its sibling.
        #[arg(long)]
        large: bool,
        /// Print every fixture's path and digests as JSON.
        #[arg(long)]
        print_paths: bool,
    },
    /// List the fixture names `serve --push` accepts.
    List,
    /// Print the layer blob files of a single-image fixture, base first, one per line (for
    /// benchmarks that unpack the same layers with other tools).
    Layers {
        /// A fixture name from `list`.
        fixture: String,
    },
    /// Run a registry on 127.0.0.1, push fixtures to it, and stay up until SIGTERM or SIGINT.
    Serve {
        /// Serve HTTPS with a CA generated for this run (its path goes in the ready file).
        #[arg(long)]
        tls: bool,
        /// Authentication.
        #[arg(long, value_enum, default_value_t = AuthArg::None)]
        auth: AuthArg,
        /// User for basic or token auth.
        #[arg(long, default_value = rkt_tests::registry::DEFAULT_USER)]
        user: String,
        /// Password for basic or token auth.
        #[arg(long, default_value = rkt_tests::registry::DEFAULT_PASSWORD)]
        password: String,
        /// `REPO[:TAG]=FIXTURE`, e.g. `busybox=busybox` or `evil:1=adversarial/zip-bomb`.
        #[arg(long = "push", value_name = "NAME=FIXTURE")]
        push: Vec<String>,
        /// Write the registry's address and trust material here (JSON) once it is ready.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Also write an rkt configuration directory here (certs.d and auth.d for this
        /// registry), for `rkt --local-config DIR`.
        #[arg(long, value_name = "DIR")]
        rkt_config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthArg {
    None,
    Basic,
    Token,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Build { large, print_paths } => build(large, print_paths),
        Cmd::List => {
            for n in Fixtures::names() {
                println!("{n}");
            }
            Ok(())
        }
        Cmd::Layers { fixture } => layers(&fixture),
        Cmd::Serve {
            tls,
            auth,
            user,
            password,
            push,
            ready_file,
            rkt_config,
        } => serve(
            RegistryOptions {
                tls,
                auth: match auth {
                    AuthArg::None => Auth::None,
                    AuthArg::Basic => Auth::Basic,
                    AuthArg::Token => Auth::Token,
                },
                username: user,
                password,
            },
            &push,
            ready_file,
            rkt_config,
        ),
    }
}

fn fixtures() -> Result<Fixtures> {
    Fixtures::build_in(&Fixtures::cache_root()).map_err(|e| anyhow::anyhow!(chain(&e)))
}

fn layers(fixture: &str) -> Result<()> {
    let fx = fixtures()?;
    let p = fx
        .pushable(fixture)
        .map_err(|e| anyhow::anyhow!(chain(&e)))?;
    let blob = |hex: &str| p.layout.join("blobs/sha256").join(hex);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(p.digest.hex()))?)?;
    let Some(layers) = manifest["layers"].as_array() else {
        bail!("{fixture} is an index, not a single image; pick one of its images");
    };
    for l in layers {
        let d = l["digest"].as_str().unwrap_or_default();
        let hex = d.strip_prefix("sha256:").unwrap_or(d);
        println!("{}", blob(hex).display());
    }
    Ok(())
}

fn build(large: bool, print_paths: bool) -> Result<()> {
    let fx = fixtures()?;
    let large = if large {
        Some(fx.large().clone())
    } else {
        None
    };
    if print_paths {
        let out = json!({"cache_root": fx.cache_root, "small": fx, "large": large});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("fixtures in {}", fx.dir.display());
        println!("  busybox OCI layout: {}", fx.busybox.path.display());
        println!("  manifest {}", fx.busybox.image.manifest.digest);
        println!("  image id {}", fx.busybox.image.config.digest);
        if let Some(l) = &large {
            println!("large image: {}", l.large.path.display());
        }
    }
    Ok(())
}

fn serve(
    opts: RegistryOptions,
    push: &[String],
    ready_file: Option<PathBuf>,
    rkt_config: Option<PathBuf>,
) -> Result<()> {
    // Registered before anything is announced, so a caller that signals as soon as the ready
    // file appears is not lost.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).context("cannot handle signals")?;
    let mut wanted = Vec::new();
    for p in push {
        let Some((name, fixture)) = p.split_once('=') else {
            bail!("--push {p:?}: expected NAME=FIXTURE, e.g. busybox=busybox");
        };
        wanted.push((name.to_owned(), fixture.to_owned()));
    }
    let fx = fixtures()?;
    for (_, fixture) in &wanted {
        fx.pushable(fixture)
            .map_err(|e| anyhow::anyhow!(chain(&e)))?;
    }
    let reg = Registry::try_start(opts).map_err(|e| anyhow::anyhow!(chain(&e)))?;
    let mut pushed = Vec::new();
    for (name, fixture) in &wanted {
        let name = if name.contains(':') {
            name.clone()
        } else {
            format!("{name}:latest")
        };
        let p = reg
            .try_push_from(&fx, &name, fixture)
            .map_err(|e| anyhow::anyhow!("pushing {fixture} as {name}: {e}"))?;
        pushed.push(json!({
            "name": name,
            "fixture": fixture,
            "reference": reg.reference(&name),
            "digest": p.digest,
            "media_type": p.media_type,
        }));
    }
    if let Some(d) = &rkt_config {
        reg.write_rkt_config(d)
            .with_context(|| format!("cannot write the rkt configuration in {}", d.display()))?;
    }
    let info = json!({
        "addr": reg.host(),
        "url": reg.url(),
        "tls": reg.options().tls,
        "ca": reg.ca_pem(),
        "cert_dir": reg.cert_dir(),
        "auth": match reg.options().auth {
            Auth::None => "none",
            Auth::Basic => "basic",
            Auth::Token => "token",
        },
        "rkt_config": rkt_config,
        "username": reg.credentials().map(|c| c.0),
        "password": reg.credentials().map(|c| c.1),
        "token_realm": reg.token_realm(),
        "registry_pid": reg.pid(),
        "pid": std::process::id(),
        "pushed": pushed,
    });
    let text = serde_json::to_string_pretty(&info)?;
    if let Some(f) = &ready_file {
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, f))
            .with_context(|| format!("cannot write the ready file {}", f.display()))?;
    }
    println!("{text}");
    eprintln!(
        "rkt-fixtures: serving on {}; stop with SIGTERM or Ctrl-C",
        reg.url()
    );
    let sig = signals.forever().next();
    eprintln!("rkt-fixtures: got signal {sig:?}, stopping the registry");
    drop(reg);
    if let Some(f) = &ready_file {
        let _ = std::fs::remove_file(f);
    }
    Ok(())
}
