//! `rkt run --pod-manifest FILE` / `rkt prepare --pod-manifest FILE`: a complete appc
//! PodManifest instead of images and flags.
//!
//! The manifest is turned into the same inputs the command line produces — a [`PodSpec`] and
//! one [`AppInput`] per app — so it goes through the one [`crate::build`] path:
//! - each app's image must already be in the store, named by `image.id` (or, without an id,
//!   by `image.name` and its `version` label); nothing is fetched;
//! - an app's `app` section overrides the image's run settings field by field (exec, user,
//!   group, supplementary GIDs, working directory, environment, mount points, ports,
//!   isolators); a field the section leaves empty keeps the image's value;
//! - `readOnlyRootFS`, `mounts` and `annotations` of each app, and the pod's `volumes` and
//!   `annotations`, become the matching `--readonly-rootfs`, `--mount`, `--annotation` and
//!   `--volume` settings.
//!
//! The `pod` file written is the given manifest, with only what rkt fills in changed: image
//! ids resolved to full ids, missing image names added, and empty `app` fields (or a missing
//! `app` section) completed with what the app runs.

use std::path::PathBuf;

use rkt_pod::{Pods, PreparingPod};
use rkt_stage1::abi::{RunRequest, Volume, VolumeKind};
use rkt_store::{Store, StoreError};
use rkt_types::ImageRecord;
use rkt_types::appc::{App, NameValue};
use rkt_types::image::{MountPointSpec, PortSpec};
use rkt_types::pod_manifest::{PodApp, PodManifest, PodVolume};

use crate::Stage0Error;
use crate::prepare::{AppInput, MANIFEST_FILE, prepare};
use crate::spec::{AppSpec, PodSpec};
use crate::volumes::MountSpec;

/// Prepares a pod from `manifest`. `base` carries the pod settings that still apply with a
/// pod manifest (name, hostname, network, interactive, insecure options, debug); its volumes,
/// mounts and annotations must be empty. Returns what [`prepare`] returns.
pub fn prepare_from_manifest(
    pods: &Pods,
    store: &Store,
    base: &PodSpec,
    manifest: &PodManifest,
) -> Result<(PreparingPod, RunRequest), Stage0Error> {
    let (spec, apps) = inputs(store, base, manifest)?;
    let resolved: Vec<(String, String)> = apps
        .iter()
        .map(|a| (a.image.id.to_string(), a.image_name.clone()))
        .collect();
    let (pod, req) = prepare(pods, store, &spec, apps)?;
    // Replace the manifest built from the inputs by the given one, completed.
    let written = (|| {
        let path = pod.dir().join(MANIFEST_FILE);
        let built_bytes = std::fs::read(&path).map_err(|source| Stage0Error::Io {
            op: "read",
            path: path.display().to_string(),
            source,
        })?;
        let built = PodManifest::parse(&built_bytes)
            .map_err(|e| Stage0Error::Usage(format!("the built pod manifest is invalid: {e}")))?;
        let out = completed(manifest, &built, &resolved);
        let mut bytes = serde_json::to_vec_pretty(&out)
            .map_err(|e| Stage0Error::Usage(format!("cannot serialise the pod manifest: {e}")))?;
        bytes.push(b'\n');
        pod.write_file(MANIFEST_FILE, &bytes)?;
        Ok::<_, Stage0Error>(())
    })();
    match written {
        Ok(()) => Ok((pod, req)),
        Err(e) => {
            let uuid = pod.uuid();
            if let Err(d) = pod.discard() {
                tracing::warn!("cannot discard the half-prepared pod {uuid}: {d}");
            }
            Err(e)
        }
    }
}

/// The pod and app inputs a manifest stands for, with images from `store`.
pub fn inputs(
    store: &Store,
    base: &PodSpec,
    manifest: &PodManifest,
) -> Result<(PodSpec, Vec<AppInput>), Stage0Error> {
    let names = image_names(store)?;
    to_inputs(manifest, base, &names, |a| find_image(store, a))
}

