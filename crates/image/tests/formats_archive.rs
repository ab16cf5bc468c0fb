//! OCI layout archives: read in place, compressed ones refused or decompressed to scratch,
//! hostile member paths refused.

mod formats_support;

use std::io::Read;

use formats_support::*;
use rkt_image::compress::Compression;
use rkt_image::layout::{BlobError, BlobSource, OciArchive, SourceError};
use rkt_types::{Digest, Platform};

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn image() -> Image {
    Image::new(
        "amd64",
        &[
            &[("etc/os-release", b"ID=test\n")],
            &[("usr/bin/tool", &[0u8; 3000][..])],
        ],
    )
}

fn archive_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

#[test]
fn reads_blobs_in_place_and_in_parallel() {
    let img = image();
    let files = layout_files(
        &index_json(vec![named(img.manifest_desc(), "v1")]),
        &img.blobs(),
    );
    let f = archive_file(&tar_files(&files));
    let ar = OciArchive::open(f.path()).unwrap();
    let r = ar.resolve(Some("v1"), &amd64()).unwrap();
    assert_eq!(r.manifest_bytes, img.manifest);
    assert_eq!(r.names, ["v1"]);
    // Two readers at once over the one file: positioned reads do not disturb each other.
    let mut a = ar.open_blob(&r.layers[0]).unwrap();
    let mut b = ar.open_blob(&r.layers[1]).unwrap();
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 7];
    loop {
        let na = a.read(&mut buf).unwrap();
        va.extend_from_slice(&buf[..na]);
        let nb = b.read(&mut buf).unwrap();
        vb.extend_from_slice(&buf[..nb]);
        if na == 0 && nb == 0 {
            break;
        }
    }
    a.finish().unwrap();
    b.finish().unwrap();
    assert_eq!(va, img.layers[0]);
    assert_eq!(vb, img.layers[1]);
    // Readers outlive nothing: they can move to another thread.
    let d = r.layers[1].clone();
    let reader = ar.open_blob(&d).unwrap();
    let got = std::thread::spawn(move || {
        let mut reader = reader;
        let mut v = Vec::new();
        reader.read_to_end(&mut v).unwrap();
        v
    })
    .join()
    .unwrap();
    assert_eq!(got, img.layers[1]);
}

#[test]
fn dot_slash_member_names_are_found() {
    let img = image();
    let files: Vec<(String, Vec<u8>)> =
        layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs())
            .into_iter()
            .map(|(p, d)| (format!("./{p}"), d))
            .collect();
    let f = archive_file(&tar_files(&files));
    let r = OciArchive::open(f.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap();
    assert_eq!(r.config_bytes, img.config);
}

#[test]
fn compressed_archives_are_refused_or_decompressed_to_scratch() {
    let img = image();
    let files = layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs());
    let plain = tar_files(&files);
    for c in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Xz,
        Compression::Bzip2,
    ] {
        let f = archive_file(&compress(c, &plain));
        let e = OciArchive::open(f.path()).unwrap_err();
        assert!(matches!(e, SourceError::Compressed { .. }), "{e}");
        assert!(e.to_string().contains("-dk"), "{e}");
        let scratch = tempfile::tempdir().unwrap();
        let ar = OciArchive::open_with_scratch(f.path(), scratch.path()).unwrap();
        let r = ar.resolve(None, &amd64()).unwrap();
        assert_eq!(read_blob(&ar, &r.layers[1]).unwrap(), img.layers[1]);
        // The decompressed copy is anonymous: nothing is left in the scratch directory.
        assert_eq!(
            std::fs::read_dir(scratch.path()).unwrap().count(),
            0,
            "{c:?}"
        );
    }
}

#[test]
fn escaping_member_paths_are_refused() {
    let img = image();
    let mut w = TarWriter::new();
    for (p, d) in layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs()) {
        w = w.file(&p, &d);
    }
    let bytes = w.raw_file("../evil", b"x").finish();
    let f = archive_file(&bytes);
    let e = OciArchive::open(f.path()).unwrap_err();
    assert!(
        matches!(&e, SourceError::EscapingPath { path, .. } if path == "../evil"),
        "{e}"
    );

    let bytes = TarWriter::new().raw_file("/etc/passwd", b"x").finish();
    let f = archive_file(&bytes);
    assert!(matches!(
        OciArchive::open(f.path()).unwrap_err(),
        SourceError::EscapingPath { .. }
    ));
}

#[test]
fn a_blob_symlinked_outside_the_archive_is_refused() {
    let img = image();
    let mut w = TarWriter::new();
    let cfg = format!("blobs/sha256/{}", Digest::sha256_of(&img.config).hex());
    for (p, d) in layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs()) {
        if p != cfg {
            w = w.file(&p, &d);
        }
    }
    let f = archive_file(&w.symlink(&cfg, "../../../../etc/passwd").finish());
    let e = OciArchive::open(f.path())
        .unwrap()
        .resolve(None, &amd64())
        .unwrap_err();
    assert!(matches!(e, SourceError::EscapingPath { .. }), "{e}");
}

#[test]
fn damaged_blobs_in_archives_are_refused() {
    let img = image();
    let mut files = layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs());
    let p = format!("blobs/sha256/{}", Digest::sha256_of(&img.layers[1]).hex());
    let layer = &mut files.iter_mut().find(|(q, _)| *q == p).unwrap().1;
    layer[20] ^= 1;
    let f = archive_file(&tar_files(&files));
    let ar = OciArchive::open(f.path()).unwrap();
    let r = ar.resolve(None, &amd64()).unwrap();
    let e = read_blob(&ar, &r.layers[1]).unwrap_err();
    assert!(matches!(
        BlobError::from_io(&e),
        Some(BlobError::DigestMismatch { .. })
    ));

    // Longer than its descriptor.
    let mut files = layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs());
    files.iter_mut().find(|(q, _)| *q == p).unwrap().1.push(0);
    let f = archive_file(&tar_files(&files));
    let ar = OciArchive::open(f.path()).unwrap();
    let r = ar.resolve(None, &amd64()).unwrap();
    assert!(matches!(
        ar.open_blob(&r.layers[1]).unwrap_err(),
        SourceError::BlobSize { .. }
    ));
}

#[test]
fn index_referencing_a_missing_blob() {
    let img = image();
    let mut blobs = img.blobs();
    blobs.pop();
    let f = archive_file(&tar_files(&layout_files(
        &index_json(vec![img.manifest_desc()]),
        &blobs,
    )));
    let ar = OciArchive::open(f.path()).unwrap();
    let r = ar.resolve(None, &amd64()).unwrap();
    let e = ar.open_blob(&r.layers[1]).unwrap_err();
    assert!(matches!(e, SourceError::BlobMissing { .. }), "{e}");
}

#[test]
fn not_an_oci_archive() {
    let f = archive_file(&tar_of(&[("manifest.json", b"[]")]));
    let e = OciArchive::open(f.path()).unwrap_err();
    assert!(e.to_string().contains("docker-archive:"), "{e}");
    let f = archive_file(b"this is not a tar file at all, not even close........");
    assert!(OciArchive::open(f.path()).is_err());
}
