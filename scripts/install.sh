#!/usr/bin/env bash
# Installs what rkt needs on a Debian (bookworm) machine, as root.
#
#   scripts/install.sh            what the main job needs: build tools and the image fixtures'
#                                 ingredients (busybox-static, docker-registry for a loopback registry)
#   scripts/install.sh --tests    also what the test suite needs
#   scripts/install.sh --bench    also the peers the benchmarks compare against
#
# System packages come only from here, never installed by hand, so a fresh machine and CI get
# exactly what a developer's machine has.
set -euo pipefail

want_tests=0 want_bench=0
for a in "$@"; do
  case "$a" in
    --tests) want_tests=1 ;;
    --bench) want_bench=1 ;;
    *) echo "usage: $0 [--tests] [--bench]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

pkgs=(
  ca-certificates git gcc libc6-dev  # building rkt
  busybox-static                     # the busybox fixture images
  docker-registry                    # a real distribution v2 registry, run on loopback only
  iproute2 util-linux                # namespaces for tests and demos
  containernetworking-plugins        # CNI plugins (/usr/lib/cni): rkt run's default network
  iptables                           # run by the portmap and masquerading CNI plugins
)
if [ "$want_tests" = 1 ]; then
  pkgs+=(xz-utils bzip2 zstd)
  pkgs+=(skopeo)                     # an independent client that checks fixtures and registry
  pkgs+=(openssl)                    # s_server: a TLS peer for the registry client's tests
  pkgs+=(containernetworking-plugins iptables)  # rkt-net's tests run the real plugins
  pkgs+=(systemd)                    # systemd-journald and journalctl: app logs in a journal
  # A pure cgroup2 host for the cgroup tests (this machine's layout is hybrid): Debian's kernel
  # booted under qemu (software emulation here) with cgroup v1 switched off. The kernel is
  # unpacked below, not installed; kmod resolves its modules.
  pkgs+=(qemu-system-x86 kmod)
fi
if [ "$want_bench" = 1 ]; then
  pkgs+=(podman skopeo crun runc hyperfine)
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${pkgs[@]}"

# The cgroup2 guest's kernel (tests/src/vm.rs): Debian's current one, unpacked into a cache
# rather than installed, so that on a real machine it changes nothing the machine boots (a
# kernel package would also update the boot loader).
if [ "$want_tests" = 1 ]; then
  kdir=/var/cache/rkt-tests/kernel
  kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)
  [ -n "$kpkg" ] || { echo "install.sh: no kernel package behind linux-image-amd64" >&2; exit 1; }
  if [ ! -f "$kdir/$kpkg.unpacked" ]; then
    rm -rf "$kdir" && mkdir -p "$kdir"
    ktmp=$(mktemp -d)
    (cd "$ktmp" && apt-get download -q "$kpkg")
    dpkg-deb -x "$ktmp"/*.deb "$kdir"
    rm -rf "$ktmp"
    for mods in "$kdir"/lib/modules/* "$kdir"/usr/lib/modules/*; do
      [ -d "$mods" ] && depmod -b "$kdir" "$(basename "$mods")"
    done
    touch "$kdir/$kpkg.unpacked"
  fi
fi

# The registry package ships a service that would listen on all interfaces; the project only
# ever starts its own instance on loopback, so make sure the packaged one is not running.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: cargo not found; this machine kind ships Rust through rustup (see README)" >&2
  exit 1
fi
