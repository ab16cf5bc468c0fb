//! Entry names: normalisation, the ACI `rootfs/` layout, and whiteout markers.

use super::LayerLayout;

/// Linux `NAME_MAX`: longest single path component.
const NAME_MAX: usize = 255;
/// Linux `PATH_MAX` less the terminating NUL: longest path a syscall takes.
const PATH_MAX: usize = 4095;

/// Why an entry name is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameError {
    /// A `..` that would leave the root.
    Escapes,
    /// An embedded NUL byte.
    Nul,
    /// A component longer than `NAME_MAX` or a path longer than `PATH_MAX`.
    TooLong,
}

/// Normalises a tar entry name into components: leading `/` and `./`, empty and `.`
/// components are dropped and `..` removes the previous component. A `..` with nothing left to
/// remove is an error rather than being clamped, since a layer that tries it is broken or
/// hostile. The empty list is the root.
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<&[u8]>, NameError> {
    if raw.contains(&0) {
        return Err(NameError::Nul);
    }
    if raw.len() > PATH_MAX {
        return Err(NameError::TooLong);
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(NameError::Escapes);
                }
            }
            c if c.len() > NAME_MAX => return Err(NameError::TooLong),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Where an entry goes, given the layer's layout.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Place<'a> {
    /// Into the tree, at these components (empty: the tree root).
    Tree(Vec<&'a [u8]>),
    /// The ACI's top-level `manifest`.
    AciManifest,
    /// An ACI top-level entry other than `rootfs` and `manifest`: not part of the image's
    /// filesystem, ignored.
    Outside,
}

/// Maps normalised components onto the tree.
pub(crate) fn place(layout: LayerLayout, comps: Vec<&[u8]>) -> Place<'_> {
    match layout {
        LayerLayout::Oci => Place::Tree(comps),
        LayerLayout::Aci => match comps.first() {
            Some(&b"rootfs") => Place::Tree(comps[1..].to_vec()),
            Some(&b"manifest") if comps.len() == 1 => Place::AciManifest,
            _ => Place::Outside,
        },
    }
}

/// The meaning of an entry's name with respect to OCI whiteouts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Marker<'a> {
    /// An ordinary entry.
    None,
    /// `.wh.NAME`: delete `NAME` from the layers below.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: the containing directory hides the layers below.
    Opaque,
    /// AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`, …) or something inside it: not part
    /// of the image; dropped, as Docker does.
    AufsMeta,
}

const WH: &[u8] = b".wh.";
const WH_META: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";

/// Classifies `comps` (the root is never a marker). A whiteout of an empty name, `.` or `..`,
/// and any path that continues below a `.wh.` component are whiteout tricks and refused; the
/// `Err` says which.
pub(crate) fn marker<'a>(comps: &[&'a [u8]]) -> Result<Marker<'a>, &'static str> {
    let Some((last, parents)) = comps.split_last() else {
        return Ok(Marker::None);
    };
    for p in parents {
        if p.starts_with(WH_META) {
            return Ok(Marker::AufsMeta);
        }
        if p.starts_with(WH) {
            return Err("a path below a whiteout (.wh.) entry");
        }
    }
    if *last == WH_OPAQUE {
        return Ok(Marker::Opaque);
    }
    if last.starts_with(WH_META) {
        return Ok(Marker::AufsMeta);
    }
    match last.strip_prefix(WH) {
        None => Ok(Marker::None),
        Some(b"" | b"." | b"..") => Err("a whiteout of an empty name, '.' or '..'"),
        Some(name) => Ok(Marker::Whiteout(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<Vec<&[u8]>, NameError> {
        normalize(s.as_bytes())
    }

    #[test]
    fn normalises_names() {
        assert_eq!(n("./a/b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert_eq!(n("/etc//passwd").unwrap(), vec![&b"etc"[..], b"passwd"]);
        assert_eq!(n("a/../b").unwrap(), vec![&b"b"[..]]);
        assert!(n("./").unwrap().is_empty());
        assert!(n("").unwrap().is_empty());
        assert_eq!(n("../../etc/x"), Err(NameError::Escapes));
        assert_eq!(n("a/../../x"), Err(NameError::Escapes));
        assert_eq!(n("/.."), Err(NameError::Escapes));
        assert_eq!(normalize(b"a\0b"), Err(NameError::Nul));
        assert_eq!(n(&"x".repeat(256)), Err(NameError::TooLong));
        assert_eq!(n(&"x/".repeat(3000)), Err(NameError::TooLong));
    }

    #[test]
    fn aci_layout() {
        let c = |s: &'static str| normalize(s.as_bytes()).unwrap();
        assert_eq!(
            place(LayerLayout::Aci, c("rootfs/bin/sh")),
            Place::Tree(vec![&b"bin"[..], b"sh"])
        );
        assert_eq!(place(LayerLayout::Aci, c("./rootfs")), Place::Tree(vec![]));
        assert_eq!(place(LayerLayout::Aci, c("manifest")), Place::AciManifest);
        assert_eq!(place(LayerLayout::Aci, c("manifest/x")), Place::Outside);
        assert_eq!(place(LayerLayout::Aci, c("other")), Place::Outside);
        assert_eq!(
            place(LayerLayout::Oci, c("rootfs/x")),
            Place::Tree(vec![&b"rootfs"[..], b"x"])
        );
    }

    #[test]
    fn markers() {
        let m = |s: &'static str| marker(&normalize(s.as_bytes()).unwrap());
        assert_eq!(m("a/b"), Ok(Marker::None));
        assert_eq!(m("a/.wh.b"), Ok(Marker::Whiteout(b"b")));
        assert_eq!(m("a/.wh..wh..opq"), Ok(Marker::Opaque));
        assert_eq!(m(".wh..wh.plnk/123"), Ok(Marker::AufsMeta));
        assert_eq!(m(".wh..wh.aufs"), Ok(Marker::AufsMeta));
        assert!(m("a/.wh.").is_err());
        assert!(m(".wh..").is_err());
        assert!(m(".wh...").is_err());
        assert!(m(".wh.x/y").is_err());
        assert_eq!(m("a.wh.b/c"), Ok(Marker::None));
    }
}
