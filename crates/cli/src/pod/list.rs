//! `rkt list`.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rkt_stage0::view::{PodView, view};

use crate::global::GlobalArgs;
use crate::table;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table.
    Table,
    /// JSON.
    Json,
    /// Indented JSON.
    JsonPretty,
}

/// `rkt list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Don't print the legend
    #[arg(long)]
    pub no_legend: bool,
    /// Full UUIDs and image ids, absolute times
    #[arg(long)]
    pub full: bool,
    /// Output format
    #[arg(long, default_value = "table")]
    pub format: Format,
}

/// Lists every pod, one line per app.
pub fn run(g: &GlobalArgs, a: ListArgs) -> anyhow::Result<ExitCode> {
    let pods = super::pods(g)?;
    let mut views: Vec<PodView> = pods.list()?.iter().map(view).collect();
    views.sort_by(|x, y| x.created.cmp(&y.created).then(x.uuid.cmp(&y.uuid)));
    match a.format {
        Format::Json | Format::JsonPretty => {
            let s = if a.format == Format::Json {
                serde_json::to_string(&views)?
            } else {
                serde_json::to_string_pretty(&views)?
            };
            println!("{s}");
        }
        Format::Table => {
            let mut rows = Vec::new();
            for v in &views {
                let uuid = if a.full {
                    v.uuid.clone()
                } else {
                    v.uuid.chars().take(8).collect()
                };
                let time = |t: Option<std::time::SystemTime>| {
                    t.map(|t| table::time(t, a.full)).unwrap_or_default()
                };
                let base = |app: &str, image: &str, id: &str| {
                    vec![
                        uuid.clone(),
                        v.name.clone().unwrap_or_default(),
                        app.to_owned(),
                        image.to_owned(),
                        id.to_owned(),
                        v.state.clone(),
                        time(v.created),
                        time(v.started),
                        v.networks.join(","),
                    ]
                };
                if v.apps.is_empty() {
                    rows.push(base("", "", ""));
                }
                for app in &v.apps {
                    let id = if a.full {
                        app.image_id.clone()
                    } else {
                        short_id(&app.image_id)
                    };
                    rows.push(base(&app.name, &app.image_name, &id));
                }
            }
            table::print(
                &[
                    "UUID",
                    "NAME",
                    "APP",
                    "IMAGE NAME",
                    "IMAGE ID",
                    "STATE",
                    "CREATED",
                    "STARTED",
                    "NETWORKS",
                ],
                &rows,
                a.no_legend,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn short_id(id: &str) -> String {
    match id.parse::<rkt_types::Digest>() {
        Ok(d) => d.short(),
        Err(_) => id.to_owned(),
    }
}
