//! An overlayfs upper dir written as an OCI layer: whiteouts converted, metadata, xattrs and
//! hard links kept, nothing outside the upper dir read, and the layer unpacks back into the
//! same overlay-style tree. Needs root (device nodes, `trusted.*` xattrs, chown).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rkt_image::export::upper::{write_upper_layer, write_upper_layer_gzip};
use rkt_image::unpack::{UnpackOptions, unpack_layer};
use rkt_types::Digest;
use rustix::fs::{FileType, Mode, XattrFlags};

/// `security.capability` v2 granting `cap_net_bind_service` (bit 10) permitted.
const CAP_NET_BIND: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn setx(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

fn whiteout(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
}

/// An upper dir as overlayfs leaves it after an app wrote, deleted and replaced things.
fn upper_dir(root: &Path) -> std::path::PathBuf {
    let up = root.join("upper");
    fs::create_dir_all(up.join("etc")).unwrap();
    fs::create_dir_all(up.join("var/lib")).unwrap();
    fs::write(up.join("hello"), b"hello\n").unwrap();
    // chown clears set-id bits, so it goes first.
    std::os::unix::fs::chown(up.join("hello"), Some(1000), Some(1001)).unwrap();
    fs::set_permissions(up.join("hello"), fs::Permissions::from_mode(0o4755)).unwrap();
    setx(&up.join("hello"), "user.note", b"kept");
    setx(&up.join("hello"), "security.capability", &CAP_NET_BIND);
    fs::write(up.join("a"), b"linked\n").unwrap();
    fs::hard_link(up.join("a"), up.join("etc/b")).unwrap();
    symlink("/etc/passwd", up.join("abs-link")).unwrap();
    symlink("../../../outside", up.join("etc/rel-link")).unwrap();
    // A copied-up directory carries overlayfs bookkeeping that must not travel.
    setx(&up.join("etc"), "trusted.overlay.origin", b"\x00junk");
    setx(&up.join("etc"), "trusted.overlay.impure", b"y");
    whiteout(&up.join("etc/os-release"));
    // A deleted-and-recreated directory is opaque.
    setx(&up.join("var"), "trusted.overlay.opaque", b"y");
    fs::write(up.join("var/lib/new"), b"x").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        up.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    up
}

struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    link: Option<String>,
    xattrs: BTreeMap<String, Vec<u8>>,
    data: Vec<u8>,
}

fn entries(tar_bytes: &[u8]) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar_bytes);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                if let Some(n) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(n.to_owned(), x.value_bytes().to_vec());
                }
            }
        }
        let h = e.header();
        let kind = h.entry_type();
        let mode = h.mode().unwrap();
        let (uid, gid) = (h.uid().unwrap(), h.gid().unwrap());
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(
            path,
            Entry {
                kind,
                mode,
                uid,
                gid,
                link,
                xattrs,
                data,
            },
        );
    }
    out
}

#[test]
fn upper_dir_becomes_an_oci_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upper_dir(tmp.path());
    let layer = write_upper_layer(Vec::new(), &up, &[]).unwrap();
    let es = entries(&layer);
    let names: Vec<&str> = es.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "a",
            "abs-link",
            "etc/",
            "etc/.wh.os-release",
            "etc/b",
            "etc/rel-link",
            "fifo",
            "hello",
            "var/",
            "var/.wh..wh..opq",
            "var/lib/",
            "var/lib/new",
        ]
    );
    let hello = &es["hello"];
    assert_eq!(hello.kind, tar::EntryType::Regular);
    assert_eq!(hello.mode, 0o4755);
    assert_eq!((hello.uid, hello.gid), (1000, 1001));
    assert_eq!(hello.data, b"hello\n");
    assert_eq!(hello.xattrs["user.note"], b"kept");
    assert_eq!(hello.xattrs["security.capability"], CAP_NET_BIND);
    // Whiteouts are empty regular files; overlayfs xattrs are gone.
    let wh = &es["etc/.wh.os-release"];
    assert_eq!(wh.kind, tar::EntryType::Regular);
    assert!(wh.data.is_empty());
    assert_eq!(es["var/.wh..wh..opq"].kind, tar::EntryType::Regular);
    assert!(es["etc/"].xattrs.is_empty(), "overlay xattrs leaked");
    assert!(es["var/"].xattrs.is_empty(), "overlay xattrs leaked");
    // The second name of a hard link points at the first; symlinks are not followed.
    assert_eq!(es["a"].kind, tar::EntryType::Regular);
    assert_eq!(es["etc/b"].kind, tar::EntryType::Link);
    assert_eq!(es["etc/b"].link.as_deref(), Some("a"));
    assert_eq!(es["abs-link"].kind, tar::EntryType::Symlink);
    assert_eq!(es["abs-link"].link.as_deref(), Some("/etc/passwd"));
    assert_eq!(es["etc/rel-link"].link.as_deref(), Some("../../../outside"));
    assert_eq!(es["fifo"].kind, tar::EntryType::Fifo);
    assert_eq!(es["fifo"].mode, 0o600);
}

