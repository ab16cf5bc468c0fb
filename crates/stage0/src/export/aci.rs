//! The ACI side of `rkt export`: the app's root filesystem flattened into one tree, with the
//! image's manifest under a new name.

use std::path::{Path, PathBuf};

use rkt_image::aci::appc_arch;
use rkt_image::export::write_aci;
use rkt_image::{RenderOptions, render};
use rkt_store::{ImageName, Store};
use rkt_types::appc::{AC_VERSION, App, ImageManifest, MountPoint, NameValue, Port};
use rkt_types::name::validate_ac_identifier;
use rkt_types::{ImageFormat, ImageRecord};

use super::{ExportError, Output, finish};

/// The manifest of the exported ACI: an appc image's own manifest, or one made from an
/// OCI/Docker image's config, named `NAME-export` with the tag as its `version` label.
pub(super) fn manifest(
    store: &Store,
    image: &ImageRecord,
    base: &ImageName,
) -> Result<ImageManifest, ExportError> {
    let name = format!("{}-export", identifier_part(&base.name));
    validate_ac_identifier(&name).map_err(|e| ExportError::Refused(e.to_string()))?;
    let mut m = match image.format {
        ImageFormat::Appc => {
            let path = store.blob_path(&image.manifest);
            let bytes = std::fs::read(&path).map_err(ExportError::io("read", &path))?;
            ImageManifest::parse(&bytes).map_err(|e| ExportError::Document {
                what: format!("the stored ACI manifest of image {}", image.id),
                source: Box::new(e),
            })?
        }
        ImageFormat::Oci | ImageFormat::Docker => from_config(image),
    };
    m.name = name;
    m.labels.retain(|l| l.name != "version");
    m.labels.insert(
        0,
        NameValue {
            name: "version".into(),
            value: base.tag.clone(),
        },
    );
    Ok(m)
}

/// An appc manifest for an OCI/Docker image, as docker2aci mapped them (the inverse of
/// [`rkt_types::ImageConfig::from_oci`] where appc has a place for the field).
fn from_config(image: &ImageRecord) -> ImageManifest {
    let c = &image.config;
    let nv = |(k, v): (&String, &String)| NameValue {
        name: k.clone(),
        value: v.clone(),
    };
    let exec = c.exec();
    let app = (!exec.is_empty()).then(|| App {
        exec,
        // An empty user is root. An empty group stays empty: it means the user's primary
        // group, which "0" would not say for a non-root user.
        user: if c.user.is_empty() {
            "0".into()
        } else {
            c.user.clone()
        },
        group: if c.user.is_empty() && c.group.is_empty() {
            "0".into()
        } else {
            c.group.clone()
        },
        supplementary_gids: c.supplementary_gids.clone(),
        working_directory: c.working_dir.clone(),
        environment: c.env.iter().map(|(k, v)| nv((k, v))).collect(),
        mount_points: c
            .mount_points
            .iter()
            .map(|m| MountPoint {
                name: m.name.clone(),
                path: m.path.clone(),
                read_only: m.read_only,
            })
            .collect(),
        ports: c
            .ports
            .iter()
            .map(|p| Port {
                name: p.name.clone(),
                protocol: p.protocol.clone(),
                port: p.port,
                count: p.count,
                socket_activated: p.socket_activated,
            })
            .collect(),
        isolators: c.isolators.clone(),
        event_handlers: Vec::new(),
    });
    let mut labels = vec![
        NameValue {
            name: "os".into(),
            value: image.platform.os.clone(),
        },
        NameValue {
            name: "arch".into(),
            value: appc_arch(&image.platform),
        },
    ];
    // OCI label and annotation keys are free-form; appc names must be ACIdentifiers.
    let ac = |(k, _): &(&String, &String)| validate_ac_identifier(k).is_ok();
    labels.extend(
        c.labels
            .iter()
            .filter(ac)
            .filter(|(k, _)| !matches!(k.as_str(), "os" | "arch" | "version"))
            .map(nv),
    );
    ImageManifest {
        ac_kind: "ImageManifest".into(),
        ac_version: AC_VERSION.into(),
        name: String::new(),
        labels,
        app,
        dependencies: Vec::new(),
        path_whitelist: Vec::new(),
        annotations: c.annotations.iter().filter(ac).map(nv).collect(),
    }
}

