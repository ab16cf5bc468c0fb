//! `docker save` archives, legacy and OCI-shaped: synthesized manifests, selection by
//! RepoTags, and hostile `manifest.json` contents.

mod formats_support;

use formats_support::*;
use rkt_image::compress::Compression;
use rkt_image::docker_archive::DockerArchive;
use rkt_image::layout::{BlobError, SourceError};
use rkt_types::oci::{
    MEDIA_DOCKER_CONFIG, MEDIA_DOCKER_LAYER, MEDIA_DOCKER_LAYER_TAR, MEDIA_DOCKER_MANIFEST,
    Manifest,
};
use rkt_types::{Digest, ImageFormat};

fn config_for(arch: &str, tars: &[&[u8]]) -> Vec<u8> {
    let ids: Vec<String> = tars
        .iter()
        .map(|t| format!("\"{}\"", Digest::sha256_of(t)))
        .collect();
    format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Entrypoint":["/bin/app"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        ids.join(",")
    )
    .into_bytes()
}

struct Legacy {
    bytes: Vec<u8>,
    base: Vec<u8>,
    top: Vec<u8>,
    other_top: Vec<u8>,
    cfg_a: Vec<u8>,
    cfg_b: Vec<u8>,
}

/// Two images sharing a base layer, as docker < 25 writes them: the second copy of the
/// shared layer is a symlink to the first, and `manifest.json` comes last.
fn legacy(extra_layers_json: Option<&str>) -> Legacy {
    let base = tar_of(&[("etc/base", b"base")]);
    let top = tar_of(&[("bin/app", b"app a")]);
    let other_top = tar_of(&[("bin/app", b"app b")]);
    let cfg_a = config_for("amd64", &[&base, &top]);
    let cfg_b = config_for("amd64", &[&base, &other_top]);
    let ha = Digest::sha256_of(&cfg_a).hex().to_owned();
    let hb = Digest::sha256_of(&cfg_b).hex().to_owned();
    let layers_a = extra_layers_json
        .map(str::to_owned)
        .unwrap_or_else(|| r#"["l1/layer.tar","l2/layer.tar"]"#.to_owned());
    let manifest = format!(
        r#"[{{"Config":"{ha}.json","RepoTags":["busybox:latest","example.com/a:v1"],"Layers":{layers_a}}},
           {{"Config":"{hb}.json","RepoTags":["other:2"],"Layers":["l3/layer.tar","l4/layer.tar"]}}]"#
    );
    let bytes = TarWriter::new()
        .dir("l1/")
        .file("l1/VERSION", b"1.0")
        .file("l1/layer.tar", &base)
        .dir("l2/")
        .file("l2/layer.tar", &top)
        .dir("l3/")
        .symlink("l3/layer.tar", "../l1/layer.tar")
        .dir("l4/")
        .file("l4/layer.tar", &other_top)
        .file(&format!("{ha}.json"), &cfg_a)
        .file(&format!("{hb}.json"), &cfg_b)
        .file("manifest.json", manifest.as_bytes())
        .file("repositories", b"{}")
        .finish();
    Legacy {
        bytes,
        base,
        top,
        other_top,
        cfg_a,
        cfg_b,
    }
}

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

