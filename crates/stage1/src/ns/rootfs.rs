//! An app's root filesystem: the overlayfs of its layer trees, and the `pivot_root` into it.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::sync::ChildError;

/// `OVERLAYFS_SUPER_MAGIC`.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// The option string of an overlayfs mount, and the directory to run `mount(2)` from when the
/// lower dirs had to be made relative to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayOptions {
    /// `lowerdir=…,upperdir=…,workdir=…`.
    pub data: String,
    /// Where relative lower dirs are relative to.
    pub chdir: Option<PathBuf>,
}

/// Builds the overlayfs options for `layers` (base first, as the request lists them;
/// overlayfs wants the top layer first) over the optional `placeholders` layer (see
/// [`super::placeholders`]), `upper` and `work`, no longer than `limit` bytes with its
/// terminating NUL (`mount(2)` copies one page of options).
///
/// When absolute lower dirs do not fit, they are written relative to their longest common
/// parent and the mount runs from there, as containerd does: a store's layer trees share a
/// long prefix, so many more layers fit. Paths are escaped as overlayfs reads them (`\`
/// before `\`, `,` and `:`).
pub fn overlay_options(
    layers: &[PathBuf],
    placeholders: Option<&Path>,
    upper: &Path,
    work: &Path,
    limit: usize,
) -> Result<OverlayOptions, ChildError> {
    // Always absolute: it is not under the layers' common parent.
    let bottom = placeholders
        .map(|p| format!(":{}", escape(p)))
        .unwrap_or_default();
    let build = |lower: &[String]| {
        format!(
            "lowerdir={}{bottom},upperdir={},workdir={}",
            lower.join(":"),
            escape(upper),
            escape(work)
        )
    };
    let absolute: Vec<String> = layers.iter().rev().map(|l| escape(l)).collect();
    let data = build(&absolute);
    if data.len() < limit {
        return Ok(OverlayOptions { data, chdir: None });
    }
    let common = common_parent(layers);
    let too_long = || {
        ChildError::new("rootfs", "mount overlayfs").message(format!(
            "the {} layer paths do not fit in one mount's {limit}-byte option page, even \
             relative to their common parent; use an image with fewer layers",
            layers.len()
        ))
    };
    let Some(common) = common.filter(|c| c != Path::new("/")) else {
        return Err(too_long());
    };
    let relative: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| {
            let rel = l.strip_prefix(&common).unwrap_or(l);
            if rel.as_os_str().is_empty() {
                ".".to_owned()
            } else {
                escape(rel)
            }
        })
        .collect();
    let data = build(&relative);
    if data.len() < limit {
        Ok(OverlayOptions {
            data,
            chdir: Some(common),
        })
    } else {
        Err(too_long())
    }
}

fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The longest directory that contains every path.
fn common_parent(paths: &[PathBuf]) -> Option<PathBuf> {
    let mut common = paths.first()?.parent()?.to_path_buf();
    for p in &paths[1..] {
        while !p.starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    Some(common)
}

/// Mounts the overlayfs of `layers` (over `placeholders`) at `target` (in the calling
/// process's mount namespace).
pub fn mount_overlay(
    layers: &[PathBuf],
    placeholders: Option<&Path>,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), ChildError> {
    let opts = overlay_options(
        layers,
        placeholders,
        upper,
        work,
        rustix::param::page_size(),
    )?;
    if let Some(dir) = &opts.chdir {
        rustix::process::chdir(dir).map_err(|e| {
            ChildError::new("rootfs", "change to the layers' directory")
                .path(dir)
                .errno(e)
        })?;
    }
    // `volatile` (Linux 5.10): without it, the last unmount of the overlay (the app's mount
    // namespace ending) syncs the whole upper filesystem, the host's data directory: a
    // journal commit on every pod exit, milliseconds on an idle disk and hundreds on a busy
    // one. An app's writable layer is scratch, as in every runtime (durable data belongs in
    // volumes), and nothing ever remounts it (`rkt export` reads the upper dir), so skipping
    // its syncs costs nothing but fsync's guarantee against a host crash inside the rootfs.
    let mount = |data: &str| {
        let data = CString::new(data).map_err(|_| {
            ChildError::new("rootfs", "mount overlayfs").message("a layer path contains a NUL byte")
        })?;
        Ok::<_, ChildError>(rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            MountFlags::NOSUID,
            &*data,
        ))
    };
    let mut result = mount(&format!("{},volatile", opts.data))?;
    if result == Err(rustix::io::Errno::INVAL) {
        // A kernel before 5.10, or an option page one option too short.
        result = mount(&opts.data)?;
    }
    if let Err(e) = result {
        let mut err = ChildError::new("rootfs", "mount overlayfs at")
            .path(target)
            .errno(e);
        // f_type's integer type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let on_overlay =
            rustix::fs::statfs(upper).is_ok_and(|s| s.f_type as i64 == OVERLAYFS_MAGIC);
        if on_overlay {
            err = err.message(format!(
                "{} is itself on overlayfs, which overlayfs refuses as an upper dir; keep \
                 rkt's data directory (--dir) on a regular filesystem such as ext4 or xfs",
                upper.display()
            ));
        } else if let Some(missing) = layers.iter().find(|l| !l.is_dir()) {
            err = err.message(format!("layer {} is missing", missing.display()));
        }
        return Err(err);
    }
    Ok(())
}

/// Builds the overlayfs [`mount_overlay`] would mount, as a detached mount that nothing can
/// reach until [`attach_overlay`] puts it in place. stage1 makes them while its supervisor
/// makes the pod's namespaces, which takes the overlay's own cost (the upper filesystem's
/// checks of the work dir: half a millisecond, more on a busy disk) off every pod's start.
///
/// `None` when this fast way does not apply or fails: a layer path overlayfs would need
/// escaped or that does not fit one option page absolute, a kernel without the new mount API
/// or without `volatile`. The app then mounts with [`mount_overlay`], whose errors say what
/// is wrong.
pub fn detached_overlay(
    layers: &[PathBuf],
    placeholders: Option<&Path>,
    upper: &Path,
    work: &Path,
) -> Option<rustix::fd::OwnedFd> {
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, fsconfig_create, fsconfig_set_flag,
        fsconfig_set_string, fsmount, fsopen,
    };
    fn plain(p: &Path) -> Option<&str> {
        let s = p.to_str()?;
        (!s.contains(['\\', ',', ':'])).then_some(s)
    }
    let mut lower = Vec::with_capacity(layers.len() + 1);
    for l in layers
        .iter()
        .rev()
        .map(PathBuf::as_path)
        .chain(placeholders)
    {
        lower.push(plain(l)?);
    }
    let lower = lower.join(":");
    let (upper, work) = (plain(upper)?, plain(work)?);
    // What mount(2) could take; kernels before 6.5 pass fsconfig's options on as one page.
    if lower.len() + upper.len() + work.len() + 64 > rustix::param::page_size() {
        return None;
    }
    let built = (|| {
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        // As mount(2) names it in the mount table.
        fsconfig_set_string(&fs, "source", "overlay")?;
        fsconfig_set_string(&fs, "lowerdir", lower.as_str())?;
        fsconfig_set_string(&fs, "upperdir", upper)?;
        fsconfig_set_string(&fs, "workdir", work)?;
        // See mount_overlay.
        fsconfig_set_flag(&fs, "volatile")?;
        fsconfig_create(&fs)?;
        fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NOSUID,
        )
    })();
    built
        .inspect_err(|e| tracing::debug!("overlayfs for {upper} not built ahead: {e}"))
        .ok()
}

/// Attaches an overlayfs from [`detached_overlay`] at `target` (in the calling process's
/// mount namespace).
pub fn attach_overlay(mnt: rustix::fd::OwnedFd, target: &Path) -> Result<(), ChildError> {
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| {
        ChildError::new("rootfs", "attach the overlayfs at")
            .path(target)
            .errno(e)
    })
}