/// Makes `name` (a Docker or appc image name) a valid ACIdentifier prefix: lowercase, with
/// anything else than `[a-z0-9._~/-]` turned into `-` and separators not repeated.
pub(super) fn identifier_part(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else {
            let sep = if "._~/-".contains(c) { c } else { '-' };
            if !out.is_empty() && !out.ends_with(['.', '_', '~', '/', '-']) {
                out.push(sep);
            }
        }
    }
    while out.ends_with(['.', '_', '~', '/', '-']) {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("image");
    }
    out
}

/// Flattens the image's layer trees (`trees`, base first) and `upper` (without the runtime
/// `stubs`) into a scratch directory beside the output and writes the ACI into `out`.
pub(super) fn write(
    trees: &[PathBuf],
    upper: &Path,
    stubs: &[PathBuf],
    manifest: &ImageManifest,
    out: &Output,
) -> Result<(), ExportError> {
    // The upper dir has the same overlay-style format as a layer tree.
    let mut layers: Vec<&Path> = trees.iter().map(PathBuf::as_path).collect();
    layers.push(upper);
    let scratch = tempfile::Builder::new()
        .prefix(".rkt-export-rootfs-")
        .tempdir_in(out.dir())
        .map_err(ExportError::io("create a scratch directory in", out.dir()))?;
    let report = render(&layers, scratch.path(), &RenderOptions { ownership: true })?;
    for s in &report.skipped {
        tracing::warn!("not exported: {s}");
    }
    super::stubs::remove_from(scratch.path(), stubs)
        .map_err(ExportError::io("clean up", scratch.path()))?;
    let w = write_aci(out.writer()?, manifest, scratch.path())?;
    finish(w, out.dir())
}

#[cfg(test)]
mod tests {
    use rkt_types::image::{ImageConfig, MountPointSpec};
    use rkt_types::{Digest, Platform};

    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(identifier_part("localhost/busybox"), "localhost/busybox");
        assert_eq!(identifier_part("127.0.0.1:5000/App"), "127.0.0.1-5000/app");
        assert_eq!(identifier_part("a//b__c"), "a/b_c");
        assert_eq!(identifier_part("::"), "image");
        for n in ["localhost/busybox", "127.0.0.1:5000/App", "x.y/z~w"] {
            let id = format!("{}-export", identifier_part(n));
            assert!(validate_ac_identifier(&id).is_ok(), "{id}");
        }
    }

    #[test]
    fn manifest_from_an_oci_config() {
        let image = ImageRecord {
            id: Digest::sha256_of(b"i"),
            format: ImageFormat::Oci,
            manifest: Digest::sha256_of(b"m"),
            config_blob: Digest::sha256_of(b"c"),
            platform: Platform::parse("linux/arm64").unwrap(),
            config: ImageConfig {
                entrypoint: vec!["/bin/sh".into()],
                cmd: vec!["-c".into(), "true".into()],
                env: vec![("PATH".into(), "/bin".into())],
                working_dir: "/srv".into(),
                mount_points: vec![MountPointSpec {
                    name: "volume-data".into(),
                    path: "/data".into(),
                    read_only: false,
                }],
                labels: [
                    ("maintainer".to_owned(), "x".to_owned()),
                    ("Not An ACIdentifier".to_owned(), "y".to_owned()),
                ]
                .into(),
                ..ImageConfig::default()
            },
            layers: Vec::new(),
        };
        let mut m = from_config(&image);
        m.name = "localhost/busybox-export".into();
        let app = m.app.as_ref().unwrap();
        assert_eq!(app.exec, ["/bin/sh", "-c", "true"]);
        assert_eq!((app.user.as_str(), app.group.as_str()), ("0", "0"));
        assert_eq!(app.working_directory, "/srv");
        assert_eq!(app.mount_points[0].path, "/data");
        assert_eq!(m.label("arch"), Some("aarch64"));
        assert_eq!(m.label("maintainer"), Some("x"));
        assert_eq!(m.labels.len(), 3);
        // It is a manifest our own reader accepts.
        let bytes = serde_json::to_vec(&m).unwrap();
        assert_eq!(ImageManifest::parse(&bytes).unwrap(), m);
    }
}
