//! `rkt image list`.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rkt_store::ImageEntry;
use serde_json::json;

use crate::global::GlobalArgs;
use crate::table;

/// A column of `rkt image list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Field {
    /// Image id.
    Id,
    /// Names (name:tag).
    Name,
    /// When it was fetched.
    Importtime,
    /// When it was last used.
    Lastused,
    /// Bytes it holds in the store.
    Size,
    /// Whether one of its names is the `latest` tag.
    Latest,
    /// oci, docker or appc.
    Format,
    /// OS/arch.
    Platform,
}

impl Field {
    fn legend(self) -> &'static str {
        match self {
            Field::Id => "ID",
            Field::Name => "NAME",
            Field::Importtime => "IMPORT TIME",
            Field::Lastused => "LAST USED",
            Field::Size => "SIZE",
            Field::Latest => "LATEST",
            Field::Format => "FORMAT",
            Field::Platform => "PLATFORM",
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Order {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table.
    Table,
    /// One JSON array.
    Json,
    /// Indented JSON.
    JsonPretty,
}

/// `rkt image list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Columns to show
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "id,name,size,importtime,lastused"
    )]
    pub fields: Vec<Field>,
    /// Columns to sort by
    #[arg(long, value_delimiter = ',', default_value = "importtime")]
    pub sort: Vec<Field>,
    /// Sort order
    #[arg(long, default_value = "asc")]
    pub order: Order,
    /// Don't print the legend
    #[arg(long)]
    pub no_legend: bool,
    /// Full ids, exact sizes and absolute times
    #[arg(long)]
    pub full: bool,
    /// Output format
    #[arg(long, default_value = "table")]
    pub format: Format,
}

/// Lists the store's images.
pub fn run(g: &GlobalArgs, a: ListArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let store = g.store(&config)?;
    let mut images = store.list_images()?;
    images.sort_by(|x, y| {
        let mut o = std::cmp::Ordering::Equal;
        for f in &a.sort {
            o = o.then_with(|| compare(x, y, *f));
        }
        o
    });
    if a.order == Order::Desc {
        images.reverse();
    }
    match a.format {
        Format::Table => {
            let legend: Vec<&str> = a.fields.iter().map(|f| f.legend()).collect();
            let rows: Vec<Vec<String>> = images
                .iter()
                .map(|i| a.fields.iter().map(|f| cell(i, *f, a.full)).collect())
                .collect();
            table::print(&legend, &rows, a.no_legend);
        }
        Format::Json | Format::JsonPretty => {
            let v: Vec<_> = images.iter().map(to_json).collect();
            let s = if a.format == Format::Json {
                serde_json::to_string(&v)?
            } else {
                serde_json::to_string_pretty(&v)?
            };
            println!("{s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(x: &ImageEntry, y: &ImageEntry, f: Field) -> std::cmp::Ordering {
    match f {
        Field::Id => x.id.cmp(&y.id),
        Field::Name => x.names.cmp(&y.names),
        Field::Importtime => x.import_time.cmp(&y.import_time),
        Field::Lastused => x.last_used.cmp(&y.last_used),
        Field::Size => x.size.cmp(&y.size),
        Field::Latest => is_latest(x).cmp(&is_latest(y)),
        Field::Format => x.format.as_str().cmp(y.format.as_str()),
        Field::Platform => x.platform.to_string().cmp(&y.platform.to_string()),
    }
}

fn is_latest(i: &ImageEntry) -> bool {
    i.names.iter().any(|n| n.tag == "latest")
}

fn names(i: &ImageEntry) -> Vec<String> {
    i.names.iter().map(|n| n.to_string()).collect()
}

fn cell(i: &ImageEntry, f: Field, full: bool) -> String {
    match f {
        Field::Id if full => i.id.to_string(),
        Field::Id => i.id.short(),
        Field::Name if i.names.is_empty() => "<none>".into(),
        Field::Name => names(i).join(","),
        Field::Importtime => table::time(i.import_time, full),
        Field::Lastused => table::time(i.last_used, full),
        Field::Size => table::size(i.size, full),
        Field::Latest => is_latest(i).to_string(),
        Field::Format => i.format.as_str().into(),
        Field::Platform => i.platform.to_string(),
    }
}

fn to_json(i: &ImageEntry) -> serde_json::Value {
    json!({
        "id": i.id.to_string(),
        "name": names(i).first().cloned().unwrap_or_default(),
        "names": names(i),
        "format": i.format.as_str(),
        "platform": i.platform.to_string(),
        "import_time": humantime::format_rfc3339_seconds(i.import_time).to_string(),
        "last_used": humantime::format_rfc3339_seconds(i.last_used).to_string(),
        "size": i.size,
        "shared_size": i.shared_size,
        "latest": is_latest(i),
    })
}
