//! OCI image layout directories: selection by name and platform, and every kind of damage.

mod formats_support;

use formats_support::*;
use rkt_image::layout::{BlobError, BlobSource, OciLayout, SourceError};
use rkt_image::platform::PlatformError;
use rkt_types::oci::{MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
use rkt_types::{Digest, ImageFormat, MAX_DOCUMENT_BYTES, Platform};

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn one_image() -> Image {
    Image::new(
        "amd64",
        &[
            &[("etc/hostname", b"base\n")],
            &[("bin/app", b"#!/bin/sh\necho hi\n")],
        ],
    )
}

fn layout_with(files: &[(String, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), files);
    dir
}

#[test]
fn resolves_the_only_image_and_streams_verified_layers() {
    let img = one_image();
    let dir = layout_with(&layout_files(
        &index_json(vec![img.manifest_desc()]),
        &img.blobs(),
    ));
    let layout = OciLayout::open(dir.path()).unwrap();
    let r = layout.resolve(None, &amd64()).unwrap();
    assert_eq!(r.format, ImageFormat::Oci);
    assert_eq!(r.manifest_bytes, img.manifest);
    assert_eq!(r.manifest_digest, Digest::sha256_of(&img.manifest));
    assert_eq!(r.config_bytes, img.config);
    assert_eq!(r.config_digest(), &Digest::sha256_of(&img.config));
    assert_eq!(r.layers, img.layer_descs());
    assert_eq!(r.platform(), amd64());
    assert_eq!(r.image_config().cmd, ["/bin/sh"]);
    assert_eq!(r.diff_id(1), Some(&Digest::sha256_of(&img.tars[1])));
    for (d, want) in r.layers.iter().zip(&img.layers) {
        assert_eq!(&read_blob(&layout, d).unwrap(), want);
    }
}

#[test]
fn selects_by_ref_name_and_lists_names_otherwise() {
    let a = one_image();
    let b = Image::new("amd64", &[&[("b", b"b")]]);
    let idx = index_json(vec![
        named(a.manifest_desc(), "app:1.0"),
        named(b.manifest_desc(), "other"),
    ]);
    let mut blobs = a.blobs();
    blobs.extend(b.blobs());
    let dir = layout_with(&layout_files(&idx, &blobs));
    let layout = OciLayout::open(dir.path()).unwrap();
    let r = layout.resolve(Some("other"), &amd64()).unwrap();
    assert_eq!(r.config_bytes, b.config);
    assert_eq!(r.names, ["other"]);
    // By digest too.
    let by_digest = a.manifest_desc().digest.to_string();
    assert_eq!(
        layout
            .resolve(Some(&by_digest), &amd64())
            .unwrap()
            .config_bytes,
        a.config
    );

    let e = layout.resolve(None, &amd64()).unwrap_err();
    assert!(
        matches!(&e, SourceError::Ambiguous { available, .. } if available == &["app:1.0", "other"]),
        "{e}"
    );
    let e = layout.resolve(Some("nope"), &amd64()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SourceError::NoSuchImage { .. }));
    assert!(msg.contains("app:1.0") && msg.contains("nope"), "{msg}");
}

/// A nested index with several platforms, plus an attestation entry.
fn multi_platform_layout() -> (tempfile::TempDir, Image, Image) {
    let amd = Image::new("amd64", &[&[("arch", b"amd64")]]);
    let arm = Image::new("arm64", &[&[("arch", b"arm64")]]);
    let mut att = platform_desc(desc(MEDIA_OCI_MANIFEST, b"{}"), "unknown", "unknown", None);
    att.annotations.insert(
        "vnd.docker.reference.type".into(),
        "attestation-manifest".into(),
    );
    let nested = index_json(vec![
        platform_desc(amd.manifest_desc(), "linux", "amd64", None),
        platform_desc(arm.manifest_desc(), "linux", "arm64", Some("v8")),
        att,
    ]);
    let top = index_json(vec![named(desc(MEDIA_OCI_INDEX, &nested), "multi")]);
    let mut blobs = amd.blobs();
    blobs.extend(arm.blobs());
    blobs.push(nested);
    (layout_with(&layout_files(&top, &blobs)), amd, arm)
}

