//! Export: OCI archives round-trip through our reader (and skopeo, when installed), and ACIs
//! keep the metadata of the tree they come from.

mod formats_support;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use formats_support::*;
use rkt_image::aci::read_aci_manifest;
use rkt_image::detect::{LocalFormat, detect};
use rkt_image::export::{ExportError, write_aci, write_oci_archive};
use rkt_image::layout::{BlobError, OciArchive, OciLayout};
use rkt_types::appc::ImageManifest;
use rkt_types::{Digest, Platform};

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn image() -> Image {
    Image::new(
        "amd64",
        &[
            &[("etc/motd", b"hello\n")],
            &[("bin/tool", &[7u8; 5000][..])],
        ],
    )
}

fn export(img: &Image, ref_name: Option<&str>) -> Vec<u8> {
    let blobs = img
        .layer_descs()
        .into_iter()
        .zip(img.layers.iter().map(|l| &l[..]));
    write_oci_archive(Vec::new(), &img.manifest, &img.config, blobs, ref_name).unwrap()
}

#[test]
fn exported_oci_archive_reads_back_identically() {
    let img = image();
    let bytes = export(&img, Some("example.com/tool:1.0"));
    // Exporting twice gives the same bytes.
    assert_eq!(bytes, export(&img, Some("example.com/tool:1.0")));
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &bytes).unwrap();
    assert_eq!(detect(f.path()).unwrap(), LocalFormat::OciArchive);
    let ar = OciArchive::open(f.path()).unwrap();
    let r = ar.resolve(Some("example.com/tool:1.0"), &amd64()).unwrap();
    assert_eq!(r.manifest_bytes, img.manifest);
    assert_eq!(r.config_bytes, img.config);
    for (d, want) in r.layers.iter().zip(&img.layers) {
        assert_eq!(&read_blob(&ar, d).unwrap(), want);
    }
    // Unpacked as a directory, it is a layout too.
    let dir = tempfile::tempdir().unwrap();
    tar::Archive::new(&bytes[..]).unpack(dir.path()).unwrap();
    let layout = OciLayout::open(dir.path()).unwrap();
    let entry = &layout.index().manifests[0];
    assert_eq!(entry.platform.as_ref().unwrap().architecture, "amd64");
    assert_eq!(
        layout.resolve(None, &amd64()).unwrap().config_bytes,
        img.config
    );
    skopeo_accepts(f.path(), &Digest::sha256_of(&img.manifest));
}

fn skopeo_accepts(archive: &Path, manifest_digest: &Digest) {
    let skopeo = Path::new("/usr/bin/skopeo");
    if !skopeo.exists() {
        println!("skipping the skopeo check: /usr/bin/skopeo is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(skopeo)
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display()))
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo refused the archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], manifest_digest.to_string(), "{v}");
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn export_refuses_inconsistent_input() {
    let img = image();
    // A layer whose bytes are not what the manifest says.
    let mut bad = img.layers[1].clone();
    bad[10] ^= 1;
    let blobs = img
        .layer_descs()
        .into_iter()
        .zip([&img.layers[0][..], &bad[..]]);
    let e = write_oci_archive(Vec::new(), &img.manifest, &img.config, blobs, None).unwrap_err();
    assert!(
        matches!(e.blob_error(), Some(BlobError::DigestMismatch { .. })),
        "{e}"
    );
    // A layer left out.
    let blobs = img
        .layer_descs()
        .into_iter()
        .zip([&img.layers[0][..]])
        .take(1);
    let e = write_oci_archive(Vec::new(), &img.manifest, &img.config, blobs, None).unwrap_err();
    assert!(matches!(e, ExportError::MissingBlob(_)), "{e}");
    // A config that is not the manifest's.
    let blobs = img
        .layer_descs()
        .into_iter()
        .zip(img.layers.iter().map(|l| &l[..]));
    let e = write_oci_archive(Vec::new(), &img.manifest, b"{}", blobs, None).unwrap_err();
    assert!(matches!(e, ExportError::ConfigMismatch { .. }), "{e}");
    // A blob that is no layer of the manifest.
    let stray = desc("application/octet-stream", b"stray");
    let e = write_oci_archive(
        Vec::new(),
        &img.manifest,
        &img.config,
        [(stray, &b"stray"[..])],
        None,
    )
    .unwrap_err();
    assert!(matches!(e, ExportError::UnexpectedBlob(_)), "{e}");
}

