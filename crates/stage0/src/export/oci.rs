//! The OCI side of `rkt export`: the image's manifest and config with one more layer.
//!
//! The stored documents are edited as JSON values, so every field we do not know (labels,
//! annotations, history, vendor extensions) passes through unchanged.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use rkt_image::export::upper::{LayerDigests, write_upper_layer_gzip};
use rkt_image::export::write_oci_archive;
use rkt_store::Store;
use rkt_types::oci::{
    Descriptor, ImageConfigDoc, MEDIA_DOCKER_CONFIG, MEDIA_DOCKER_LAYER, MEDIA_OCI_LAYER_GZIP,
    ManifestDoc,
};
use rkt_types::{Digest, ImageRecord};
use serde_json::{Value, json};

use super::{ExportError, Output, finish};

/// The new image's documents.
#[derive(Debug)]
pub(super) struct NewImage {
    /// The manifest (compact JSON).
    pub manifest: Vec<u8>,
    /// The config (compact JSON).
    pub config: Vec<u8>,
    /// The new layer's descriptor.
    pub layer: Descriptor,
}

/// Appends `layer` to the image described by `manifest` and `config`: its diff id goes at the
/// end of `rootfs.diff_ids`, a history entry (`created_by` = `note`) is added when the image
/// keeps a history, `created` becomes `created`, and the manifest names the new config and
/// lists the new layer last, with the media type of the manifest's own family (Docker schema2
/// or OCI).
pub(super) fn append_layer(
    manifest: &[u8],
    config: &[u8],
    layer: &LayerDigests,
    note: &str,
    created: &str,
) -> Result<NewImage, ExportError> {
    let damaged = |what: &str| {
        let what = format!("the stored image {what}");
        move |e: serde_json::Error| ExportError::Document {
            what,
            source: Box::new(e),
        }
    };
    let mut m: Value = serde_json::from_slice(manifest).map_err(damaged("manifest"))?;
    let mut c: Value = serde_json::from_slice(config).map_err(damaged("config"))?;
    let shape = |what: &str| ExportError::Document {
        what: format!("the stored image {what}"),
        source: "it does not have the expected fields".into(),
    };

    let diff_ids = c
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| shape("config"))?;
    diff_ids.push(Value::String(layer.diff_id.to_string()));
    if let Some(history) = c.get_mut("history").and_then(Value::as_array_mut) {
        history.push(json!({
            "created": created,
            "created_by": note,
            "comment": "the app's changes to its root filesystem",
        }));
    }
    if let Some(obj) = c.as_object_mut() {
        obj.insert("created".into(), Value::String(created.to_owned()));
    }
    let config = serde_json::to_vec(&c).map_err(damaged("config"))?;

    let config_media = m
        .pointer("/config/mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| shape("manifest"))?
        .to_owned();
    let layer_media = if config_media == MEDIA_DOCKER_CONFIG {
        MEDIA_DOCKER_LAYER
    } else {
        MEDIA_OCI_LAYER_GZIP
    };
    let cfg = m.get_mut("config").ok_or_else(|| shape("manifest"))?;
    cfg["digest"] = Value::String(Digest::sha256_of(&config).to_string());
    cfg["size"] = json!(config.len());
    let layers = m
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| shape("manifest"))?;
    layers.push(json!({
        "mediaType": layer_media,
        "digest": layer.digest.to_string(),
        "size": layer.size,
    }));
    let manifest = serde_json::to_vec(&m).map_err(damaged("manifest"))?;

    // What we wrote must read back as a valid image; a stored document of an unexpected shape
    // is caught here rather than by whoever fetches the archive.
    ManifestDoc::parse(&manifest, None).map_err(|e| ExportError::Document {
        what: "the new image manifest".into(),
        source: Box::new(e),
    })?;
    ImageConfigDoc::parse(&config).map_err(|e| ExportError::Document {
        what: "the new image config".into(),
        source: Box::new(e),
    })?;
    Ok(NewImage {
        manifest,
        config,
        layer: Descriptor {
            media_type: layer_media.to_owned(),
            digest: layer.digest.clone(),
            size: layer.size,
            urls: None,
            annotations: Default::default(),
            platform: None,
        },
    })
}