#[test]
fn nested_index_selects_by_platform() {
    let (dir, amd, arm) = multi_platform_layout();
    let layout = OciLayout::open(dir.path()).unwrap();
    let r = layout.resolve(Some("multi"), &amd64()).unwrap();
    assert_eq!(r.config_bytes, amd.config);
    let r = layout
        .resolve(None, &Platform::parse("linux/arm64").unwrap())
        .unwrap();
    assert_eq!(r.config_bytes, arm.config);
    assert_eq!(r.names, ["multi"]);
    let e = layout
        .resolve(None, &Platform::parse("linux/s390x").unwrap())
        .unwrap_err();
    let msg = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    match e {
        SourceError::Platform {
            source: PlatformError::NoMatch { available, .. },
            ..
        } => assert_eq!(available, ["linux/amd64", "linux/arm64/v8"]),
        other => panic!("unexpected {other}"),
    }
    assert!(msg.contains("--platform"), "{msg}");
}

#[test]
fn flat_index_with_platform_entries_selects_by_platform() {
    let amd = Image::new("amd64", &[&[("arch", b"amd64")]]);
    let arm = Image::new("arm64", &[&[("arch", b"arm64")]]);
    let idx = index_json(vec![
        platform_desc(amd.manifest_desc(), "linux", "amd64", None),
        platform_desc(arm.manifest_desc(), "linux", "arm64", None),
    ]);
    let mut blobs = amd.blobs();
    blobs.extend(arm.blobs());
    let dir = layout_with(&layout_files(&idx, &blobs));
    let layout = OciLayout::open(dir.path()).unwrap();
    let r = layout
        .resolve(None, &Platform::parse("linux/arm64").unwrap())
        .unwrap();
    assert_eq!(r.config_bytes, arm.config);
}

#[test]
fn wrong_digest_is_refused() {
    let img = one_image();
    let mut files = layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs());
    // Same size, different content: the config.
    let cfg_path = format!("blobs/sha256/{}", Digest::sha256_of(&img.config).hex());
    let f = files.iter_mut().find(|(p, _)| *p == cfg_path).unwrap();
    f.1[0] = b' ';
    let dir = layout_with(&files);
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
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
    assert!(e.is_verification_failure());

    // A damaged layer only shows when it is streamed.
    let mut files = layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs());
    let layer_path = format!("blobs/sha256/{}", Digest::sha256_of(&img.layers[0]).hex());
    let f = files.iter_mut().find(|(p, _)| *p == layer_path).unwrap();
    let last = f.1.len() - 1;
    f.1[last] ^= 0xff;
    let dir = layout_with(&files);
    let layout = OciLayout::open(dir.path()).unwrap();
    let r = layout.resolve(None, &amd64()).unwrap();
    let e = read_blob(&layout, &r.layers[0]).unwrap_err();
    assert!(
        matches!(
            BlobError::from_io(&e),
            Some(BlobError::DigestMismatch { .. })
        ),
        "{e}"
    );
}

#[test]
fn blob_longer_than_its_descriptor_is_refused() {
    let img = one_image();
    let mut files = layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs());
    let layer_path = format!("blobs/sha256/{}", Digest::sha256_of(&img.layers[0]).hex());
    files
        .iter_mut()
        .find(|(p, _)| *p == layer_path)
        .unwrap()
        .1
        .extend_from_slice(b"trailing");
    let dir = layout_with(&files);
    let layout = OciLayout::open(dir.path()).unwrap();
    let r = layout.resolve(None, &amd64()).unwrap();
    let e = layout.open_blob(&r.layers[0]).unwrap_err();
    assert!(matches!(e, SourceError::BlobSize { .. }), "{e}");
}

