//! Files and directories stage1 makes in the pod directory before it starts anything: each
//! app's overlayfs directories and log directory, `empty` volumes, and the pod's generated
//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`.
//!
//! ```text
//! <pod>/apps/<app>/         mount point of the app's overlayfs (mounted only inside the
//!                           app's own mount namespace)
//! <pod>/apps/<app>/upper    overlayfs upper dir: what the app writes
//! <pod>/apps/<app>/work     overlayfs work dir
//! <pod>/apps/<app>/logs/    current.log (CRI format), current.log.1, .2
//! <pod>/volumes/<name>/     an `empty` volume, shared by the apps that mount it
//! <pod>/stage1/             hostname, hosts, resolv.conf bound into the apps
//! ```

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::abi::{RunRequest, VolumeKind};
use crate::ns::error::Stage1Error;

/// Paths inside one pod directory.
#[derive(Debug, Clone)]
pub struct PodPaths {
    root: PathBuf,
}

impl PodPaths {
    /// The pod directory `root` (absolute).
    pub fn new(root: PathBuf) -> Self {
        PodPaths { root }
    }

    /// The pod directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `apps/<app>`.
    pub fn app(&self, app: &str) -> PathBuf {
        self.root.join("apps").join(app)
    }

    /// `apps/<app>/upper`.
    pub fn upper(&self, app: &str) -> PathBuf {
        self.app(app).join("upper")
    }

    /// `apps/<app>/work`.
    pub fn work(&self, app: &str) -> PathBuf {
        self.app(app).join("work")
    }

    /// `apps/<app>/logs`.
    pub fn logs(&self, app: &str) -> PathBuf {
        self.app(app).join("logs")
    }

    /// `volumes/<name>`.
    pub fn volume(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    /// `stage1/<file>`, a generated `/etc` file (stage1/ already exists: stage0 puts the
    /// request there).
    pub fn etc(&self, file: &str) -> PathBuf {
        self.root.join("stage1").join(file)
    }
}

/// Where an app's `/etc/hosts` or `/etc/resolv.conf` comes from (rkt-reference §1.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcSource {
    /// Bind this file, generated in the pod directory, over the app's (writable).
    Pod(PathBuf),
    /// Bind the host's file, read-only (`--hosts-entry=host`, `--dns=host`).
    Host(PathBuf),
    /// Keep the image's own file (or a volume mounted there); if the app has none, bind this
    /// generated fallback.
    ImageOr(PathBuf),
    /// Keep the image's own file, or have none.
    Image,
}

/// The pod's `/etc` files, as the apps get them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    /// Always generated from the request's hostname.
    pub hostname: PathBuf,
    /// `/etc/hosts`.
    pub hosts: EtcSource,
    /// `/etc/resolv.conf`.
    pub resolv_conf: EtcSource,
    /// The placeholder layer under the apps' images, when it could be made (see
    /// [`add_placeholders`]).
    pub placeholders: Option<PathBuf>,
}

/// Makes every directory and file of the table above.
pub fn prepare(paths: &PodPaths, req: &RunRequest) -> Result<EtcFiles, Stage1Error> {
    for app in &req.apps {
        for dir in [
            paths.upper(&app.name),
            paths.work(&app.name),
            paths.logs(&app.name),
        ] {
            mkdir_p(&dir, 0o755)?;
        }
    }
    for v in &req.volumes {
        if let VolumeKind::Empty { mode, uid, gid } = &v.kind {
            let dir = paths.volume(&v.name);
            mkdir_p(&dir, 0o755)?;
            std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
                .map_err(|e| Stage1Error::sys(format!("chown {}", dir.display()), e))?;
            // After chown, which clears set-id bits.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(*mode & 0o7777))
                .map_err(|e| Stage1Error::sys(format!("chmod {}", dir.display()), e))?;
        }
    }
    // stage1/ exists: the request was read from it.
    let hostname = paths.etc("hostname");
    write(&hostname, &format!("{}\n", req.hostname))?;
    let hosts = if req.hosts_from_host {
        EtcSource::Host("/etc/hosts".into())
    } else {
        let file = paths.etc("hosts");
        match &req.hosts {
            Some(text) => {
                write(&file, text)?;
                EtcSource::Pod(file)
            }
            None => {
                write(&file, &hosts_stub(&req.hostname))?;
                EtcSource::ImageOr(file)
            }
        }
    };
    let resolv_conf = if req.resolv_conf_from_host {
        EtcSource::Host("/etc/resolv.conf".into())
    } else if let Some(text) = &req.resolv_conf {
        let file = paths.etc("resolv.conf");
        write(&file, text)?;
        EtcSource::Pod(file)
    } else {
        EtcSource::Image
    };
    Ok(EtcFiles {
        hostname,
        hosts,
        resolv_conf,
        placeholders: None,
    })
}