#[derive(Debug, Default)]
struct Seen {
    kind: Option<tar::EntryType>,
    mode: u32,
    uid: u64,
    gid: u64,
    link: Option<String>,
    data: Vec<u8>,
    xattrs: HashMap<String, Vec<u8>>,
}

fn entries(aci: &[u8]) -> HashMap<String, Seen> {
    let mut out = HashMap::new();
    let mut ar = tar::Archive::new(aci);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut s = Seen::default();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for ext in pax {
                let ext = ext.unwrap();
                if let Some(name) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    s.xattrs.insert(name.to_owned(), ext.value_bytes().to_vec());
                }
            }
        }
        let h = e.header();
        s.kind = Some(h.entry_type());
        s.mode = h.mode().unwrap();
        s.uid = h.uid().unwrap();
        s.gid = h.gid().unwrap();
        s.link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let path = e.path().unwrap().to_string_lossy().into_owned();
        e.read_to_end(&mut s.data).unwrap();
        out.insert(path, s);
    }
    out
}

#[test]
fn aci_export_keeps_the_tree() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::create_dir_all(r.join("etc/deep/er")).unwrap();
    std::fs::write(r.join("bin/busybox"), b"\x7fELF pretend").unwrap();
    std::fs::set_permissions(
        r.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::hard_link(r.join("bin/busybox"), r.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", r.join("bin/ls")).unwrap();
    // A symlink pointing out of the tree must be archived as a link, never followed.
    std::os::unix::fs::symlink("/etc/shadow", r.join("etc/shadow-link")).unwrap();
    std::fs::write(r.join("etc/deep/er/file"), b"deep").unwrap();
    let long = "n".repeat(150);
    std::fs::write(r.join("etc").join(&long), b"long name").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r.join("etc/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let owned = r.join("etc/owned");
    std::fs::write(&owned, b"mine").unwrap();
    let chowned = std::os::unix::fs::chown(&owned, Some(1234), Some(5678)).is_ok();
    let xattr = rustix::fs::setxattr(
        r.join("etc/deep/er/file").as_path(),
        "user.rkt.test",
        b"value\0with nul",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();

    let m = ImageManifest::parse(
        br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/exported",
        "app":{"exec":["/bin/sh"],"user":"0","group":"0"}}"#,
    )
    .unwrap();
    let aci = write_aci(Vec::new(), &m, r).unwrap();
    let (back, _) = read_aci_manifest(&aci[..]).unwrap();
    assert_eq!(back, m);

    let e = entries(&aci);
    assert_eq!(e["rootfs/"].kind, Some(tar::EntryType::Directory));
    let bb = &e["rootfs/bin/busybox"];
    assert_eq!(bb.data, b"\x7fELF pretend");
    assert_eq!(bb.mode, 0o4755);
    let sh = &e["rootfs/bin/sh"];
    assert_eq!(sh.kind, Some(tar::EntryType::Link));
    assert_eq!(sh.link.as_deref(), Some("rootfs/bin/busybox"));
    assert_eq!(e["rootfs/bin/ls"].kind, Some(tar::EntryType::Symlink));
    assert_eq!(e["rootfs/bin/ls"].link.as_deref(), Some("busybox"));
    assert_eq!(
        e["rootfs/etc/shadow-link"].link.as_deref(),
        Some("/etc/shadow")
    );
    assert!(e["rootfs/etc/shadow-link"].data.is_empty());
    assert_eq!(e["rootfs/etc/deep/er/file"].data, b"deep");
    assert_eq!(e[&format!("rootfs/etc/{long}")].data, b"long name");
    assert_eq!(e["rootfs/etc/fifo"].kind, Some(tar::EntryType::Fifo));
    if chowned {
        assert_eq!(
            (e["rootfs/etc/owned"].uid, e["rootfs/etc/owned"].gid),
            (1234, 5678)
        );
    } else {
        println!("skipping the ownership check: chown needs root");
    }
    if xattr {
        assert_eq!(
            e["rootfs/etc/deep/er/file"]
                .xattrs
                .get("user.rkt.test")
                .map(Vec::as_slice),
            Some(&b"value\0with nul"[..])
        );
    } else {
        println!("skipping the xattr check: this file system has no user xattrs");
    }
    let d = std::fs::symlink_metadata(r.join("etc/deep")).unwrap();
    assert_eq!(e["rootfs/etc/deep/"].mode, d.mode() & 0o7777);
}
