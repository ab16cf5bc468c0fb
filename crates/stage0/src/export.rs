//! `rkt export`: an exited app's root filesystem, with the changes the app made to it, as a
//! new image.
//!
//! Nothing is mounted. An app's root was an overlayfs of its image's layer trees with
//! `<pod>/apps/<app>/upper` on top, so the changes *are* the upper dir:
//! - **OCI** ([`ExportFormat::Oci`]): the image's own layer blobs, byte for byte from the store,
//!   plus one new gzip layer made from the upper dir (overlay whiteouts turned into OCI ones by
//!   [`rkt_image::export::upper`]), a config with the new diff id and a history entry, and a
//!   new manifest ([`oci`]). Fetching the archive back shares every original layer in the
//!   store and unpacks only the new one.
//! - **ACI** ([`ExportFormat::Aci`]): the layers and the upper dir flattened into one tree
//!   ([`rkt_image::render`]), written with the image's manifest under a new name ([`aci`]).
//!
//! The pod stays pinned while it is read: its directory is opened and `flock`ed shared, which
//! a running pod (stage1 holds the lock exclusively) refuses and which keeps `rkt rm`/`gc`
//! (exclusive) from deleting it meanwhile; everything is read through that directory fd, so a
//! concurrent `gc` mark moving the pod from `run/` to `exited-garbage/` changes nothing. The
//! store's gc fence is held too, so the image's blobs and trees stay. The output is written to
//! a temporary file beside it and renamed into place only when complete.

mod aci;
mod oci;
mod stubs;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rkt_pod::{PodError, PodHandle, PodState, Pods};
use rkt_stage1::abi::{AppRequest, REQUEST_FILE, RunRequest};
use rkt_store::{Store, StoreError};
use rkt_types::{Digest, DockerRef, ImageFormat, ImageRecord};
use rustix::fs::{FlockOperation, Mode, OFlags};

/// What `rkt export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// An OCI image archive: the image's layers plus one layer of the app's changes.
    Oci,
    /// An uncompressed appc ACI of the flattened root filesystem.
    Aci,
}