#[test]
fn missing_blob_is_named() {
    let img = one_image();
    let mut blobs = img.blobs();
    blobs.remove(1); // the manifest
    let dir = layout_with(&layout_files(
        &index_json(vec![img.manifest_desc()]),
        &blobs,
    ));
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    match &e {
        SourceError::BlobMissing { digest, .. } => assert_eq!(digest, &img.manifest_desc().digest),
        other => panic!("unexpected {other}"),
    }
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn documents_over_the_cap_are_refused_unread() {
    // A descriptor claiming a huge manifest: refused before reading.
    let mut d = desc(MEDIA_OCI_MANIFEST, b"{}");
    d.size = MAX_DOCUMENT_BYTES + 1;
    let dir = layout_with(&layout_files(&index_json(vec![d]), &[]));
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    assert!(matches!(e, SourceError::DocumentTooLarge { .. }), "{e}");

    // A real manifest over the cap, truthfully described.
    let mut big = br#"{"schemaVersion":2,"x":""#.to_vec();
    big.resize(MAX_DOCUMENT_BYTES as usize + 10, b'a');
    big.extend_from_slice(b"\"}");
    let dir = layout_with(&layout_files(
        &index_json(vec![desc(MEDIA_OCI_MANIFEST, &big)]),
        &[big],
    ));
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    assert!(matches!(e, SourceError::DocumentTooLarge { .. }), "{e}");

    // index.json itself over the cap.
    let mut huge_index = b"{\"schemaVersion\":2,\"manifests\":[],\"x\":\"".to_vec();
    huge_index.resize(MAX_DOCUMENT_BYTES as usize + 1, b' ');
    let dir = layout_with(&layout_files(&huge_index, &[]));
    let e = OciLayout::open(dir.path()).unwrap_err();
    assert!(matches!(e, SourceError::FileTooLarge { .. }), "{e}");
}

#[test]
fn not_a_layout_or_wrong_version() {
    let dir = tempfile::tempdir().unwrap();
    let e = OciLayout::open(dir.path()).unwrap_err();
    assert!(matches!(e, SourceError::NotLayout(_)), "{e}");
    assert!(e.to_string().contains("oci-layout"));
    std::fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("index.json"), index_json(vec![])).unwrap();
    let e = OciLayout::open(dir.path()).unwrap_err();
    assert!(matches!(e, SourceError::LayoutVersion { .. }), "{e}");
    std::fs::write(dir.path().join("oci-layout"), LAYOUT_MARKER).unwrap();
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    assert!(matches!(e, SourceError::Empty(_)), "{e}");
}

#[test]
fn artifacts_and_odd_layers_are_refused() {
    let base = one_image();
    let art = Image::assemble(
        b"{}".to_vec(),
        "application/vnd.cncf.helm.config.v1+json",
        vec![],
        vec![],
        "",
    );
    let dir = layout_with(&layout_files(
        &index_json(vec![art.manifest_desc()]),
        &art.blobs(),
    ));
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    assert!(matches!(e, SourceError::NotAnImage { .. }), "{e}");

    let odd = Image::assemble(
        base.config.clone(),
        rkt_types::oci::MEDIA_OCI_CONFIG,
        base.tars.clone(),
        base.layers.clone(),
        "application/vnd.oci.image.layer.v1.tar+encrypted",
    );
    let dir = layout_with(&layout_files(
        &index_json(vec![odd.manifest_desc()]),
        &odd.blobs(),
    ));
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    assert!(matches!(e, SourceError::UnsupportedLayer { .. }), "{e}");

    // One layer but two diff ids.
    let short = Image::assemble(
        base.config.clone(),
        rkt_types::oci::MEDIA_OCI_CONFIG,
        base.tars[..1].to_vec(),
        base.layers[..1].to_vec(),
        rkt_types::oci::MEDIA_OCI_LAYER_GZIP,
    );
    let dir = layout_with(&layout_files(
        &index_json(vec![short.manifest_desc()]),
        &short.blobs(),
    ));
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    assert!(
        matches!(
            e,
            SourceError::LayerCount {
                layers: 1,
                diff_ids: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn symlinked_blobs_are_not_followed() {
    let img = one_image();
    let dir = layout_with(&layout_files(
        &index_json(vec![img.manifest_desc()]),
        &img.blobs(),
    ));
    let p = dir.path().join(format!(
        "blobs/sha256/{}",
        Digest::sha256_of(&img.config).hex()
    ));
    let elsewhere = dir.path().join("config-elsewhere");
    std::fs::rename(&p, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &p).unwrap();
    let e = OciLayout::open(dir.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    assert!(matches!(e, SourceError::NotRegular { .. }), "{e}");
}
