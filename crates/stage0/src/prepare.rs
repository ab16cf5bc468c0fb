//! Making a pod directory: resolve the apps' layer trees, build the documents, write them.

use std::collections::BTreeMap;

use rkt_pod::{Pods, PreparingPod};
use rkt_stage1::abi::{REQUEST_FILE, RunRequest};
use rkt_store::Store;
use rkt_types::{Digest, ImageRecord};

use crate::Stage0Error;
use crate::build::{ResolvedApp, build};
use crate::spec::{AppSpec, PodSpec};

/// The pod file listing, per app, the diff ids of the layer trees it uses, so that image gc
/// keeps them while the pod exists even if its image is removed.
pub const LAYERS_FILE: &str = "layers.json";
/// Where pods made before the layer list moved to the pod directory keep it (its directory
/// of its own was one more inode per pod start); still read, so image gc keeps their layers.
const OLD_LAYERS_FILE: &str = "stage0/layers.json";
/// The pod manifest, as `rkt cat-manifest` prints it.
pub const MANIFEST_FILE: &str = "pod";

/// One app to prepare: its settings, its image and the image's display name.
#[derive(Debug, Clone)]
pub struct AppInput {
    /// The command line's settings for it.
    pub spec: AppSpec,
    /// The image, already in the store.
    pub image: ImageRecord,
    /// The image's name for display (`registry/repo:tag`), or its id.
    pub image_name: String,
}

/// Creates a pod directory in `prepare/` and writes the pod manifest, the stage1 request and
/// the layer list. The pod stays locked (preparing) in the returned handle; on error it is
/// discarded and nothing of it remains.
pub fn prepare(
    pods: &Pods,
    store: &Store,
    spec: &PodSpec,
    apps: Vec<AppInput>,
) -> Result<(PreparingPod, RunRequest), Stage0Error> {
    // gc must not remove a tree between here and the moment the pod records it.
    let _fence = store.gc_fence()?;
    let mut resolved = Vec::with_capacity(apps.len());
    let mut layers: BTreeMap<String, Vec<Digest>> = BTreeMap::new();
    for (i, a) in apps.into_iter().enumerate() {
        let trees = a
            .image
            .layers
            .iter()
            .map(|l| {
                store.layer_tree(&l.diff_id).ok_or_else(|| {
                    Stage0Error::Usage(format!(
                        "layer {} of image {} is missing from the store; fetch the image again",
                        l.diff_id, a.image_name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        layers.insert(
            format!("{i}"),
            a.image.layers.iter().map(|l| l.diff_id.clone()).collect(),
        );
        resolved.push(ResolvedApp {
            spec: a.spec,
            image: a.image,
            image_name: a.image_name,
            layers: trees,
        });
    }
    let pod = pods.create(spec.name.as_deref())?;
    let uuid = pod.uuid().to_string();
    let written = build(&uuid, spec, &resolved).and_then(|(req, manifest)| {
        let json = |v: &dyn erased::Json| v.to_vec();
        pod.write_file(MANIFEST_FILE, &json(&manifest))?;
        pod.write_file(REQUEST_FILE, &json(&req))?;
        // Key the layer list by app name now that names are final.
        let by_name: BTreeMap<&str, &Vec<Digest>> = req
            .apps
            .iter()
            .zip(layers.values())
            .map(|(a, l)| (a.name.as_str(), l))
            .collect();
        pod.write_file(LAYERS_FILE, &json(&by_name))?;
        Ok(req)
    });
    match written {
        Ok(req) => Ok((pod, req)),
        Err(e) => {
            if let Err(d) = pod.discard() {
                tracing::warn!("cannot discard the half-prepared pod {uuid}: {d}");
            }
            Err(e)
        }
    }
}

/// Reads the diff ids every pod in `pods` uses, for image gc's `keep` set.
pub fn layers_in_use(pods: &Pods) -> Result<std::collections::HashSet<Digest>, Stage0Error> {
    let mut keep = std::collections::HashSet::new();
    for p in pods.list()? {
        let Some((path, bytes)) = read_layers_file(&p.dir)? else {
            continue;
        };
        let m: BTreeMap<String, Vec<Digest>> =
            serde_json::from_slice(&bytes).map_err(|e| Stage0Error::Io {
                op: "parse",
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
        keep.extend(m.into_values().flatten());
    }
    Ok(keep)
}

/// The pod's layer list, where this rkt or an older one wrote it; `None` if it has none.
fn read_layers_file(
    dir: &std::path::Path,
) -> Result<Option<(std::path::PathBuf, Vec<u8>)>, Stage0Error> {
    for rel in [LAYERS_FILE, OLD_LAYERS_FILE] {
        let path = dir.join(rel);
        match std::fs::read(&path) {
            Ok(b) => return Ok(Some((path, b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(Stage0Error::Io {
                    op: "read",
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(None)
}

/// Serialising the pod's documents without a generic parameter per call site.
mod erased {
    /// Pretty JSON bytes of a value.
    pub(super) trait Json {
        fn to_vec(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_vec(&self) -> Vec<u8> {
            let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
            v.push(b'\n');
            v
        }
    }
}