/// What to export and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The app; may be left out when the pod has one app.
    pub app: Option<String>,
    /// The file to write.
    pub output: PathBuf,
    /// Replace `output` if it exists.
    pub overwrite: bool,
    /// The format; by default an ACI for an appc image and an OCI archive otherwise.
    pub format: Option<ExportFormat>,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The app exported.
    pub app: String,
    /// The format written.
    pub format: ExportFormat,
    /// The name the new image carries: the OCI ref name (`NAME-export:TAG`) or the ACI name.
    pub name: String,
    /// The new image's id when it is known before import (OCI: the config digest).
    pub image_id: Option<Digest>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The pod, app or output cannot be exported as asked; the message says what to do.
    #[error("{0}")]
    Refused(String),
    /// A pod directory operation failed.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// The image store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the new image failed.
    #[error("cannot write the exported image")]
    Image(#[from] rkt_image::export::ExportError),
    /// Flattening the app's root filesystem (ACI) failed.
    #[error("cannot flatten the app's root filesystem")]
    Render(#[from] rkt_image::RenderError),
    /// A stored or pod document could not be read.
    #[error("{what} is damaged")]
    Document {
        /// Which document.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file could not be read or written.
    #[error("cannot {op} {path}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl ExportError {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ExportError {
        let path = path.display().to_string();
        move |source| ExportError::Io { op, path, source }
    }
}

/// Exports app `opts.app` of pod `pod` (UUID, prefix or name) to `opts.output`.
pub fn export(
    pods: &Pods,
    store: &Store,
    pod: &str,
    opts: &ExportOptions,
) -> Result<Exported, ExportError> {
    let pinned = PinnedPod::pin(pods, pod)?;
    let req_path = pinned.path.join(REQUEST_FILE);
    let req =
        RunRequest::parse(&std::fs::read(&req_path).map_err(ExportError::io("read", &req_path))?)
            .map_err(|e| ExportError::Document {
            what: format!("the run request of pod {}", pinned.uuid),
            source: Box::new(e),
        })?;
    let app = choose_app(&req, opts.app.as_deref(), &pinned.uuid)?;
    let app_dir = pinned
        .path
        .join(rkt_pod::status::files::APPS_DIR)
        .join(&app.name);
    let started = [
        rkt_pod::status::files::APP_PID,
        rkt_pod::status::files::APP_EXIT,
    ]
    .iter()
    .any(|f| app_dir.join(f).exists());
    let upper = app_dir.join(rkt_pod::status::files::APP_UPPER);
    if !started || !upper.is_dir() {
        return Err(ExportError::Refused(format!(
            "app {} of pod {} never started, so it has no filesystem changes to export",
            app.name, pinned.uuid
        )));
    }

    // Blobs and trees must outlive the reads below, even if the image is removed meanwhile.
    let _fence = store.gc_fence()?;
    let image = image_of(store, app)?;
    let format = opts.format.unwrap_or(match image.format {
        ImageFormat::Appc => ExportFormat::Aci,
        ImageFormat::Oci | ImageFormat::Docker => ExportFormat::Oci,
    });
    let trees = layer_trees(store, &image)?;
    let stubs = stubs::runtime_stubs(&upper, &trees);
    let base_name = image_name(store, &image, app)?;
    let note = format!("rkt export of app {} of pod {}", app.name, pinned.uuid);
    let out = Output::create(&opts.output, opts.overwrite)?;
    let (name, image_id) = match format {
        ExportFormat::Oci => {
            if image.format == ImageFormat::Appc {
                return Err(ExportError::Refused(format!(
                    "app {} runs an appc image, whose layer is an ACI rather than an OCI layer; \
                     export it as an ACI (--format=aci)",
                    app.name
                )));
            }
            let ref_name = oci_ref_name(&base_name);
            let id = oci::write(store, &image, &upper, &stubs, &note, &ref_name, &out)?;
            (ref_name, Some(id))
        }
        ExportFormat::Aci => {
            let manifest = aci::manifest(store, &image, &base_name)?;
            aci::write(&trees, &upper, &stubs, &manifest, &out)?;
            (manifest.name, None)
        }
    };
    out.commit()?;
    Ok(Exported {
        app: app.name.clone(),
        format,
        name,
        image_id,
    })
}

/// An exited pod's directory, open and `flock`ed shared for as long as this lives.
struct PinnedPod {
    /// Keeps the directory and the lock.
    _fd: OwnedFd,
    /// `/proc/self/fd/N`: the directory wherever it moves meanwhile.
    path: PathBuf,
    uuid: rkt_pod::Uuid,
}

impl PinnedPod {
    fn pin(pods: &Pods, query: &str) -> Result<PinnedPod, ExportError> {
        let first = pods.get(query)?;
        check_state(&first)?;
        // A pod moves between state directories on its own; each retry sees it further on.
        for _ in 0..4 {
            let Some(h) = pods.find(first.uuid())? else {
                break;
            };
            check_state(&h)?;
            let fd = match rustix::fs::open(
                h.dir(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(ExportError::io("open", h.dir())(e.into())),
            };
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let now = pods.find(h.uuid())?.unwrap_or(h);
                    check_state(&now)?;
                    return Err(ExportError::Refused(format!(
                        "pod {} is in use by another rkt process (being removed?); try again",
                        now.uuid()
                    )));
                }
                Err(e) => return Err(ExportError::io("lock", h.dir())(e.into())),
            }
            // Locked: it can no longer start or be deleted. Check it is still the pod's
            // directory and in an exported state.
            let Some(now) = pods.find(h.uuid())? else {
                break;
            };
            check_state(&now)?;
            let (a, b) = (
                rustix::fs::fstat(&fd).map_err(|e| ExportError::io("stat", h.dir())(e.into()))?,
                rustix::fs::stat(now.dir()),
            );
            if b.is_ok_and(|b| b.st_ino == a.st_ino && b.st_dev == a.st_dev) {
                let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                return Ok(PinnedPod {
                    _fd: fd,
                    path,
                    uuid: h.uuid(),
                });
            }
        }
        Err(ExportError::Refused(format!(
            "pod {} disappeared while it was being exported",
            first.uuid()
        )))
    }
}

/// Only a pod that ran and exited has an app filesystem to export (rkt's rule).
fn check_state(h: &PodHandle) -> Result<(), ExportError> {
    let uuid = h.uuid();
    let why = match h.state() {
        PodState::Exited | PodState::ExitedGarbage => return Ok(()),
        PodState::Running => format!(
            "pod {uuid} is running; only exited pods can be exported (stop it with `rkt stop \
             {uuid}` or wait for it to exit)"
        ),
        PodState::Embryo | PodState::Preparing | PodState::AbortedPrepare | PodState::Prepared => {
            format!(
                "pod {uuid} is {} and never ran, so it has no filesystem changes to export",
                h.state()
            )
        }
        PodState::ExitedDeleting | PodState::Garbage | PodState::Deleting => {
            format!("pod {uuid} is being removed ({})", h.state())
        }
    };
    Err(ExportError::Refused(why))
}

