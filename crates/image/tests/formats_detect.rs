//! Format detection of local paths by content.

mod formats_support;

use formats_support::*;
use rkt_image::compress::Compression;
use rkt_image::detect::{DetectError, LocalFormat, detect};

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

fn aci() -> Vec<u8> {
    TarWriter::new()
        .file("manifest", b"{}")
        .dir("rootfs/")
        .file("rootfs/a", b"a")
        .finish()
}

#[test]
fn layouts_and_archives() {
    let img = Image::new("amd64", &[&[("a", b"a")]]);
    let files = layout_files(&index_json(vec![img.manifest_desc()]), &img.blobs());
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &files);
    assert_eq!(detect(dir.path()).unwrap(), LocalFormat::OciLayoutDir);
    let f = file_with(&tar_files(&files));
    assert_eq!(detect(f.path()).unwrap(), LocalFormat::OciArchive);
    let f = file_with(&compress(Compression::Gzip, &tar_files(&files)));
    assert_eq!(detect(f.path()).unwrap(), LocalFormat::OciArchive);
}

#[test]
fn docker_archives_old_and_new() {
    // Legacy: layer directories first, manifest.json near the end.
    let legacy = TarWriter::new()
        .dir("abc/")
        .file("abc/layer.tar", &tar_of(&[("x", b"x")]))
        .file("abc.json", b"{}")
        .file("manifest.json", b"[]")
        .file("repositories", b"{}")
        .finish();
    assert_eq!(
        detect(file_with(&legacy).path()).unwrap(),
        LocalFormat::DockerArchive
    );
    // Docker 25+: an OCI layout that also carries manifest.json.
    let new = TarWriter::new()
        .file("blobs/sha256/00", b"x")
        .file("index.json", b"{}")
        .file("oci-layout", LAYOUT_MARKER)
        .file("manifest.json", b"[]")
        .finish();
    assert_eq!(
        detect(file_with(&new).path()).unwrap(),
        LocalFormat::DockerArchive
    );
    let f = file_with(&compress(Compression::Zstd, &legacy));
    assert_eq!(detect(f.path()).unwrap(), LocalFormat::DockerArchive);
}

#[test]
fn acis_in_every_compression() {
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let f = file_with(&compress(c, &aci()));
        assert_eq!(detect(f.path()).unwrap(), LocalFormat::Aci(c), "{c:?}");
    }
}

#[test]
fn anything_else_is_explained() {
    let f = file_with(b"hello, I am a text file and not an image of any kind at all");
    let e = detect(f.path()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DetectError::Unrecognized { .. }));
    assert!(
        msg.contains("not an OCI layout, OCI archive, docker save archive or ACI"),
        "{msg}"
    );
    let f = file_with(&tar_of(&[("README", b"hi")]));
    let msg = detect(f.path()).unwrap_err().to_string();
    assert!(msg.contains("README"), "{msg}");
    let f = file_with(b"");
    assert!(matches!(
        detect(f.path()).unwrap_err(),
        DetectError::Unrecognized { .. }
    ));
    let f = file_with(&compress(
        Compression::Gzip,
        b"compressed words, not a tar archive at all",
    ));
    assert!(matches!(
        detect(f.path()).unwrap_err(),
        DetectError::Unrecognized { .. }
    ));
    let dir = tempfile::tempdir().unwrap();
    let msg = detect(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("oci-layout"), "{msg}");
    let e = detect(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, DetectError::Io { .. }));
}