/// Writes the OCI archive of `image` plus the layer made from `upper` (without `skip`) into
/// `out`; returns the new image's id (its config digest).
pub(super) fn write(
    store: &Store,
    image: &ImageRecord,
    upper: &Path,
    skip: &[PathBuf],
    note: &str,
    ref_name: &str,
    out: &Output,
) -> Result<Digest, ExportError> {
    // The new layer goes to an unnamed scratch file first: the archive needs its digest in the
    // manifest, which is written before the layers.
    let scratch = tempfile::tempfile_in(out.dir())
        .map_err(ExportError::io("create a scratch file in", out.dir()))?;
    let w = std::io::BufWriter::with_capacity(1 << 20, scratch);
    let (w, digests) = write_upper_layer_gzip(w, upper, skip)?;
    let mut layer_file = w
        .into_inner()
        .map_err(|e| ExportError::io("write", out.dir())(e.into_error()))?;
    layer_file
        .rewind()
        .map_err(ExportError::io("read back", out.dir()))?;

    let manifest = std::fs::read(store.blob_path(&image.manifest))
        .map_err(ExportError::io("read", &store.blob_path(&image.manifest)))?;
    let config = std::fs::read(store.blob_path(&image.config_blob)).map_err(ExportError::io(
        "read",
        &store.blob_path(&image.config_blob),
    ))?;
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let new = append_layer(&manifest, &config, &digests, note, &created)?;

    let mut blobs: Vec<(Descriptor, Box<dyn Read>)> = Vec::with_capacity(image.layers.len() + 1);
    for l in &image.layers {
        let desc = Descriptor {
            media_type: l.media_type.clone(),
            digest: l.blob.clone(),
            size: l.size,
            urls: None,
            annotations: Default::default(),
            platform: None,
        };
        blobs.push((desc, Box::new(store.open_blob(&l.blob)?)));
    }
    blobs.push((new.layer.clone(), Box::new(layer_file)));
    let w = write_oci_archive(
        out.writer()?,
        &new.manifest,
        &new.config,
        blobs,
        Some(ref_name),
    )?;
    finish(w, out.dir())?;
    Ok(Digest::sha256_of(&new.config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests() -> LayerDigests {
        LayerDigests {
            diff_id: Digest::sha256_of(b"tar"),
            digest: Digest::sha256_of(b"tar.gz"),
            size: 6,
        }
    }

    fn config(history: bool) -> Vec<u8> {
        let mut c = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["/bin/sh"], "Labels": {"a": "b"}},
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(b"base").to_string()]},
            "x-vendor": 1,
        });
        if history {
            c["history"] = json!([{"created_by": "base"}]);
        }
        serde_json::to_vec(&c).unwrap()
    }

    fn manifest(config: &[u8], docker: bool) -> Vec<u8> {
        let (mt, cmt, lmt) = if docker {
            (
                rkt_types::oci::MEDIA_DOCKER_MANIFEST,
                MEDIA_DOCKER_CONFIG,
                MEDIA_DOCKER_LAYER,
            )
        } else {
            (
                rkt_types::oci::MEDIA_OCI_MANIFEST,
                rkt_types::oci::MEDIA_OCI_CONFIG,
                MEDIA_OCI_LAYER_GZIP,
            )
        };
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": cmt, "digest": Digest::sha256_of(config).to_string(),
                       "size": config.len()},
            "layers": [{"mediaType": lmt, "digest": Digest::sha256_of(b"base.gz").to_string(),
                        "size": 7}],
            "annotations": {"org.example": "kept"},
        }))
        .unwrap()
    }

    #[test]
    fn appends_the_layer_keeping_everything_else() {
        let c = config(true);
        let m = manifest(&c, false);
        let new = append_layer(&m, &c, &digests(), "rkt export", "2026-01-01T00:00:00Z").unwrap();
        let c2: Value = serde_json::from_slice(&new.config).unwrap();
        assert_eq!(
            c2["rootfs"]["diff_ids"],
            json!([
                Digest::sha256_of(b"base").to_string(),
                Digest::sha256_of(b"tar").to_string()
            ])
        );
        assert_eq!(c2["history"][1]["created_by"], "rkt export");
        assert_eq!(c2["created"], "2026-01-01T00:00:00Z");
        assert_eq!(c2["x-vendor"], 1);
        assert_eq!(c2["config"]["Labels"]["a"], "b");
        let m2: Value = serde_json::from_slice(&new.manifest).unwrap();
        assert_eq!(
            m2["config"]["digest"],
            Digest::sha256_of(&new.config).to_string()
        );
        assert_eq!(m2["config"]["size"], new.config.len());
        assert_eq!(m2["layers"].as_array().unwrap().len(), 2);
        assert_eq!(m2["layers"][1]["mediaType"], MEDIA_OCI_LAYER_GZIP);
        assert_eq!(m2["layers"][1]["digest"], digests().digest.to_string());
        assert_eq!(m2["annotations"]["org.example"], "kept");
        assert_eq!(new.layer.digest, digests().digest);
    }

    #[test]
    fn docker_images_get_a_docker_layer_and_no_invented_history() {
        let c = config(false);
        let m = manifest(&c, true);
        let new = append_layer(&m, &c, &digests(), "rkt export", "2026-01-01T00:00:00Z").unwrap();
        let c2: Value = serde_json::from_slice(&new.config).unwrap();
        // No history to extend: adding one entry would not match the layers.
        assert!(c2.get("history").is_none());
        let m2: Value = serde_json::from_slice(&new.manifest).unwrap();
        assert_eq!(m2["layers"][1]["mediaType"], MEDIA_DOCKER_LAYER);
        assert_eq!(new.layer.media_type, MEDIA_DOCKER_LAYER);
    }

    #[test]
    fn refuses_documents_without_the_fields_it_extends() {
        let c = br#"{"architecture":"amd64","os":"linux"}"#;
        let m = manifest(c, false);
        let e = append_layer(&m, c, &digests(), "n", "t").unwrap_err();
        assert!(e.to_string().contains("config"), "{e}");
        assert!(append_layer(b"not json", &config(true), &digests(), "n", "t").is_err());
    }
}