/// [`inputs`] with the image lookup given: `find` returns an app's image, `names` the display
/// name of stored images by id.
fn to_inputs(
    manifest: &PodManifest,
    base: &PodSpec,
    names: &[(rkt_types::Digest, String)],
    mut find: impl FnMut(&PodApp) -> Result<ImageRecord, Stage0Error>,
) -> Result<(PodSpec, Vec<AppInput>), Stage0Error> {
    if manifest.apps.is_empty() {
        return Err(Stage0Error::Usage(
            "the pod manifest has no apps; list at least one under \"apps\"".into(),
        ));
    }
    let mut spec = base.clone();
    spec.volumes = manifest
        .volumes
        .iter()
        .map(volume)
        .collect::<Result<_, _>>()?;
    spec.annotations = pairs(&manifest.annotations);
    let mut apps = Vec::with_capacity(manifest.apps.len());
    for a in &manifest.apps {
        if let Some(m) = a
            .mounts
            .iter()
            .find(|m| !manifest.volumes.iter().any(|v| v.name == m.volume))
        {
            return Err(Stage0Error::Usage(format!(
                "app {} of the pod manifest mounts volume {:?}, which the manifest's \
                 \"volumes\" do not define",
                a.name, m.volume
            )));
        }
        let mut image = find(a)?;
        if let Some(app) = &a.app {
            override_config(&mut image, app);
        }
        let image_name = if a.image.name.is_empty() {
            names
                .iter()
                .find(|(id, _)| *id == image.id)
                .map(|(_, n)| n.clone())
                .unwrap_or_else(|| image.id.to_string())
        } else {
            a.image.name.clone()
        };
        apps.push(AppInput {
            spec: AppSpec {
                image: image.id.to_string(),
                name: Some(a.name.clone()),
                readonly_rootfs: Some(a.read_only_root_fs),
                mounts: a
                    .mounts
                    .iter()
                    .map(|m| MountSpec {
                        volume: m.volume.clone(),
                        target: m.path.clone(),
                    })
                    .collect(),
                annotations: pairs(&a.annotations),
                ..AppSpec::default()
            },
            image,
            image_name,
        });
    }
    Ok((spec, apps))
}

/// Each image's first `name:tag`, by id.
fn image_names(store: &Store) -> Result<Vec<(rkt_types::Digest, String)>, Stage0Error> {
    Ok(store
        .list_images()?
        .into_iter()
        .filter_map(|e| e.names.first().map(|n| (e.id.clone(), n.to_string())))
        .collect())
}

