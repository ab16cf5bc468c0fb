//! Hostile layers. Every test runs in a [`Scene`], which checks after each unpack that nothing
//! appeared or changed next to the destination. Absolute-path breakouts aim at the scene's own
//! `outside/` directory rather than at real host files, so a regression fails a test instead
//! of damaging the machine.

mod unpack_support;

use std::fs;
use std::io::{self, Read};

use rkt_image::unpack::{UnpackError, UnpackOptions, unpack_layer};
use tar::{EntryType, Header};
use unpack_support::*;

#[test]
fn dotdot_names_are_refused() {
    for name in [
        "../../etc/x",
        "../outside/pwned",
        "a/../../outside/pwned",
        "/..",
    ] {
        let s = Scene::new();
        let tar = Tar::new()
            .file("ok", b"", 0o644)
            .raw(name.as_bytes(), EntryType::Regular, b"x", |_| {})
            .bytes();
        let err = s.unpack(&tar).unwrap_err();
        assert!(
            matches!(&err, UnpackError::BadName { entry, .. } if entry == name),
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains("climbs above the layer root"),
            "{err}"
        );
    }
}

#[test]
fn absolute_names_land_inside() {
    let s = Scene::new();
    let abs = format!("{}/pwned", s.outside.display());
    let tar = Tar::new()
        .raw(abs.as_bytes(), EntryType::Regular, b"x", |_| {})
        .bytes();
    let report = s.unpack_ok(&tar);
    assert!(
        report
            .skipped
            .iter()
            .any(|l| l.starts_with(&abs) && l.contains("absolute name")),
        "a warning names the entry: {:?}",
        report.skipped
    );
    assert_eq!(
        fs::read(s.at(&format!("{}/pwned", s.outside_rel()))).unwrap(),
        b"x"
    );
}

#[test]
fn symlink_to_root_then_a_file_below_it() {
    let s = Scene::new();
    let through = format!("a/{}/pwned", s.outside_rel());
    let tar = Tar::new()
        .symlink("a", "/")
        .file(&through, b"x", 0o644)
        .bytes();
    s.unpack_ok(&tar);
    // `a/...` resolved to `/...` inside the tree.
    assert_eq!(
        fs::read(s.at(&format!("{}/pwned", s.outside_rel()))).unwrap(),
        b"x"
    );
    assert_eq!(fs::read_link(s.at("a")).unwrap().to_str(), Some("/"));
}

#[test]
fn relative_symlinks_cannot_climb_out() {
    let s = Scene::new();
    let tar = Tar::new()
        .symlink("up", "../../../../../..")
        .file("up/outside/pwned", b"1", 0o644)
        .symlink("l", "../outside")
        .file("l/pwned2", b"2", 0o644)
        .dir("sub", 0o755)
        .symlink("sub/back", "../../outside")
        .file("sub/back/pwned3", b"3", 0o644)
        // Created as given (nothing follows it), though it points nowhere good.
        .symlink("evil", "../../../../etc/shadow")
        .bytes();
    let report = s.unpack_ok(&tar);
    for entry in ["up/outside/pwned", "l/pwned2", "sub/back/pwned3"] {
        assert!(
            report
                .skipped
                .iter()
                .any(|l| l.starts_with(entry) && l.contains("outside the layer")),
            "a warning names {entry}: {:?}",
            report.skipped
        );
    }
    assert_eq!(fs::read(s.at("outside/pwned")).unwrap(), b"1");
    assert_eq!(fs::read(s.at("outside/pwned2")).unwrap(), b"2");
    assert_eq!(fs::read(s.at("outside/pwned3")).unwrap(), b"3");
    assert_eq!(
        fs::read_link(s.at("evil")).unwrap().to_str(),
        Some("../../../../etc/shadow")
    );
}

#[test]
fn directory_swapped_for_a_symlink_then_written_through() {
    // The classic: dir/, then dir -> somewhere outside, then dir/file.
    let s = Scene::new();
    let abs = s.outside.display().to_string();
    let tar = Tar::new()
        .dir("dir", 0o755)
        .symlink("dir", &abs)
        .file("dir/file", b"x", 0o644)
        .dir("rel", 0o755)
        .symlink("rel", "../outside")
        .file("rel/file", b"y", 0o644)
        .bytes();
    s.unpack_ok(&tar);
    assert_eq!(
        fs::read(s.at(&format!("{}/file", s.outside_rel()))).unwrap(),
        b"x"
    );
    assert_eq!(fs::read(s.at("outside/file")).unwrap(), b"y");

    // When the directory already has children, swapping it is refused outright.
    let s = Scene::new();
    let tar = Tar::new()
        .dir("dir", 0o755)
        .file("dir/a", b"", 0o644)
        .symlink("dir", &abs)
        .file("dir/file", b"x", 0o644)
        .bytes();
    let err = s.unpack(&tar).unwrap_err();
    assert!(
        matches!(err, UnpackError::ReplacesDirectory { .. }),
        "{err}"
    );
}

