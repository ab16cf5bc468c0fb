//! Pod names: `$dir/pods/names/<name>` holds the UUID of the pod that has the name.
//!
//! A reservation is made by `link(2)`ing a complete temp file to the name, which fails if the
//! name exists, so two pods can never both get it and no reader ever sees a half-written
//! reservation. A pod reserves its name only after its directory exists, and releases it only
//! after its directory is gone, so a reservation whose pod is in no state directory is stale
//! (its owner crashed while creating or deleting the pod) and may be taken over. Taking over
//! and releasing happen under `names/.lock`, so neither can remove a reservation that someone
//! else has just made.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use uuid::Uuid;

use crate::error::{IoContext, PodError};
use crate::fsx;
use crate::pods::{Inner, PodHandle};

/// Lock file for taking over stale names and releasing names. ACNames cannot start with a dot,
/// so it cannot collide with a name.
const NAMES_LOCK: &str = ".lock";

/// Checks that `name` is an ACName.
pub(crate) fn validate(name: &str) -> Result<(), PodError> {
    rkt_types::name::validate_ac_name(name).map_err(|source| PodError::InvalidName {
        what: "pod",
        source,
    })
}

/// Who holds `name`: `Ok(None)` if nobody, `Ok(Some(None))` if the reservation is unreadable.
fn holder(inner: &Inner, name: &str) -> Result<Option<Option<Uuid>>, PodError> {
    match fsx::read_small_at(inner.names.as_fd(), &inner.names_path(), name, 64)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| Uuid::parse_str(s.trim()).ok()),
        )),
    }
}

/// The pod that has `name`, if any (a stale reservation counts as none).
pub(crate) fn lookup(inner: &Inner, name: &str) -> Result<Option<PodHandle>, PodError> {
    match holder(inner, name)? {
        Some(Some(uuid)) => inner.find(uuid),
        _ => Ok(None),
    }
}

/// Holds `names/.lock` until dropped.
struct NamesLock(#[allow(dead_code)] OwnedFd);

fn lock_names(inner: &Inner) -> Result<NamesLock, PodError> {
    let path = inner.names_path().join(NAMES_LOCK);
    let fd = rustix::fs::openat(
        &inner.names,
        NAMES_LOCK,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(fsx::FILE_MODE),
    )
    .ctx("open", &path)?;
    fsx::lock_blocking(fd.as_fd()).ctx("lock", &path)?;
    Ok(NamesLock(fd))
}

/// Reserves `name` for the pod `uuid`, whose directory must already exist.
pub(crate) fn reserve(inner: &Inner, name: &str, uuid: Uuid) -> Result<(), PodError> {
    let names_path = inner.names_path();
    let tmp = format!(".tmp-{}", uuid.hyphenated());
    let tmp_path = names_path.join(&tmp);
    let fd = rustix::fs::openat(
        &inner.names,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(fsx::FILE_MODE),
    )
    .ctx("create", &tmp_path)?;
    std::io::Write::write_all(
        &mut File::from(fd),
        uuid.hyphenated().to_string().as_bytes(),
    )
    .ctx("write", &tmp_path)?;
    let result = link_name(inner, &tmp, name, uuid);
    let _ = rustix::fs::unlinkat(&inner.names, tmp.as_str(), AtFlags::empty());
    result
}

fn link_name(inner: &Inner, tmp: &str, name: &str, uuid: Uuid) -> Result<(), PodError> {
    let path = inner.names_path().join(name);
    loop {
        match rustix::fs::linkat(&inner.names, tmp, &inner.names, name, AtFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(PodError::io("reserve the name", &path, e)),
        }
        let seen = holder(inner, name)?;
        if let Some(Some(h)) = seen
            && let Some(pod) = inner.find(h)?
        {
            return Err(PodError::NameTaken {
                name: name.to_owned(),
                holder: h,
                state: pod.state,
            });
        }
        // Stale (or released meanwhile): take it over unless someone else did first.
        let _lock = lock_names(inner)?;
        let now = holder(inner, name)?;
        let still_stale = match now {
            None => false,
            Some(Some(h)) => now == seen && inner.find(h)?.is_none(),
            Some(None) => now == seen,
        };
        if still_stale {
            tracing::info!(name, %uuid, "taking over a stale pod name reservation");
            match rustix::fs::unlinkat(&inner.names, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(PodError::io("remove stale name", &path, e)),
            }
        }
    }
}

/// Releases `name` if the pod `uuid` still holds it.
pub(crate) fn release(inner: &Inner, name: &str, uuid: Uuid) -> Result<(), PodError> {
    if validate(name).is_err() {
        // A damaged `name` file; nothing of ours can be reserved under it.
        return Ok(());
    }
    let _lock = lock_names(inner)?;
    if holder(inner, name)? == Some(Some(uuid)) {
        match rustix::fs::unlinkat(&inner.names, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(PodError::io(
                    "release name",
                    &inner.names_path().join(name),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// Removes reservations and temp files that processes killed halfway through creating or
/// removing a pod left behind: those whose pod is in no state directory. Part of gc's mark
/// phase, so `names/` does not collect debris; `create` would take such names over anyway.
pub(crate) fn sweep_stale(inner: &Inner) -> Result<usize, PodError> {
    let names_path = inner.names_path();
    let dir = rustix::fs::Dir::read_from(&inner.names).ctx("read directory", &names_path)?;
    let mut entries = Vec::new();
    for entry in dir {
        let entry = entry.ctx("read directory", &names_path)?;
        if let Some(name) = fsx::entry_name(entry.file_name()) {
            entries.push(name.to_owned());
        }
    }
    let mut removed = 0;
    for name in entries {
        let stale = if let Some(u) = name.strip_prefix(".tmp-") {
            // A reservation in the making: its pod exists until the creator is done with it.
            match Uuid::parse_str(u) {
                Ok(uuid) => inner.locate(uuid)?.is_none(),
                Err(_) => false,
            }
        } else if validate(&name).is_ok() {
            let seen = holder(inner, &name)?;
            let dead = match seen {
                Some(Some(h)) => inner.find(h)?.is_none(),
                Some(None) => true,
                None => false,
            };
            // Recheck under the lock, as a `create` taking it over would.
            dead && {
                let _lock = lock_names(inner)?;
                holder(inner, &name)? == seen
            }
        } else {
            false
        };
        if stale {
            match rustix::fs::unlinkat(&inner.names, name.as_str(), AtFlags::empty()) {
                Ok(()) => removed += 1,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(PodError::io("remove", &names_path.join(&name), e)),
            }
        }
    }
    Ok(removed)
}