#[test]
fn legacy_archive_selects_by_repo_tag_and_synthesizes_a_manifest() {
    let l = legacy(None);
    let f = file_with(&l.bytes);
    let ar = DockerArchive::open(f.path()).unwrap();
    assert_eq!(ar.images().len(), 2);
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        "example.com/a:v1",
    ] {
        let r = ar.resolve(Some(name)).unwrap();
        assert_eq!(r.config_bytes, l.cfg_a, "{name}");
    }
    let r = ar.resolve(Some("other:2")).unwrap();
    assert_eq!(r.format, ImageFormat::Docker);
    assert_eq!(r.config_bytes, l.cfg_b);
    assert_eq!(r.names, ["other:2"]);
    assert_eq!(r.manifest_digest, Digest::sha256_of(&r.manifest_bytes));
    let m: Manifest = serde_json::from_slice(&r.manifest_bytes).unwrap();
    assert_eq!(m.media_type.as_deref(), Some(MEDIA_DOCKER_MANIFEST));
    assert_eq!(m.config.media_type, MEDIA_DOCKER_CONFIG);
    assert_eq!(m.config.digest, Digest::sha256_of(&l.cfg_b));
    // Uncompressed layers: digest = diff id; the symlinked base layer resolves to l1's data.
    assert_eq!(r.layers.len(), 2);
    for (d, want) in r.layers.iter().zip([&l.base, &l.other_top]) {
        assert_eq!(d.media_type, MEDIA_DOCKER_LAYER_TAR);
        assert_eq!(d.digest, Digest::sha256_of(want));
        assert_eq!(&read_blob(&ar, d).unwrap(), want);
    }
    assert_eq!(
        r.config.rootfs.diff_ids,
        [Digest::sha256_of(&l.base), Digest::sha256_of(&l.other_top)]
    );
    assert_eq!(read_blob(&ar, &m.config).unwrap(), l.cfg_b);
    let a = ar.resolve(Some("busybox")).unwrap();
    assert_eq!(read_blob(&ar, &a.layers[1]).unwrap(), l.top);
}

#[test]
fn several_images_without_a_name_is_an_error_listing_tags() {
    let l = legacy(None);
    let f = file_with(&l.bytes);
    let ar = DockerArchive::open(f.path()).unwrap();
    let e = ar.resolve(None).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SourceError::Ambiguous { .. }));
    assert!(
        msg.contains("busybox:latest") && msg.contains("other:2"),
        "{msg}"
    );
    let e = ar.resolve(Some("missing:1")).unwrap_err();
    assert!(matches!(e, SourceError::NoSuchImage { .. }), "{e}");
}

#[test]
fn escaping_layer_paths_in_manifest_json_are_refused() {
    for bad in [
        r#"["../../etc/passwd"]"#,
        r#"["/etc/passwd"]"#,
        r#"["l1/../../x"]"#,
    ] {
        let l = legacy(Some(bad));
        let f = file_with(&l.bytes);
        let e = DockerArchive::open(f.path()).unwrap_err();
        assert!(matches!(e, SourceError::EscapingPath { .. }), "{bad}: {e}");
    }
}

