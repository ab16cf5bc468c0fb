//! The verbs on pods: list, status, enter, stop, rm, gc, cat-manifest, logs, export.

pub mod cat_manifest;
pub mod enter;
pub mod export;
pub mod gc;
pub mod list;
pub mod logs;
pub mod rm;
pub mod status;
pub mod stop;

use rkt_pod::Pods;
use rkt_stage0::exec::stage1_binary;
use rkt_stage0::spec::Stage1Location;

use crate::global::GlobalArgs;

/// The pods directory of the data dir.
pub fn pods(g: &GlobalArgs) -> anyhow::Result<Pods> {
    let config = g.config()?;
    Ok(Pods::open(&g.data_dir(&config))?)
}

/// The stage1 binary for entrypoints on existing pods.
pub fn stage1() -> anyhow::Result<std::path::PathBuf> {
    Ok(stage1_binary(&Stage1Location::default())?)
}

/// Reads `--uuid-file` or takes the positional pods.
pub fn targets(
    pods: &[String],
    uuid_file: Option<&std::path::Path>,
) -> anyhow::Result<Vec<String>> {
    let mut v = pods.to_vec();
    if let Some(f) = uuid_file {
        let s = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read --uuid-file {}: {e}", f.display()))?;
        v.push(s.trim().to_owned());
    }
    if v.is_empty() {
        anyhow::bail!("name a pod (UUID, unique UUID prefix or pod name) or pass --uuid-file");
    }
    Ok(v)
}