/// Sets the placeholder layer that matches the pod's final `/etc` files (after the network's
/// DNS settings). Without one (`/run` not writable), apps' mount points are created in their
/// upper dirs as before.
pub fn add_placeholders(etc: &mut EtcFiles) {
    let with_resolv_conf = matches!(etc.resolv_conf, EtcSource::Pod(_) | EtcSource::Host(_));
    match super::placeholders::layer(with_resolv_conf) {
        Ok(dir) => etc.placeholders = Some(dir),
        Err(e) => tracing::debug!(
            "no placeholder layer in {}: {e}",
            super::placeholders::PLACEHOLDER_DIR
        ),
    }
}

/// The fallback `/etc/hosts` of an image that has none.
fn hosts_stub(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost localhost.localdomain {hostname}\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
}

fn mkdir_p(dir: &Path, mode: u32) -> Result<(), Stage1Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| Stage1Error::sys(format!("create directory {}", dir.display()), e))
}

/// Writes a generated pod file.
pub(super) fn write(path: &Path, text: &str) -> Result<(), Stage1Error> {
    std::fs::write(path, text).map_err(|e| Stage1Error::sys(format!("write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::abi::{NetMode, Volume};

    #[test]
    fn the_layout_and_etc_sources_follow_the_request() {
        let dir = tempfile::tempdir().unwrap();
        // As stage0 leaves it: the request in stage1/.
        std::fs::create_dir(dir.path().join("stage1")).unwrap();
        let paths = PodPaths::new(dir.path().to_owned());
        let mut req = RunRequest {
            version: 1,
            uuid: "u".into(),
            hostname: "pod1".into(),
            debug: false,
            net: NetMode::None,
            ipc_host: false,
            hosts: None,
            resolv_conf: Some("nameserver 127.0.0.53\n".into()),
            hosts_from_host: false,
            resolv_conf_from_host: false,
            ignore_network_dns: false,
            interactive: false,
            volumes: vec![Volume {
                name: "scratch".into(),
                kind: VolumeKind::Empty {
                    mode: 0o1777,
                    uid: 1000,
                    gid: 100,
                },
            }],
            apps: vec![crate::ns::request::tests::app("web")],
        };
        let etc = prepare(&paths, &req).unwrap();
        assert!(paths.upper("web").is_dir() && paths.logs("web").is_dir());
        let meta = std::fs::metadata(paths.volume("scratch")).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (0o1777, 1000, 100)
        );
        assert_eq!(std::fs::read_to_string(&etc.hostname).unwrap(), "pod1\n");
        assert_eq!(etc.hosts, EtcSource::ImageOr(paths.etc("hosts")));
        assert!(
            std::fs::read_to_string(paths.etc("hosts"))
                .unwrap()
                .contains("localhost localhost.localdomain pod1")
        );
        assert_eq!(etc.resolv_conf, EtcSource::Pod(paths.etc("resolv.conf")));
        req.hosts_from_host = true;
        req.resolv_conf = None;
        let etc = prepare(&paths, &req).unwrap();
        assert_eq!(etc.hosts, EtcSource::Host("/etc/hosts".into()));
        assert_eq!(etc.resolv_conf, EtcSource::Image);
    }
}
