//! Removing a pod directory's contents without ever leaving it.
//!
//! The walk goes by directory fds: every directory is opened with `O_NOFOLLOW | O_DIRECTORY`
//! relative to its parent's fd, and every entry is removed with `unlinkat` in that fd. A
//! symlink is removed as a link, never followed, even if something swaps a directory for a
//! symlink during the walk. A directory on another mount (a leftover bind mount, say) is never
//! entered: its content is not the pod's. Permission bits do not stop root, so read-only
//! directories need nothing special.
//!
//! Depth is bounded only by the filesystem: at most [`MAX_OPEN`] directory fds are kept open
//! (the shallowest are closed first). A directory whose fd was closed is reopened on the way
//! back up as `..` of the child just emptied, checking that it is still the inode seen on the
//! way down.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, StatxFlags};
use rustix::io::Errno;
use uuid::Uuid;

use crate::error::{IoContext, PodError};
use crate::fsx;

/// Directory fds kept open during a removal, besides the root's.
pub(crate) const MAX_OPEN: usize = 64;

struct Frame {
    fd: Option<OwnedFd>,
    /// Name in the parent (empty for the root).
    name: CString,
    dev: u64,
    ino: u64,
    /// Subdirectories still to remove.
    subdirs: Vec<CString>,
}

struct Walk<'a> {
    uuid: Uuid,
    root_path: &'a Path,
    mnt_id: u64,
    stack: Vec<Frame>,
    open: usize,
}

/// Removes everything inside the directory open as `root` (which stays).
pub(crate) fn remove_contents(
    root: BorrowedFd<'_>,
    root_path: &Path,
    uuid: Uuid,
) -> Result<(), PodError> {
    let fd = rustix::io::dup(root).ctx("duplicate fd of", root_path)?;
    let st = rustix::fs::fstat(&fd).ctx("stat", root_path)?;
    let mut w = Walk {
        uuid,
        root_path,
        mnt_id: mount_id(fd.as_fd()).ctx("stat", root_path)?,
        stack: vec![Frame {
            fd: Some(fd),
            name: CString::default(),
            dev: st.st_dev,
            ino: st.st_ino,
            subdirs: Vec::new(),
        }],
        open: 0,
    };
    w.scan_top()?;
    loop {
        let depth = w.stack.len() - 1;
        if let Some(child) = w.stack[depth].subdirs.pop() {
            w.descend(child)?;
        } else if depth == 0 {
            return Ok(());
        } else {
            let done = w.stack.pop().expect("depth > 0");
            let done_fd = done.fd.expect("the top frame's fd is never closed");
            w.open -= 1;
            if w.stack[depth - 1].fd.is_none() {
                w.reopen_parent(&done_fd)?;
            }
            drop(done_fd);
            let parent = w.fd(depth - 1);
            match rustix::fs::unlinkat(parent, done.name.as_c_str(), AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::BUSY) => return Err(w.mount_point(Some(&done.name))),
                Err(e) => return Err(PodError::io("remove", &w.path(Some(&done.name)), e)),
            }
        }
    }
}

fn mount_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID).map(|s| s.stx_mnt_id)
}

