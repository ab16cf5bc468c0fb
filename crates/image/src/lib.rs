//! Image formats and safe layer unpacking. No network: everything here reads from `Read`ers
//! and writes into directories the caller owns.
//!
//! Two halves:
//! - extraction: [`compress`] (detect and decode gzip/zstd/bzip2/xz), [`hashio`] (hash and bound
//!   a stream), [`unpack`] (a layer tar into its own tree, overlay-style whiteouts, every path
//!   resolved inside the tree), [`treehash`] (the recorded hash of an unpacked tree),
//!   [`render`] (flatten layer trees into one directory);
//! - formats: [`layout`] (OCI image layout directories and archives), [`docker_archive`]
//!   (`docker save`), [`aci`] (appc ACIs), [`detect`] (what a local file is), [`export`]
//!   (write OCI archives and ACIs), [`platform`] (choose an index entry).
#![forbid(unsafe_code)]

pub mod aci;
pub mod compress;
pub mod detect;
pub mod docker_archive;
pub mod export;
pub mod hashio;
pub mod layout;
pub mod platform;
pub mod render;
pub mod treehash;
pub mod unpack;

pub use compress::Compression;
pub use render::{RenderError, RenderOptions, RenderReport, render};
pub use treehash::{TreeHashError, hash_tree};
pub use unpack::{LayerLayout, UnpackError, UnpackOptions, UnpackReport, unpack_layer};
