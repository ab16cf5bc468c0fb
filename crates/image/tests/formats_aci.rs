//! appc ACIs in every compression: manifest peeking, image ids, dependencies refused.

mod formats_support;

use std::io::Read;

use formats_support::*;
use rkt_image::aci::{
    AciError, AciIdReader, aci_config, aci_digests, aci_platform, appc_arch, read_aci_manifest,
};
use rkt_image::compress::Compression;
use rkt_types::digest::Hasher;
use rkt_types::{Algorithm, Digest, Platform};

const MANIFEST: &str = r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/hello",
"labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"},{"name":"arch","value":"aarch64"}],
"app":{"exec":["/bin/hello","--loud"],"user":"0","group":"0",
"environment":[{"name":"GREETING","value":"hi"}],
"ports":[{"name":"http","protocol":"tcp","port":8080}]}}"#;

fn aci_tar(manifest: &str) -> Vec<u8> {
    TarWriter::new()
        .file("manifest", manifest.as_bytes())
        .dir("rootfs/")
        .dir("rootfs/bin/")
        .file("rootfs/bin/hello", b"#!/bin/sh\necho hello\n")
        .finish()
}

#[test]
fn reads_the_manifest_in_every_compression() {
    let plain = aci_tar(MANIFEST);
    let mut h = Hasher::new(Algorithm::Sha512);
    h.update(&plain);
    let want_id = h.finish();
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let aci = compress(c, &plain);
        let (m, bytes) = read_aci_manifest(&aci[..]).unwrap();
        assert_eq!(m.name, "example.com/hello", "{c:?}");
        assert_eq!(bytes, MANIFEST.as_bytes());
        let (found, digests) = aci_digests(&aci[..]).unwrap();
        assert_eq!(found, c);
        assert_eq!(digests.image_id, want_id, "{c:?}");
        assert_eq!(digests.diff_id, Digest::sha256_of(&plain));
        assert_eq!(digests.size, plain.len() as u64);
    }
}

#[test]
fn manifest_need_not_be_first() {
    let plain = TarWriter::new()
        .dir("rootfs/")
        .file("rootfs/x", b"x")
        .file("./manifest", MANIFEST.as_bytes())
        .finish();
    let (m, _) = read_aci_manifest(&plain[..]).unwrap();
    assert_eq!(m.label("version"), Some("1.0"));
}

#[test]
fn config_and_platform_come_from_the_manifest() {
    let (m, _) = read_aci_manifest(&aci_tar(MANIFEST)[..]).unwrap();
    let c = aci_config(&m);
    assert_eq!(c.exec(), ["/bin/hello", "--loud"]);
    assert_eq!(c.env, [("GREETING".to_owned(), "hi".to_owned())]);
    assert_eq!(c.ports[0].port, 8080);
    let p = aci_platform(&m);
    assert_eq!(p, Platform::parse("linux/arm64").unwrap());
    assert_eq!(appc_arch(&p), "aarch64");
    assert_eq!(
        appc_arch(&Platform::parse("linux/arm/v6").unwrap()),
        "armv6l"
    );
}

#[test]
fn dependencies_are_refused_with_their_name() {
    let m = r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app",
    "dependencies":[{"imageName":"example.com/base","labels":[{"name":"version","value":"2"}]}]}"#;
    let e = read_aci_manifest(&compress(Compression::Gzip, &aci_tar(m))[..]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, AciError::Dependency { .. }));
    assert!(
        msg.contains("example.com/base") && msg.contains("example.com/app"),
        "{msg}"
    );
}

#[test]
fn refuses_non_acis() {
    let no_manifest = tar_of(&[("rootfs/x", b"x")]);
    assert!(matches!(
        read_aci_manifest(&no_manifest[..]).unwrap_err(),
        AciError::NoManifest
    ));
    let bad = aci_tar(r#"{"acKind":"PodManifest","acVersion":"0.8.11","name":"x"}"#);
    assert!(matches!(
        read_aci_manifest(&bad[..]).unwrap_err(),
        AciError::Manifest(_)
    ));
    let garbage = compress(
        Compression::Gzip,
        b"definitely not a tar archive, just some words",
    );
    let e = read_aci_manifest(&garbage[..]).unwrap_err();
    assert!(
        matches!(e, AciError::Read { .. } | AciError::NoManifest),
        "{e}"
    );
    let truncated = compress(Compression::Xz, &aci_tar(MANIFEST));
    let e = read_aci_manifest(&truncated[..truncated.len() / 2]).unwrap_err();
    assert!(
        matches!(e, AciError::Read { .. } | AciError::NoManifest),
        "{e}"
    );
    // A manifest entry that is a directory.
    let dir_manifest = TarWriter::new().dir("manifest/").finish();
    assert!(matches!(
        read_aci_manifest(&dir_manifest[..]).unwrap_err(),
        AciError::BadManifestEntry
    ));
}

#[test]
fn id_reader_passes_bytes_through_and_counts_what_the_consumer_left() {
    let plain = aci_tar(MANIFEST);
    let mut r = AciIdReader::new(&plain[..]);
    let mut first = vec![0u8; 1000];
    r.read_exact(&mut first).unwrap();
    assert_eq!(first, plain[..1000]);
    let d = r.finish().unwrap();
    assert_eq!(d.diff_id, Digest::sha256_of(&plain));
    assert_eq!(d.image_id.algorithm(), Algorithm::Sha512);
}
