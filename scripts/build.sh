#!/usr/bin/env bash
# Builds the release binaries as rkt runs them: every binary of the workspace in
# target/release, then rkt-stage1 again as a static PIE in its place.
#
# Why static: stage1 is exec'd on every pod start, and a dynamically linked one spends about
# half a millisecond of it in the loader (three libraries mapped, ~140 symbols bound, ~50 more
# page faults). It uses nothing from glibc that needs the shared libraries at run time (no
# NSS, no dlopen), so linking glibc in statically changes nothing else. The other binaries
# stay dynamic: rkt resolves registry host names through glibc's NSS.
#
# crt-static is a per-target flag that proc macros cannot be built with, so stage1 is built
# for the host triple named explicitly (cargo then applies RUSTFLAGS to target code only),
# in target/<triple>/release, and copied next to rkt, where rkt looks for it first.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bins
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release -p rkt-stage1 --bin rkt-stage1 --target "$host"
# (A later plain `cargo build --release` links the dynamic one back in; run this again.)
install -m 0755 "target/$host/release/rkt-stage1" target/release/rkt-stage1
