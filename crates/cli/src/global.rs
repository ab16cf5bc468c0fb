//! Flags valid on every verb, and what they turn into: the store, the configuration.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use rkt_config::{Config, ConfigDirs};
use rkt_store::Store;
use rkt_types::InsecureOptions;

/// Global options, as rkt had them.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Data directory (store and pods) [default: paths.d "data", else /var/lib/rkt]
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Vendor configuration directory (read-only)
    #[arg(long, global = true, default_value = rkt_config::DEFAULT_SYSTEM_CONFIG)]
    pub system_config: PathBuf,
    /// Administrator configuration directory
    #[arg(long, global = true, default_value = rkt_config::DEFAULT_LOCAL_CONFIG)]
    pub local_config: PathBuf,
    /// User configuration directory
    #[arg(long, global = true)]
    pub user_config: Option<PathBuf>,
    /// Security checks to switch off: comma list of none, image, tls, http, pubkey,
    /// capabilities, paths, seccomp, all-fetch, all-run, all
    #[arg(long, global = true, default_value = "none", value_name = "OPTS")]
    pub insecure_options: InsecureOptions,
    /// Trust keys found by discovery over HTTPS automatically
    #[arg(long, global = true)]
    pub trust_keys_from_https: bool,
    /// Print debugging output to stderr
    #[arg(long, global = true)]
    pub debug: bool,
}

impl GlobalArgs {
    /// The configuration directories.
    pub fn config_dirs(&self) -> ConfigDirs {
        ConfigDirs {
            system: self.system_config.clone(),
            local: self.local_config.clone(),
            user: self.user_config.clone(),
        }
    }

    /// The merged configuration.
    pub fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config_dirs())?)
    }

    /// The data directory: `--dir`, else the configured one, else the default.
    pub fn data_dir(&self, config: &Config) -> PathBuf {
        self.dir
            .clone()
            .or_else(|| config.paths.data.clone().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(rkt_config::DEFAULT_DATA_DIR))
    }

    /// Opens the image store under the data directory.
    pub fn store(&self, config: &Config) -> anyhow::Result<Arc<Store>> {
        let dir = self.data_dir(config).join("store");
        let store = Store::open(&dir)
            .with_context(|| format!("cannot open the image store in {}", dir.display()))?;
        Ok(Arc::new(store))
    }
}

/// Sets up `tracing`: warnings by default, everything with `--debug`, `RUST_LOG` wins.
pub fn init_logging(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if debug { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs and test harnesses read plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(debug)
        .without_time()
        .init();
}
