#!/usr/bin/env bash
# Builds the release binaries as rkt runs them, statically linked position-independent
# executables (glibc's static-pie), into target/release.
#
# Why static: `rkt` and `rkt-stage1` are exec'd on every pod start, and a dynamically linked
# binary spends about half a millisecond of each start in the loader (libraries mapped, a few
# hundred symbols bound, more page faults): measured, `rkt version` 1.80 -> 1.33 ms, and
# stage1's start 0.9 -> 0.45 ms of CPU. PIE keeps address-space randomisation. Neither binary
# needs what static glibc cannot do alone: stage1 uses no NSS and no dlopen; rkt resolves
# registry host names with getaddrinfo, whose `files` and `dns` sources are built into glibc
# (2.34 and later) and so into the static binary; another source named in nsswitch.conf
# (mdns, resolve, ...) is loaded as the shared libc would load it, which needs the machine's
# glibc to be the one rkt was built with, as it is when rkt is built where it runs.
#
# crt-static is a per-target flag that proc macros cannot be built with, so the binaries are
# built for the host triple named explicitly (cargo then applies RUSTFLAGS to target code
# only), in target/<triple>/release, and copied to target/release, where rkt looks for its
# stage1 next to itself. (A later plain `cargo build --release` links dynamic ones back in,
# which work the same, slower; run this again.)
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --bins --target "$host"
mkdir -p target/release
for bin in rkt rkt-stage1 rkt-fixtures; do
  install -m 0755 "target/$host/release/$bin" "target/release/$bin"
done
