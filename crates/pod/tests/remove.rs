//! Removing a pod removes only the pod's own files: symlinks out of it are removed as links,
//! read-only and very deep trees go, and another mount inside it is refused.

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{data_dir, open, state_of};
use rkt_pod::{PodError, Pods, Uuid};
use rustix::fs::{Mode, OFlags};

fn exited_pod(pods: &Pods) -> (Uuid, std::path::PathBuf) {
    let pod = pods.create(Some("doomed")).unwrap().into_running().unwrap();
    (pod.uuid(), pod.dir().to_owned())
}

fn remove(pods: &Pods, uuid: Uuid) -> Result<(), PodError> {
    let h = pods.find(uuid).unwrap().unwrap();
    pods.lock_for_delete(&h).unwrap().unwrap().remove()
}

/// Makes `depth` nested directories `dddddddddd/dddddddddd/…` under `base`, with a file at the
/// bottom.
fn deep_tree(base: &Path, depth: usize) {
    let mut fd: OwnedFd =
        rustix::fs::open(base, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&fd, "dddddddddd", Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(
            &fd,
            "dddddddddd",
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
    }
    let f = rustix::fs::openat(
        &fd,
        "bottom",
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    drop(f);
}

#[test]
fn removal_stays_inside_the_pod() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("precious"), b"keep").unwrap();
    std::fs::write(outside.join("sub/also"), b"keep").unwrap();

    let (uuid, dir) = exited_pod(&pods);
    // Symlinks out of the pod, to a directory and to a file, at the top and deeper.
    std::os::unix::fs::symlink(&outside, dir.join("to-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("precious"), dir.join("to-file")).unwrap();
    std::fs::create_dir_all(dir.join("apps/a/upper/etc")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("apps/a/upper/etc/to-dir")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", dir.join("apps/a/upper/up")).unwrap();
    std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();
    // A read-only directory with files, and an unreadable one.
    let ro = dir.join("apps/a/ro");
    std::fs::create_dir_all(ro.join("inner")).unwrap();
    std::fs::write(ro.join("file"), b"x").unwrap();
    std::fs::write(ro.join("inner/file"), b"x").unwrap();
    std::fs::set_permissions(ro.join("inner"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // A fifo and a file with no permissions.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::write(dir.join("secret"), b"x").unwrap();
    std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    // Longer than PATH_MAX (4096 bytes) and deeper than the fds the walk keeps open (64).
    deep_tree(&dir.join("apps/a/upper"), 400);
    // Wide, too.
    std::fs::create_dir(dir.join("wide")).unwrap();
    for i in 0..100 {
        std::fs::create_dir(dir.join(format!("wide/{i}"))).unwrap();
        std::fs::write(dir.join(format!("wide/{i}/f")), b"x").unwrap();
    }

    pods.mark_exited().unwrap();
    remove(&pods, uuid).unwrap();
    assert_eq!(state_of(&pods, uuid), None);
    assert!(!dir.exists());
    assert!(
        !tmp.path()
            .join(format!("pods/exited-garbage/{uuid}"))
            .exists()
    );
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
    assert_eq!(std::fs::read(outside.join("sub/also")).unwrap(), b"keep");
    assert!(tmp.path().join("pods/run").is_dir());
    // The name was released.
    pods.create(Some("doomed")).unwrap();
}

#[test]
fn removal_refuses_a_mount_inside_the_pod() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"keep").unwrap();
    let (uuid, _) = exited_pod(&pods);
    // Marked first, so that the mount point does not move with the pod.
    pods.mark_exited().unwrap();
    let dir = pods.find(uuid).unwrap().unwrap().dir().to_owned();
    let mnt = dir.join("apps/a/mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .arg("--bind")
        .arg(&outside)
        .arg(&mnt)
        .status()
        .expect("run mount(8)");
    assert!(st.success(), "mount --bind needs root");
    let result = remove(&pods, uuid);
    let umount = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(umount.success());
    match result {
        Err(PodError::MountPoint { path, uuid: u }) => {
            assert_eq!(u, uuid);
            assert!(path.ends_with("apps/a/mnt"), "{path:?}");
        }
        other => panic!("expected MountPoint, got {other:?}"),
    }
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
    // Left for the next gc, which succeeds once the mount is gone.
    assert!(state_of(&pods, uuid).is_some());
    remove(&pods, uuid).unwrap();
    assert_eq!(state_of(&pods, uuid), None);
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
}
