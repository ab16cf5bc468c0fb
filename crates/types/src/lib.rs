//! Validated data types shared by every rkt crate: digests, image references, the OCI, Docker
//! and appc manifest formats, and the one internal image model they all map onto.
//!
//! Nothing here does I/O, so every parser of untrusted input in this crate is a pure function
//! that can be fuzzed directly.
#![forbid(unsafe_code)]

pub mod appc;
pub mod digest;
pub mod error_text;
pub mod image;
pub mod name;
pub mod oci;
pub mod options;
pub mod pod_manifest;
pub mod reference;

pub use digest::{Algorithm, Digest, DigestError};
pub use image::{ImageConfig, ImageFormat, ImageRecord, LayerRecord, Platform};
pub use options::{InsecureOptions, PullPolicy};
pub use reference::{DockerRef, ImageSource, ReferenceError};

/// Upper bound on any manifest, index or config document read from an untrusted source.
///
/// Registries cap manifests at 4 MiB; configs of real images are a few KiB. Anything larger is
/// refused before it is parsed, so a hostile source cannot make us allocate without bound.
pub const MAX_DOCUMENT_BYTES: u64 = 4 << 20;
