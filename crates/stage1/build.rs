//! Links `rkt-stage1` as a position-dependent executable.
//!
//! As a PIE, the dynamic loader relocates some 20,000 pointers of stage1's read-only data on
//! every start, each touched page a copy-on-write fault in the sealed memfd copy, and the
//! supervisor and every app child are forked from that dirtied image: about 2 ms of every
//! `rkt run` on a small VM (measured with benches/run.sh). stage1 reads nothing from the
//! network and runs from a sealed copy; `rkt` itself, which parses registry data with C
//! libraries (zstd, SQLite) among others, stays a PIE. See docs/architecture.md.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bin=rkt-stage1=-no-pie");
}