fn choose_app<'r>(
    req: &'r RunRequest,
    app: Option<&str>,
    uuid: &rkt_pod::Uuid,
) -> Result<&'r AppRequest, ExportError> {
    let names = || {
        req.apps
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match app {
        Some(n) => req.apps.iter().find(|a| a.name == n).ok_or_else(|| {
            ExportError::Refused(format!(
                "pod {uuid} has no app {n:?}; its apps are: {}",
                names()
            ))
        }),
        None => match req.apps.as_slice() {
            [one] => Ok(one),
            _ => Err(ExportError::Refused(format!(
                "pod {uuid} has several apps; choose one with --app ({})",
                names()
            ))),
        },
    }
}

/// The app's image, from the store.
fn image_of(store: &Store, app: &AppRequest) -> Result<ImageRecord, ExportError> {
    let id: Digest = app.image_id.parse().map_err(|e| ExportError::Document {
        what: format!("the image id {:?} of app {}", app.image_id, app.name),
        source: Box::new(e),
    })?;
    store.image(&id)?.ok_or_else(|| {
        ExportError::Refused(format!(
            "the image of app {} ({}, {id}) is no longer in the store; fetch it again and retry",
            app.name, app.image_name
        ))
    })
}

/// The image's layer trees in the store, base first.
fn layer_trees(store: &Store, image: &ImageRecord) -> Result<Vec<PathBuf>, ExportError> {
    image
        .layers
        .iter()
        .map(|l| {
            store.layer_tree(&l.diff_id).ok_or_else(|| {
                ExportError::Refused(format!(
                    "layer {} of image {} is missing from the store; fetch the image again",
                    l.diff_id, image.id
                ))
            })
        })
        .collect()
}

/// The image's first stored `name:tag`, else the name the pod recorded, else
/// `localhost/<app>`.
fn image_name(
    store: &Store,
    image: &ImageRecord,
    app: &AppRequest,
) -> Result<rkt_store::ImageName, ExportError> {
    let stored = store
        .list_images()?
        .into_iter()
        .find(|e| e.id == image.id)
        .and_then(|e| e.names.into_iter().next());
    Ok(
        stored.unwrap_or_else(|| match DockerRef::parse(&app.image_name) {
            Ok(r) if r.digest.is_none() => rkt_store::ImageName::new(r.name(), r.tag_or_latest()),
            _ => rkt_store::ImageName::new(format!("localhost/{}", app.name), "latest"),
        }),
    )
}

/// `NAME-export:TAG`, normalised the Docker way, so a fetch of the archive records it.
fn oci_ref_name(base: &rkt_store::ImageName) -> String {
    let name = format!("{}-export:{}", base.name, base.tag);
    match DockerRef::parse(&name) {
        Ok(r) => format!("{}:{}", r.name(), r.tag_or_latest()),
        // An appc-style name that is no Docker reference.
        Err(_) => format!(
            "localhost/{}-export:latest",
            aci::identifier_part(&base.name)
        ),
    }
}

/// The output file: a temporary file in the same directory until [`Output::commit`].
struct Output {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    overwrite: bool,
}

impl Output {
    fn create(dest: &Path, overwrite: bool) -> Result<Output, ExportError> {
        if !overwrite && std::fs::symlink_metadata(dest).is_ok() {
            return Err(ExportError::Refused(format!(
                "{} already exists; pass --overwrite to replace it",
                dest.display()
            )));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".rkt-export-")
            .tempfile_in(&dir)
            .map_err(ExportError::io("create a file in", &dir))?;
        Ok(Output {
            tmp,
            dest: dest.to_owned(),
            overwrite,
        })
    }

    /// A buffered writer on the temporary file.
    fn writer(&self) -> Result<BufWriter<File>, ExportError> {
        let f = self
            .tmp
            .as_file()
            .try_clone()
            .map_err(ExportError::io("open", self.tmp.path()))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    }

    /// The directory the output goes to, for scratch files.
    fn dir(&self) -> &Path {
        self.tmp.path().parent().unwrap_or(Path::new("."))
    }

    fn commit(self) -> Result<(), ExportError> {
        self.tmp
            .as_file()
            .sync_all()
            .map_err(ExportError::io("write", self.tmp.path()))?;
        let dest = self.dest.clone();
        let done = if self.overwrite {
            self.tmp.persist(&dest)
        } else {
            self.tmp.persist_noclobber(&dest)
        };
        done.map_err(|e| ExportError::io("write", &dest)(e.error))?;
        Ok(())
    }
}

/// Flushes a buffered writer into its file.
fn finish(w: BufWriter<File>, path: &Path) -> Result<(), ExportError> {
    let mut f = w
        .into_inner()
        .map_err(|e| ExportError::io("write", path)(e.into_error()))?;
    f.flush().map_err(ExportError::io("write", path))
}

#[cfg(test)]
mod tests;
