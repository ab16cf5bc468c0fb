#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the end-to-end tests that drive the real `rkt`
# binary as root against real components (overlayfs, a loopback docker-registry, …).
# Run scripts/install.sh --tests first (the README's test command does both).
set -euo pipefail
cd "$(dirname "$0")/.."
# The end-to-end tests run target/debug/rkt, so build every binary before testing.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast "$@"