/// Opens the mounted rootfs: the base every other path of the app is resolved in.
pub fn open_root(rootfs: &Path) -> Result<rustix::fd::OwnedFd, ChildError> {
    rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ChildError::new("rootfs", "open").path(rootfs).errno(e))
}

/// Makes `root` the root of the calling process's mount namespace and detaches the old root,
/// so nothing outside the rootfs stays reachable (`pivot_root(".", ".")`, as runc does).
pub fn pivot_into(root: rustix::fd::BorrowedFd<'_>, what: &Path) -> Result<(), ChildError> {
    let err = |op: &str| ChildError::new("rootfs", op.to_owned()).path(what);
    rustix::process::fchdir(root).map_err(|e| err("change directory to").errno(e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| err("pivot_root into").errno(e))?;
    // The old root is now stacked under the new one at "."; keep its unmount from
    // propagating anywhere, then detach it.
    rustix::mount::mount_change(
        ".",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| err("make the old root a slave mount").errno(e))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| err("detach the old root from").errno(e))?;
    rustix::process::chdir("/").map_err(|e| err("change directory to / in").errno(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_list_the_top_layer_first_and_escape_separators() {
        let layers = vec![PathBuf::from("/s/base"), PathBuf::from("/s/a,b:c")];
        let opts = |placeholders: Option<&Path>| {
            overlay_options(
                &layers,
                placeholders,
                Path::new("/p/up"),
                Path::new("/p/work"),
                4096,
            )
            .unwrap()
        };
        let o = opts(None);
        assert_eq!(
            o.data,
            r"lowerdir=/s/a\,b\:c:/s/base,upperdir=/p/up,workdir=/p/work"
        );
        assert_eq!(o.chdir, None);
        // The placeholder layer goes under the image's.
        assert_eq!(
            opts(Some(Path::new("/run/ph"))).data,
            r"lowerdir=/s/a\,b\:c:/s/base:/run/ph,upperdir=/p/up,workdir=/p/work"
        );
    }

    #[test]
    fn long_layer_lists_become_relative_to_their_common_parent() {
        let store = format!("/var/lib/rkt/{}/layers", "x".repeat(60));
        let layers: Vec<PathBuf> = (0..40)
            .map(|i| PathBuf::from(format!("{store}/sha256-{i:064}")))
            .collect();
        let ph = Some(Path::new("/run/rkt/placeholders/v1"));
        let o = overlay_options(&layers, ph, Path::new("/p/up"), Path::new("/p/w"), 4096).unwrap();
        assert_eq!(o.chdir.as_deref(), Some(Path::new(&store)));
        assert!(o.data.starts_with(&format!("lowerdir=sha256-{:064}:", 39)));
        // Still absolute, at the bottom.
        assert!(
            o.data
                .contains(&format!("sha256-{:064}:/run/rkt/placeholders/v1,", 0))
        );
        assert!(o.data.len() < 4096);
        // Too many even so.
        let layers: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("{store}/sha256-{i:064}")))
            .collect();
        let e = overlay_options(&layers, None, Path::new("/p/up"), Path::new("/p/w"), 4096);
        assert!(e.unwrap_err().to_string().contains("fewer layers"));
        // Layers with nothing in common but / cannot be shortened.
        let layers: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/{i:0100}")))
            .collect();
        assert!(overlay_options(&layers, None, Path::new("/u"), Path::new("/w"), 4096).is_err());
    }

    #[test]
    fn common_parent_is_a_directory_prefix() {
        let p = |v: &[&str]| common_parent(&v.iter().map(PathBuf::from).collect::<Vec<_>>());
        assert_eq!(p(&["/a/bc/1", "/a/bd/2"]), Some("/a".into()));
        assert_eq!(p(&["/a/b/1", "/a/b/2"]), Some("/a/b".into()));
        assert_eq!(p(&["/x/1", "/y/2"]), Some("/".into()));
    }
}