/// The app's image, from the store only.
fn find_image(store: &Store, a: &PodApp) -> Result<ImageRecord, Stage0Error> {
    let query = if !a.image.id.is_empty() {
        a.image.id.clone()
    } else if !a.image.name.is_empty() {
        match a.image.labels.iter().find(|l| l.name == "version") {
            Some(v) => format!("{}:{}", a.image.name, v.value),
            None => a.image.name.clone(),
        }
    } else {
        return Err(Stage0Error::Usage(format!(
            "app {} of the pod manifest names no image: give image.id (or image.name)",
            a.name
        )));
    };
    match store.resolve(&query) {
        Ok(rec) => Ok(rec),
        Err(StoreError::NotFound { .. }) => Err(Stage0Error::Usage(format!(
            "image {query} of app {} is not in the store; a pod manifest runs stored images \
             only: fetch it first (`rkt fetch IMAGE`), then name it in the manifest by the id \
             that prints or by its name",
            a.name
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Applies the non-empty fields of a pod manifest's `app` section to the image's settings.
fn override_config(image: &mut ImageRecord, app: &App) {
    let c = &mut image.config;
    if !app.exec.is_empty() {
        c.entrypoint = app.exec.clone();
        c.cmd = Vec::new();
    }
    if !app.user.is_empty() {
        c.user = app.user.clone();
    }
    if !app.group.is_empty() {
        c.group = app.group.clone();
    }
    if !app.supplementary_gids.is_empty() {
        c.supplementary_gids = app.supplementary_gids.clone();
    }
    if !app.working_directory.is_empty() {
        c.working_dir = app.working_directory.clone();
    }
    if !app.environment.is_empty() {
        c.env = pairs(&app.environment);
    }
    if !app.mount_points.is_empty() {
        c.mount_points = app
            .mount_points
            .iter()
            .map(|m| MountPointSpec {
                name: m.name.clone(),
                path: m.path.clone(),
                read_only: m.read_only,
            })
            .collect();
    }
    if !app.ports.is_empty() {
        c.ports = app
            .ports
            .iter()
            .map(|p| PortSpec {
                name: p.name.clone(),
                protocol: p.protocol.clone(),
                port: p.port,
                count: p.count,
                socket_activated: p.socket_activated,
            })
            .collect();
    }
    if !app.isolators.is_empty() {
        c.isolators = app.isolators.clone();
    }
}

/// A pod manifest volume as a `--volume` would give it (same defaults: read-write,
/// recursive; empty volumes 0755 root-owned).
fn volume(v: &PodVolume) -> Result<Volume, Stage0Error> {
    let kind = match v.kind.as_str() {
        "host" => VolumeKind::Host {
            source: PathBuf::from(v.source.clone().unwrap_or_default()),
            read_only: v.read_only.unwrap_or(false),
            recursive: v.recursive.unwrap_or(true),
        },
        "empty" => VolumeKind::Empty {
            mode: match &v.mode {
                None => 0o755,
                Some(m) => u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        Stage0Error::Usage(format!(
                            "volume {}: mode {m:?} is not an octal mode such as \"0755\"",
                            v.name
                        ))
                    })?,
            },
            uid: v.uid.unwrap_or(0),
            gid: v.gid.unwrap_or(0),
        },
        // PodManifest::parse accepts only these two.
        k => {
            return Err(Stage0Error::Usage(format!(
                "volume {}: kind {k:?} is not host or empty",
                v.name
            )));
        }
    };
    Ok(Volume {
        name: v.name.clone(),
        kind,
    })
}

fn pairs(nv: &[NameValue]) -> Vec<(String, String)> {
    nv.iter()
        .map(|n| (n.name.clone(), n.value.clone()))
        .collect()
}

/// The manifest to write: `given` with image ids resolved (`resolved[i]` = (id, name) of app
/// `i`), empty image names filled in, and a missing `app` section or its empty fields taken
/// from `built` (what the app runs).
fn completed(
    given: &PodManifest,
    built: &PodManifest,
    resolved: &[(String, String)],
) -> PodManifest {
    let mut out = given.clone();
    for (i, a) in out.apps.iter_mut().enumerate() {
        let (id, name) = &resolved[i];
        a.image.id = id.clone();
        if a.image.name.is_empty() {
            a.image.name = name.clone();
        }
        let Some(b) = built.apps.get(i).and_then(|b| b.app.clone()) else {
            continue;
        };
        a.app = Some(match a.app.take() {
            None => b,
            Some(mut g) => {
                if g.exec.is_empty() {
                    g.exec = b.exec;
                }
                if g.user.is_empty() {
                    g.user = b.user;
                }
                if g.group.is_empty() {
                    g.group = b.group;
                }
                if g.supplementary_gids.is_empty() {
                    g.supplementary_gids = b.supplementary_gids;
                }
                if g.working_directory.is_empty() {
                    g.working_directory = b.working_directory;
                }
                if g.environment.is_empty() {
                    g.environment = b.environment;
                }
                if g.mount_points.is_empty() {
                    g.mount_points = b.mount_points;
                }
                if g.ports.is_empty() {
                    g.ports = b.ports;
                }
                if g.isolators.is_empty() {
                    g.isolators = b.isolators;
                }
                g
            }
        });
    }
    out
}

#[cfg(test)]
mod tests;
