//! Fixture builders for the formats tests: tiny images, layouts, archives and ACIs built with
//! the `tar` crate and the compression crates, including deliberately broken ones.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use rkt_image::compress::Compression;
use rkt_types::Digest;
use rkt_types::oci::{
    ANNOTATION_REF_NAME, Descriptor, DescriptorPlatform, Index, MEDIA_OCI_CONFIG, MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_MANIFEST,
};

/// A tar of regular files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Builds a tar with any entry kinds.
pub struct TarWriter(pub tar::Builder<Vec<u8>>);

impl TarWriter {
    pub fn new() -> Self {
        TarWriter(tar::Builder::new(Vec::new()))
    }
    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }
    /// A regular file whose header names a path the `tar` crate would refuse to set
    /// (`../x`, `/abs`): written into the raw header bytes.
    pub fn raw_file(mut self, path: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    pub fn dir(mut self, path: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Directory);
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_entry_type(tar::EntryType::Symlink);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

pub fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
    match c {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
        Compression::Bzip2 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Xz => {
            let mut e =
                lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1))
                    .unwrap();
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

pub fn desc(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::sha256_of(data),
        size: data.len() as u64,
        urls: None,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

/// One image's documents and blobs.
#[derive(Clone)]
pub struct Image {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    /// Layer blobs (gzip'd tars), base first.
    pub layers: Vec<Vec<u8>>,
    /// The uncompressed layer tars.
    pub tars: Vec<Vec<u8>>,
}

impl Image {
    /// An image whose layers hold the given files, for `arch`.
    pub fn new(arch: &str, layers: &[&[(&str, &[u8])]]) -> Self {
        let tars: Vec<Vec<u8>> = layers.iter().map(|l| tar_of(l)).collect();
        let blobs: Vec<Vec<u8>> = tars
            .iter()
            .map(|t| compress(Compression::Gzip, t))
            .collect();
        let diff_ids: Vec<String> = tars
            .iter()
            .map(|t| format!("\"{}\"", Digest::sha256_of(t)))
            .collect();
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            diff_ids.join(",")
        )
        .into_bytes();
        Self::assemble(config, MEDIA_OCI_CONFIG, tars, blobs, MEDIA_OCI_LAYER_GZIP)
    }

    pub fn assemble(
        config: Vec<u8>,
        config_type: &str,
        tars: Vec<Vec<u8>>,
        layers: Vec<Vec<u8>>,
        layer_type: &str,
    ) -> Self {
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": desc(config_type, &config),
            "layers": layers.iter().map(|l| desc(layer_type, l)).collect::<Vec<_>>(),
        });
        Image {
            manifest: serde_json::to_vec(&m).unwrap(),
            config,
            layers,
            tars,
        }
    }

    pub fn manifest_desc(&self) -> Descriptor {
        desc(MEDIA_OCI_MANIFEST, &self.manifest)
    }

    pub fn layer_descs(&self) -> Vec<Descriptor> {
        self.layers
            .iter()
            .map(|l| desc(MEDIA_OCI_LAYER_GZIP, l))
            .collect()
    }

    /// Every blob: config, manifest, layers.
    pub fn blobs(&self) -> Vec<Vec<u8>> {
        let mut v = vec![self.config.clone(), self.manifest.clone()];
        v.extend(self.layers.iter().cloned());
        v
    }
}

pub fn platform_desc(mut d: Descriptor, os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
    d.platform = Some(DescriptorPlatform {
        architecture: arch.into(),
        os: os.into(),
        variant: variant.map(Into::into),
        os_version: None,
    });
    d
}

pub fn named(mut d: Descriptor, name: &str) -> Descriptor {
    d.annotations
        .insert(ANNOTATION_REF_NAME.into(), name.into());
    d
}

pub fn index_json(entries: Vec<Descriptor>) -> Vec<u8> {
    serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_INDEX.into()),
        manifests: entries,
        annotations: BTreeMap::new(),
    })
    .unwrap()
}

pub const LAYOUT_MARKER: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The files of a layout: `(path, content)`.
pub fn layout_files(index: &[u8], blobs: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    let mut v = vec![
        ("oci-layout".to_owned(), LAYOUT_MARKER.to_vec()),
        ("index.json".to_owned(), index.to_vec()),
    ];
    for b in blobs {
        v.push((
            format!("blobs/sha256/{}", Digest::sha256_of(b).hex()),
            b.clone(),
        ));
    }
    v
}

pub fn write_dir(root: &Path, files: &[(String, Vec<u8>)]) {
    for (p, data) in files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

pub fn tar_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    tar_of(&refs)
}

/// Reads a blob fully through the source, with verification.
pub fn read_blob(
    src: &dyn rkt_image::layout::BlobSource,
    d: &Descriptor,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut r = src.open_blob(d).map_err(std::io::Error::other)?;
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    r.finish()?;
    Ok(v)
}
