//! Safe extraction end to end: every hostile fixture image, fetched from an OCI layout by the
//! real binary, is either refused with a message naming the entry (and then nothing of it is
//! left in the store) or neutralised with a warning naming the entry. Either way nothing
//! appears, changes or gains a link outside the store; rendering a neutralised image does not
//! escape either.

mod e2e_local_support;

use std::os::unix::fs::FileTypeExt;

use e2e_local_support::*;
use rkt_tests::fixtures::{Adversarial, AdversarialKind};
use rkt_tests::rkt::Rkt;

/// What rkt must do with a hostile image.
enum Outcome {
    /// Fail; stderr contains each string.
    Refused(&'static [&'static str]),
    /// Succeed; the warnings on stderr contain each string.
    Neutralised(&'static [&'static str]),
}

fn outcome(kind: AdversarialKind) -> Outcome {
    use AdversarialKind as K;
    use Outcome::*;
    match kind {
        K::PathTraversal => Refused(&["tmp/rkt-adversarial/path-traversal/escaped", "'..'"]),
        K::AbsolutePath => Neutralised(&["/tmp/rkt-adversarial/absolute-path/escaped"]),
        K::SymlinkEscapeAbsolute | K::SymlinkEscapeRelative => Neutralised(&["escape/escaped"]),
        K::HardlinkEscapeRelative | K::HardlinkEscapeAbsolute => {
            Refused(&["\"canary-link\"", "hard link"])
        }
        K::DeviceNodes => Neutralised(&["dev/mem", "dev/sda", "device node"]),
        K::OpaqueMisuse => Neutralised(&[".wh..wh..opq", "etc/.wh..wh..opq/inside"]),
        K::WhiteoutDotDot => Refused(&["bin/.wh..", "whiteout"]),
        K::OverlayMarkers => Neutralised(&[
            "trusted.overlay.opaque",
            "trusted.overlay.redirect",
            "etc/passwd",
        ]),
        K::BlobDigestMismatch => Refused(&["does not match its digest"]),
        K::WrongDiffId => Refused(&["diff id"]),
        K::ZipBomb => Refused(&["--max-layer-size"]),
    }
}

fn check(kind: AdversarialKind) {
    let a: &Adversarial = fx().adversarial(kind);
    a.prepare_host().unwrap();
    let rkt = Rkt::new();
    let src = oci(&a.image);
    // The bomb is refused by a limit well below its size (the default would let 2 GiB through).
    let out = rkt.run(&[
        "--insecure-options=image",
        "fetch",
        "--max-layer-size=256MiB",
        src.as_str(),
    ]);
    let host = a.check_host();
    match outcome(kind) {
        Outcome::Refused(needles) => {
            assert_eq!(
                out.code(),
                Some(EXIT_ERROR),
                "{kind:?} must be refused: {out}"
            );
            for n in needles {
                assert!(out.stderr.contains(n), "{kind:?}: error names {n:?}: {out}");
            }
            assert_store_empty(&rkt, kind.name());
        }
        Outcome::Neutralised(needles) => {
            assert!(out.success(), "{kind:?} is neutralised, not refused: {out}");
            assert_eq!(out.last_line(), a.image.image.image_id().to_string());
            let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains("WARN")).collect();
            for n in needles {
                assert!(
                    warnings.iter().any(|w| w.contains(n)),
                    "{kind:?}: a warning names {n:?}: {out}"
                );
            }
            assert!(
                !out.stderr.contains('\u{1b}'),
                "no terminal colours when stderr is not a terminal: {out}"
            );
            let dest = rkt.dir().join("rendered");
            let id = a.image.image.image_id().to_string();
            let r = rkt.run(&["image", "render", id.as_str(), &dest.to_string_lossy()]);
            assert!(r.success(), "{kind:?}: render: {r}");
            assert_eq!(a.check_host(), Ok(()), "{kind:?}: render escaped");
            check_neutralised_tree(kind, &dest.join("rootfs"));
            if kind == AdversarialKind::OverlayMarkers {
                let tree = layer_dir(&rkt, &a.image.image.diff_ids[1]).join("tree");
                for (path, xattr) in [
                    ("etc", "trusted.overlay.opaque"),
                    ("redirected", "trusted.overlay.redirect"),
                ] {
                    let mut buf = [0u8; 64];
                    assert!(
                        rustix::fs::lgetxattr(tree.join(path), xattr, &mut buf).is_err(),
                        "{xattr} on {path} in the stored tree"
                    );
                }
            }
        }
    }
    assert_eq!(host, Ok(()), "{kind:?} reached the host: {out}");
    assert_eq!(
        entries(&rkt.store().join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );
}

/// What a neutralised image's rootfs looks like.
fn check_neutralised_tree(kind: AdversarialKind, rootfs: &std::path::Path) {
    use AdversarialKind as K;
    let no_device = |p: &str| {
        if let Ok(m) = std::fs::symlink_metadata(rootfs.join(p)) {
            let t = m.file_type();
            assert!(
                !t.is_char_device() && !t.is_block_device(),
                "{kind:?}: {p} is a device node"
            );
        }
    };
    match kind {
        K::DeviceNodes => {
            no_device("dev/mem");
            no_device("dev/sda");
        }
        K::OverlayMarkers => {
            // Not a whiteout: the base layer's passwd shows through.
            no_device("etc/passwd");
            assert!(rootfs.join("etc/passwd").is_file(), "{kind:?}");
        }
        K::AbsolutePath => {
            let inside = rootfs.join("tmp/rkt-adversarial/absolute-path/escaped");
            assert!(inside.is_file(), "{kind:?}: the entry lands inside");
        }
        K::SymlinkEscapeAbsolute | K::SymlinkEscapeRelative => {
            let dir = kind.host_dir();
            let rel = dir.strip_prefix("/").unwrap();
            assert!(rootfs.join(rel).join("trap/escaped").is_file(), "{kind:?}");
        }
        _ => {}
    }
}

macro_rules! adversarial_tests {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(#[test] fn $name() { check(AdversarialKind::$kind); })*

        /// Every kind has a test above.
        #[test]
        fn every_kind_is_covered() {
            let covered = [$(AdversarialKind::$kind),*];
            for k in AdversarialKind::ALL {
                assert!(covered.contains(&k), "no end-to-end test for {k:?}");
            }
        }
    };
}

adversarial_tests! {
    path_traversal => PathTraversal,
    absolute_path => AbsolutePath,
    symlink_escape_absolute => SymlinkEscapeAbsolute,
    symlink_escape_relative => SymlinkEscapeRelative,
    hardlink_escape_relative => HardlinkEscapeRelative,
    hardlink_escape_absolute => HardlinkEscapeAbsolute,
    device_nodes => DeviceNodes,
    opaque_misuse => OpaqueMisuse,
    whiteout_dotdot => WhiteoutDotDot,
    overlay_markers => OverlayMarkers,
    blob_digest_mismatch => BlobDigestMismatch,
    wrong_diff_id => WrongDiffId,
    zip_bomb => ZipBomb,
}