#[test]
fn missing_layer_files_are_named() {
    let l = legacy(Some(r#"["l1/layer.tar","nothere/layer.tar"]"#));
    let f = file_with(&l.bytes);
    let ar = DockerArchive::open(f.path()).unwrap();
    let e = ar.resolve(Some("busybox")).unwrap_err();
    assert!(
        matches!(&e, SourceError::MissingMember { member, .. } if member == "nothere/layer.tar"),
        "{e}"
    );
}

#[test]
fn wrong_diff_id_for_an_uncompressed_layer_is_caught_early() {
    let base = tar_of(&[("a", b"a")]);
    let cfg = config_for("amd64", &[&tar_of(&[("a", b"different")])]);
    let h = Digest::sha256_of(&cfg).hex().to_owned();
    let manifest =
        format!(r#"[{{"Config":"{h}.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}}]"#);
    let bytes = TarWriter::new()
        .file("l/layer.tar", &base)
        .file(&format!("{h}.json"), &cfg)
        .file("manifest.json", manifest.as_bytes())
        .finish();
    let f = file_with(&bytes);
    let e = DockerArchive::open(f.path())
        .unwrap()
        .resolve(None)
        .unwrap_err();
    assert!(
        matches!(
            e,
            SourceError::Verify {
                source: BlobError::DigestMismatch { .. },
                ..
            }
        ),
        "{e}"
    );
}

/// Docker 25+ writes an OCI layout whose `manifest.json` points at `blobs/sha256/…`.
#[test]
fn oci_shaped_archive_with_gzip_layers() {
    let tar = tar_of(&[("hello", b"world")]);
    let layer = compress(Compression::Gzip, &tar);
    let cfg = config_for("arm64", &[&tar]);
    let (hl, hc) = (Digest::sha256_of(&layer), Digest::sha256_of(&cfg));
    let manifest = format!(
        r#"[{{"Config":"blobs/sha256/{}","RepoTags":["img:latest"],"Layers":["blobs/sha256/{}"]}}]"#,
        hc.hex(),
        hl.hex()
    );
    let bytes = TarWriter::new()
        .file(&format!("blobs/sha256/{}", hl.hex()), &layer)
        .file(&format!("blobs/sha256/{}", hc.hex()), &cfg)
        .file("index.json", &index_json(vec![]))
        .file("manifest.json", manifest.as_bytes())
        .file("oci-layout", LAYOUT_MARKER)
        .finish();
    let f = file_with(&bytes);
    let ar = DockerArchive::open(f.path()).unwrap();
    let r = ar.resolve(None).unwrap();
    assert_eq!(r.layers[0].media_type, MEDIA_DOCKER_LAYER);
    assert_eq!(r.layers[0].digest, hl);
    assert_eq!(r.platform().architecture, "arm64");
    assert_eq!(read_blob(&ar, &r.layers[0]).unwrap(), layer);

    // A blob whose content does not match its name: caught while streaming.
    let mut bad_layer = layer.clone();
    let n = bad_layer.len();
    bad_layer[n - 5] ^= 0x55;
    let bytes = TarWriter::new()
        .file(&format!("blobs/sha256/{}", hl.hex()), &bad_layer)
        .file(&format!("blobs/sha256/{}", hc.hex()), &cfg)
        .file("manifest.json", manifest.as_bytes())
        .finish();
    let f = file_with(&bytes);
    let ar = DockerArchive::open(f.path()).unwrap();
    let r = ar.resolve(None).unwrap();
    let e = read_blob(&ar, &r.layers[0]).unwrap_err();
    assert!(
        matches!(
            BlobError::from_io(&e),
            Some(BlobError::DigestMismatch { .. })
        ),
        "{e}"
    );
}

#[test]
fn compressed_docker_archive_needs_scratch() {
    let l = legacy(None);
    let f = file_with(&compress(Compression::Gzip, &l.bytes));
    assert!(matches!(
        DockerArchive::open(f.path()).unwrap_err(),
        SourceError::Compressed { .. }
    ));
    let scratch = tempfile::tempdir().unwrap();
    let ar = DockerArchive::open_with_scratch(f.path(), scratch.path()).unwrap();
    let r = ar.resolve(Some("other:2")).unwrap();
    assert_eq!(read_blob(&ar, &r.layers[1]).unwrap(), l.other_top);
}

#[test]
fn oversized_or_malformed_manifest_json() {
    let mut big = b"[".to_vec();
    big.resize(rkt_types::MAX_DOCUMENT_BYTES as usize + 2, b' ');
    big.push(b']');
    let f = file_with(&tar_of(&[("manifest.json", &big)]));
    assert!(matches!(
        DockerArchive::open(f.path()).unwrap_err(),
        SourceError::FileTooLarge { .. }
    ));
    let f = file_with(&tar_of(&[("manifest.json", b"{\"not\":\"a list\"}")]));
    assert!(matches!(
        DockerArchive::open(f.path()).unwrap_err(),
        SourceError::Json { .. }
    ));
    let f = file_with(&tar_of(&[("manifest.json", b"[]")]));
    assert!(matches!(
        DockerArchive::open(f.path()).unwrap_err(),
        SourceError::Empty(_)
    ));
    let f = file_with(&tar_of(&[("index.json", b"{}")]));
    let e = DockerArchive::open(f.path()).unwrap_err();
    assert!(e.to_string().contains("oci-archive:"), "{e}");
}