impl Walk<'_> {
    fn fd(&self, i: usize) -> BorrowedFd<'_> {
        self.stack[i]
            .fd
            .as_ref()
            .expect("the top frame and the root are always open")
            .as_fd()
    }

    /// The path of the top frame's directory, plus `child` if given. For messages only, and
    /// built only when needed: it costs O(depth).
    fn path(&self, child: Option<&CStr>) -> PathBuf {
        let mut p = self.root_path.to_owned();
        for f in &self.stack[1..] {
            p.push(std::ffi::OsStr::from_bytes(f.name.as_bytes()));
        }
        if let Some(c) = child {
            p.push(std::ffi::OsStr::from_bytes(c.to_bytes()));
        }
        p
    }

    fn mount_point(&self, child: Option<&CStr>) -> PodError {
        PodError::MountPoint {
            uuid: self.uuid,
            path: self.path(child),
        }
    }

    /// Removes every non-directory in the top frame and records its subdirectories.
    fn scan_top(&mut self) -> Result<(), PodError> {
        let top = self.stack.len() - 1;
        let fd = self.fd(top);
        let err = |action, name: Option<&CStr>, e: Errno| PodError::io(action, &self.path(name), e);
        let dir = rustix::fs::Dir::read_from(fd).map_err(|e| err("read directory", None, e))?;
        let mut subdirs = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| err("read directory", None, e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => {
                    match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => FileType::from_raw_mode(st.st_mode),
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(err("stat", Some(name), e)),
                    }
                }
                k => k,
            };
            if kind == FileType::Directory {
                subdirs.push(name.to_owned());
                continue;
            }
            match rustix::fs::unlinkat(fd, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                // Replaced by a directory since readdir: handle it as one.
                Err(Errno::ISDIR) => subdirs.push(name.to_owned()),
                Err(Errno::BUSY) => return Err(self.mount_point(Some(name))),
                Err(e) => return Err(err("remove", Some(name), e)),
            }
        }
        self.stack[top].subdirs = subdirs;
        Ok(())
    }

    /// Enters `child` of the top frame (whose fd is open) and clears its files.
    fn descend(&mut self, child: CString) -> Result<(), PodError> {
        let top = self.stack.len() - 1;
        let parent = self.fd(top);
        let fd = match fsx::open_dir_at(parent, child.as_c_str()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            // Swapped for a symlink or a file since readdir: remove the entry itself.
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return match rustix::fs::unlinkat(parent, child.as_c_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => Ok(()),
                    Err(e) => Err(PodError::io("remove", &self.path(Some(&child)), e)),
                };
            }
            Err(e) => return Err(PodError::io("open", &self.path(Some(&child)), e)),
        };
        let stat_err = |e| PodError::io("stat", &self.path(Some(&child)), e);
        if mount_id(fd.as_fd()).map_err(stat_err)? != self.mnt_id {
            return Err(self.mount_point(Some(&child)));
        }
        let st = rustix::fs::fstat(&fd).map_err(stat_err)?;
        self.stack.push(Frame {
            fd: Some(fd),
            name: child,
            dev: st.st_dev,
            ino: st.st_ino,
            subdirs: Vec::new(),
        });
        self.open += 1;
        self.trim();
        self.scan_top()
    }

    /// Closes the shallowest open fds (never the root's nor the top's) until at most
    /// [`MAX_OPEN`] are open.
    fn trim(&mut self) {
        self.trim_keeping(self.stack.len() - 1);
    }

    /// Reopens the top frame's fd, closed by [`Self::trim`], as `..` of its child that was just
    /// emptied, checking that it is still the directory seen on the way down.
    fn reopen_parent(&mut self, child: &OwnedFd) -> Result<(), PodError> {
        let top = self.stack.len() - 1;
        let frame = &self.stack[top];
        let changed = || PodError::Changed {
            uuid: self.uuid,
            path: self.path(None),
        };
        let fd = fsx::open_dir_at(child.as_fd(), c"..").map_err(|_| changed())?;
        let st = rustix::fs::fstat(&fd).map_err(|_| changed())?;
        if st.st_dev != frame.dev || st.st_ino != frame.ino {
            return Err(changed());
        }
        self.stack[top].fd = Some(fd);
        self.open += 1;
        self.trim_keeping(top);
        Ok(())
    }

    /// Closes the shallowest open fds, but not the root's nor frame `keep`'s or deeper ones,
    /// until at most [`MAX_OPEN`] are open.
    fn trim_keeping(&mut self, keep: usize) {
        let mut i = 1;
        while self.open > MAX_OPEN && i < keep {
            if self.stack[i].fd.take().is_some() {
                self.open -= 1;
            }
            i += 1;
        }
    }
}
