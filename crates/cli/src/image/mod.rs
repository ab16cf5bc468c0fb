//! `rkt image …`: operate on the store.

mod cat_manifest;
mod export;
mod extract;
mod gc;
mod list;
mod rm;
mod verify;

use std::process::ExitCode;

use clap::Subcommand;

use crate::global::GlobalArgs;

/// The image verbs.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the images in the store.
    List(list::ListArgs),
    /// Remove images from the store (their data goes at the next `rkt image gc`).
    Rm(rm::RmArgs),
    /// Remove blobs and layer trees that no image uses any more.
    Gc(gc::GcArgs),
    /// Print an image's manifest.
    CatManifest(cat_manifest::CatManifestArgs),
    /// Write an image out: as an OCI archive, or as an ACI (appc images).
    Export(export::ExportArgs),
    /// Write an image's flattened filesystem (and manifest) into a directory.
    Extract(extract::ExtractArgs),
    /// Write an image's filesystem as an app would see it into a directory.
    Render(extract::ExtractArgs),
    /// Re-hash stored layer trees and blobs and compare them with what was recorded.
    Verify(verify::VerifyArgs),
}

/// Runs an image verb.
pub fn run(g: &GlobalArgs, c: ImageCommand) -> anyhow::Result<ExitCode> {
    match c {
        ImageCommand::List(a) => list::run(g, a),
        ImageCommand::Rm(a) => rm::run(g, a),
        ImageCommand::Gc(a) => gc::run(g, a),
        ImageCommand::CatManifest(a) => cat_manifest::run(g, a),
        ImageCommand::Export(a) => export::run(g, a),
        ImageCommand::Extract(a) | ImageCommand::Render(a) => extract::run(g, a),
        ImageCommand::Verify(a) => verify::run(g, a),
    }
}