#[test]
fn hard_links_must_stay_in_the_layer() {
    let cases: &[(&str, &str)] = &[
        ("/etc/passwd", "does not exist earlier in this layer"),
        ("../outside/sentinel", "points outside the layer"),
        ("a/../../outside/sentinel", "points outside the layer"),
        ("missing", "does not exist earlier in this layer"),
        ("d", "is a directory"),
        ("l/OUTSIDE/sentinel", "does not exist earlier in this layer"),
        ("f/x", "does not resolve to a directory"),
    ];
    for (target, why) in cases {
        let s = Scene::new();
        let target = target.replace("OUTSIDE", &s.outside_rel());
        let tar = Tar::new()
            .dir("d", 0o755)
            .file("f", b"", 0o644)
            .symlink("l", "/")
            .hardlink("x", &target)
            .bytes();
        let err = s.unpack(&tar).unwrap_err();
        assert!(
            matches!(err, UnpackError::BadLink { .. }),
            "{target}: {err}"
        );
        assert!(err.to_string().contains(why), "{target}: {err}");
        assert!(!exists(&s.at("x")));
    }
    // A link to itself is harmless and a no-op.
    let s = Scene::new();
    s.unpack_ok(&Tar::new().file("t", b"t", 0o644).hardlink("t", "t").bytes());
    assert_eq!(fs::read(s.at("t")).unwrap(), b"t");
}

#[test]
fn unresolvable_parents_are_errors() {
    let s = Scene::new();
    let tar = Tar::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"", 0o644)
        .bytes();
    let err = s.unpack(&tar).unwrap_err();
    assert!(matches!(err, UnpackError::Resolve { .. }), "{err}");
    assert!(err.to_string().contains("symbolic links"), "{err}");

    let s = Scene::new();
    let tar = Tar::new()
        .file("f", b"", 0o644)
        .file("f/x", b"", 0o644)
        .bytes();
    let err = s.unpack(&tar).unwrap_err();
    assert!(
        err.to_string().contains("\"f\", is not a directory"),
        "{err}"
    );
}

#[test]
fn nul_in_a_long_name_is_refused() {
    let s = Scene::new();
    let mut name = b"a".repeat(120);
    name.extend_from_slice(b"\0/etc/passwd");
    let tar = Tar::new()
        .raw(&name, EntryType::Regular, b"x", |_| {})
        .bytes();
    let err = s.unpack(&tar).unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
}

/// A header of `typ` claiming `size` bytes, followed by endless filler.
fn bomb(typ: EntryType, size: u64) -> impl Read {
    let mut h = Header::new_gnu();
    h.set_entry_type(typ);
    h.set_size(size);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    io::Cursor::new(h.as_bytes().to_vec()).chain(io::repeat(b'a'))
}

#[test]
fn header_bombs_are_cut_off() {
    // A GNU long name or PAX record of a terabyte must not be buffered.
    for typ in [
        EntryType::GNULongName,
        EntryType::GNULongLink,
        EntryType::XHeader,
    ] {
        let s = Scene::new();
        let err = unpack_layer(bomb(typ, 1 << 40), &s.dest, &UnpackOptions::default()).unwrap_err();
        assert!(
            matches!(err, UnpackError::HeadersTooLarge { index: 1 }),
            "{typ:?}: {err}"
        );
        s.assert_contained();
    }
}

#[test]
fn entry_count_and_size_bombs_stop_early() {
    // A stream of endless tiny entries stops at the entry limit.
    let s = Scene::new();
    let mut one = Tar::new().file("x", b"", 0o644).bytes();
    one.truncate(512); // the header alone: an empty file has no data blocks
    let endless = EndlessEntries(one, 0);
    let opts = UnpackOptions {
        max_entries: 1000,
        ..Default::default()
    };
    let err = unpack_layer(endless, &s.dest, &opts).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooManyEntries { limit: 1000 }),
        "{err}"
    );

    // A file that claims to be huge is refused before any data is written.
    let s = Scene::new();
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_size(1 << 40);
    h.set_path("huge").unwrap();
    h.set_cksum();
    let stream = io::Cursor::new(h.as_bytes().to_vec()).chain(io::repeat(0));
    let err = unpack_layer(stream, &s.dest, &UnpackOptions::default()).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    assert!(!exists(&s.at("huge")));
}

/// Repeats one header+data block pair forever.
struct EndlessEntries(Vec<u8>, usize);
impl Read for EndlessEntries {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.0.len() - self.1);
        buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 = (self.1 + n) % self.0.len();
        Ok(n)
    }
}
