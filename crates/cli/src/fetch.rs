//! `rkt fetch IMAGE...`: bring images into the store and print their ids.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use rkt_config::Config;
use rkt_fetch::{FetchOptions, Fetcher};
use rkt_image::unpack::UnpackOptions;
use rkt_store::Store;
use rkt_types::{ImageRecord, ImageSource, Platform, PullPolicy};

use crate::global::GlobalArgs;

/// `rkt fetch` arguments.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Images: docker://REF, oci://REF, oci:DIR[:REF], oci-archive:FILE[:REF],
    /// docker-archive:FILE[:NAME:TAG], an ACI file or http(s) URL, or a stored name or id
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    #[command(flatten)]
    pub flags: FetchFlags,
    /// Print full image ids (they always are; kept for compatibility)
    #[arg(long)]
    pub full: bool,
}

/// Fetch behaviour shared by every verb that fetches.
#[derive(Debug, Args)]
pub struct FetchFlags {
    /// When to contact the source: never (store only), new (only if missing), update (re-check,
    /// download only what changed) [default: update for fetch, new for run and prepare]
    #[arg(long, value_name = "POLICY")]
    pub pull_policy: Option<PullPolicy>,
    /// Platform to pick from a multi-platform image, as OS/ARCH[/VARIANT] [default: this host's]
    #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
    pub platform: Option<Platform>,
    /// Refuse a layer that expands to more than this (e.g. 500MiB, 64GiB)
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = parse_size)]
    pub max_layer_size: u64,
    /// Refuse a layer with more entries than this
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    pub max_layer_entries: u64,
}

impl FetchFlags {
    /// Builds a fetcher over `store` with these flags, the global flags and the configuration.
    pub fn fetcher(
        &self,
        g: &GlobalArgs,
        config: &Config,
        store: Arc<Store>,
        default_policy: PullPolicy,
    ) -> anyhow::Result<Fetcher> {
        let mut credentials: Vec<(String, rkt_fetch::registry::Credential)> = config
            .docker_credentials()
            .into_iter()
            .flat_map(|d| {
                d.registries.into_iter().map(move |r| {
                    (
                        r,
                        rkt_fetch::registry::Credential::Basic {
                            username: d.user.clone(),
                            password: d.password.clone(),
                        },
                    )
                })
            })
            .collect();
        match rkt_fetch::credentials::credentials_from_docker_config(None) {
            Ok(more) => credentials.extend(more),
            Err(e) => tracing::warn!("ignoring the docker client configuration: {e}"),
        }
        let mut cert_dirs = vec![
            g.system_config.join("certs.d"),
            g.local_config.join("certs.d"),
        ];
        if let Some(u) = &g.user_config {
            cert_dirs.push(u.join("certs.d"));
        }
        let opts = FetchOptions {
            pull_policy: self.pull_policy.unwrap_or(default_policy),
            insecure: g.insecure_options,
            platform: self.platform.clone().unwrap_or_else(Platform::host),
            unpack: UnpackOptions {
                max_bytes: self.max_layer_size,
                max_entries: self.max_layer_entries,
                ..UnpackOptions::default()
            },
            cert_dirs,
            registry_credentials: credentials,
            http_auth: config
                .auth
                .iter()
                .map(|(host, c)| (host.clone(), c.header_value()))
                .collect(),
            progress: std::io::stderr().is_terminal(),
        };
        Ok(Fetcher::new(store, opts)?)
    }
}

/// Runs `rkt fetch`.
pub fn run(g: &GlobalArgs, a: FetchArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    let fetcher = a.flags.fetcher(g, &config, store, PullPolicy::Update)?;
    let sources = a
        .images
        .iter()
        .map(|s| ImageSource::parse(s).with_context(|| format!("cannot fetch {s:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let records = runtime()?.block_on(fetch_all(&fetcher, &a.images, &sources))?;
    for r in records {
        println!("{}", r.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// Fetches several images, one after the other (each one's layers in parallel).
pub async fn fetch_all(
    fetcher: &Fetcher,
    names: &[String],
    sources: &[ImageSource],
) -> anyhow::Result<Vec<ImageRecord>> {
    let mut out = Vec::with_capacity(sources.len());
    for (name, src) in names.iter().zip(sources) {
        let rec = fetcher
            .fetch(src)
            .await
            .with_context(|| format!("cannot fetch {name}"))?;
        out.push(rec);
    }
    Ok(out)
}

/// The async runtime for network work. Nothing that forks runs on it.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::parse(s).ok_or_else(|| format!("{s:?} is not OS/ARCH[/VARIANT], e.g. linux/arm64"))
}

/// Parses `1024`, `500M`, `500MiB`, `2G`, `64GiB` (binary units; `B` optional).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 500MiB or 64GiB"))?;
    let shift = match unit.trim().trim_end_matches('B').trim_end_matches('i') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(format!("{s:?} has an unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
