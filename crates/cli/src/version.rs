//! `rkt version`.

use std::process::ExitCode;

/// The appc spec version whose formats rkt reads.
const APPC_VERSION: &str = "0.8.11";
/// The OCI image-spec version whose formats rkt reads.
const OCI_IMAGE_SPEC_VERSION: &str = "1.1.0";

/// Prints the versions, in rkt's `Key: value` lines.
pub fn run() -> anyhow::Result<ExitCode> {
    println!("rkt Version: {}", env!("CARGO_PKG_VERSION"));
    println!("appc Version: {APPC_VERSION}");
    println!("OCI image-spec Version: {OCI_IMAGE_SPEC_VERSION}");
    println!("Features: -TPM -SDJOURNAL");
    Ok(ExitCode::SUCCESS)
}
