//! The test harness: fixture images built from Debian packages, a loopback registry (Debian's
//! `docker-registry`) with TLS, basic and token auth, and a pusher to fill it.
//!
//! Everything here uses real components and only ever listens on or connects to 127.0.0.1.
//!
//! - [`Fixtures::get`]: busybox images in every format rkt reads, adversarial images, and
//!   (lazily, [`Fixtures::large`]) a large multi-layer image with a sibling.
//! - [`registry::Registry::start`]: a registry on a free loopback port, killed on drop.
//! - [`push::Pusher`]: pushes an OCI layout to it.
//! - [`rkt::Rkt`]: runs the real `rkt` binary in a sandbox (own `--dir`, config dirs, `HOME`).
//! - [`journald::with_journald`]: a script in a mount namespace with a real journald of its own.
#![forbid(unsafe_code)]

pub mod compress;
pub mod fixtures;
pub mod journald;
pub mod netns;
pub mod push;
pub mod registry;
pub mod rkt;
pub mod spawn;
pub mod tarw;
pub mod vm;

pub use compress::Compression;
pub use fixtures::{FixtureError, Fixtures};
pub use push::{PushedImage, Pusher};
pub use registry::{Auth, Registry, RegistryOptions};