#[test]
fn the_layer_unpacks_back_into_the_same_overlay_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upper_dir(tmp.path());
    let layer = write_upper_layer(Vec::new(), &up, &[]).unwrap();
    let tree = tmp.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let report = unpack_layer(&layer[..], &tree, &UnpackOptions::default()).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let md = fs::symlink_metadata(tree.join("etc/os-release")).unwrap();
    assert!(md.file_type().is_char_device() && md.rdev() == 0);
    let opaque = rustix::fs::lgetxattr(tree.join("var"), "trusted.overlay.opaque", &mut [0u8; 8]);
    assert_eq!(opaque.unwrap(), 1);
    assert!(
        rustix::fs::lgetxattr(tree.join("etc"), "trusted.overlay.opaque", &mut [0u8; 8]).is_err()
    );
    let hello = fs::symlink_metadata(tree.join("hello")).unwrap();
    assert_eq!(hello.mode() & 0o7777, 0o4755);
    assert_eq!((hello.uid(), hello.gid()), (1000, 1001));
    let mut buf = [0u8; 64];
    let n = rustix::fs::lgetxattr(tree.join("hello"), "security.capability", &mut buf).unwrap();
    assert_eq!(&buf[..n], CAP_NET_BIND);
    let n = rustix::fs::lgetxattr(tree.join("hello"), "user.note", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept");
    let (a, b) = (
        fs::metadata(tree.join("a")).unwrap(),
        fs::metadata(tree.join("etc/b")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        fs::read_link(tree.join("etc/rel-link")).unwrap(),
        Path::new("../../../outside")
    );
}

#[test]
fn gzip_layer_digests_match_its_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upper_dir(tmp.path());
    let (blob, d) = write_upper_layer_gzip(Vec::new(), &up, &[]).unwrap();
    assert_eq!(d.digest, Digest::sha256_of(&blob));
    assert_eq!(d.size, blob.len() as u64);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&blob[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(d.diff_id, Digest::sha256_of(&plain));
    assert_eq!(plain, write_upper_layer(Vec::new(), &up, &[]).unwrap());
}

#[test]
fn refuses_what_a_layer_cannot_say_or_what_lies_outside() {
    let tmp = tempfile::tempdir().unwrap();
    // A real file whose name would read as a whiteout.
    let up = tmp.path().join("wh");
    fs::create_dir_all(&up).unwrap();
    fs::write(up.join(".wh.trick"), b"").unwrap();
    let e = write_upper_layer(Vec::new(), &up, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains(".wh.trick"), "{e}");
    // A redirect: the directory's content lives in a lower layer under another name.
    let up = tmp.path().join("redirect");
    fs::create_dir_all(up.join("moved")).unwrap();
    setx(&up.join("moved"), "trusted.overlay.redirect", b"/orig");
    let e = write_upper_layer(Vec::new(), &up, &[]).unwrap_err();
    let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(chain.contains("trusted.overlay.redirect"), "{chain}");
    // The upper dir itself must not be a symlink to somewhere else.
    let real = tmp.path().join("elsewhere");
    fs::create_dir_all(&real).unwrap();
    fs::write(real.join("secret"), b"s").unwrap();
    symlink(&real, tmp.path().join("link-upper")).unwrap();
    assert!(write_upper_layer(Vec::new(), &tmp.path().join("link-upper"), &[]).is_err());
}

#[test]
fn skipped_paths_are_left_out_with_their_subtrees() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upper_dir(tmp.path());
    let skip = [PathBuf::from("etc/b"), PathBuf::from("var")];
    let es = entries(&write_upper_layer(Vec::new(), &up, &skip).unwrap());
    assert!(es.contains_key("etc/rel-link") && es.contains_key("a"));
    assert!(
        !es.keys().any(|k| k == "etc/b" || k.starts_with("var")),
        "{:?}",
        es.keys()
    );
}

#[test]
fn an_empty_upper_dir_is_an_empty_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = write_upper_layer(Vec::new(), tmp.path(), &[]).unwrap();
    assert!(entries(&layer).is_empty());
    assert_eq!(layer.len(), 1024, "just the end-of-archive blocks");
}
