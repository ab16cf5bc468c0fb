#!/usr/bin/env bash
# Starting a pod on a network from a stored image, in one run with podman on its default network:
#   rkt          rkt run --net=default IMAGE --exec /bin/true (rkt's default CNI network: ptp +
#                host-local 172.16.28.0/24 + portmap; netns, ADD before the app, DEL after it)
#   podman       podman run --rm --network=bridge of the same image (podman's default network:
#                CNI bridge + host-local 10.88.0.0/16 + portmap + firewall + tuning)
#   rkt-none     rkt run --net=none: reference, so the cost of the network itself shows
#   podman-none  podman run --rm --network=none: the same reference for podman
# then rkt / podman on the network (the issue's target: at most 1/3).
#
# Network safety: nothing here touches this machine's own network namespace. Every rkt and
# podman command (setup, benchmark, clean-up) runs inside a throwaway namespace made here
# (`ip netns add`, only lo, no default route), entered with `nsenter --net` (not `ip netns exec`,
# which remounts /sys and hides the cgroup hierarchies the pods need), so veths, bridges, routes
# and NAT rules land there and lead nowhere; the namespace is deleted on exit.
# Usage: benches/net.sh   (RUNS=N, default 30)
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-30}

command -v runc >/dev/null && command -v nsenter >/dev/null && command -v ip >/dev/null &&
  command -v iptables >/dev/null && [ -x /usr/lib/cni/ptp ] && [ -x /usr/lib/cni/bridge ] || {
  echo "benches: runc, nsenter, ip, iptables and the CNI plugins are needed; run scripts/install.sh --bench" >&2
  exit 1; }

NETNS=rkt-bench-$$
in_ns() { nsenter --net="/run/netns/$NETNS" "$@"; }
STORE="$WORK/rkt"
PODMAN=
HAD_CNI_DIR=0; [ -e /var/lib/cni ] && HAD_CNI_DIR=1
net_cleanup() {
  set +e
  if [ -e "/run/netns/$NETNS" ]; then
    # Pods of an interrupted run: kill their stage1, then let gc run the CNI DEL in the
    # namespace that holds their host side.
    for pid in $(pgrep -f "rkt-stage1 run --pod-dir $WORK/" || true); do kill -KILL "$pid" 2>/dev/null; done
    [ -d "$STORE" ] && in_ns "$RKT" --dir "$STORE" gc --grace-period=0s >/dev/null 2>&1
    [ -n "$PODMAN" ] && in_ns $PODMAN rm -af -t 0 >/dev/null 2>&1
    ip netns del "$NETNS"
  fi
  # Only empty directories: never anyone else's leases or results.
  [ "$HAD_CNI_DIR" = 1 ] || rmdir /var/lib/cni/results /var/lib/cni/networks /var/lib/cni 2>/dev/null
  cleanup
}
trap net_cleanup EXIT

ip netns add "$NETNS"
ip -n "$NETNS" link set lo up

busybox=$("$FIXTURES" build --print-paths | sed -n '/"busybox": {/,/"tag"/p' | sed -n 's/.*"path": "\([^"]*\)".*/\1/p' | head -1)
[ -d "$busybox" ] || { echo "benches: busybox fixture not found" >&2; exit 1; }

# rkt: the image in a store of its own.
in_ns "$RKT" --dir "$STORE" --insecure-options=image fetch "oci:$busybox:latest" >/dev/null
# podman: its own storage; runc as its runtime (its default crun refuses this machine's hybrid
# cgroups), and no raised rlimits (root here lacks CAP_SYS_RESOURCE), as in run.sh. Its default
# network is the packaged one (/etc/cni/net.d/87-podman-bridge.conflist), copied into a private
# config dir only to keep its host-local leases under $WORK instead of the host-wide
# /var/lib/cni/networks (libcni's result cache, /var/lib/cni/results, cannot be moved; it is
# empty again after each --rm and removed below if this run created it).
PODMAN_NET=/etc/cni/net.d/87-podman-bridge.conflist
[ -f "$PODMAN_NET" ] || { echo "benches: $PODMAN_NET (podman's default network) is missing" >&2; exit 1; }
mkdir -p "$WORK/podman-net"
sed "s|\"type\": \"host-local\",|&\n        \"dataDir\": \"$WORK/podman-ipam\",|" "$PODMAN_NET" \
  >"$WORK/podman-net/87-podman-bridge.conflist"
grep -q '"dataDir"' "$WORK/podman-net/87-podman-bridge.conflist" || {
  echo "benches: cannot set host-local's dataDir in $PODMAN_NET" >&2; exit 1; }
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
PODMAN="podman --root $WORK/podman/root --runroot $WORK/podman/run --storage-driver overlay \
--events-backend none --cgroup-manager cgroupfs --runtime runc --network-config-dir $WORK/podman-net"
IMAGE_ID=$(in_ns $PODMAN pull -q "oci:$busybox:latest")

# One run of each first, so a broken network fails here with its message, not inside hyperfine,
# and the pods' addresses show that each really got its network.
show_eth0='ip -4 -o addr show eth0 | { read -r _ _ _ a _; echo "$a"; }'
echo "rkt pod on eth0:    $(in_ns "$RKT" --dir "$STORE" run --net=default localhost/busybox:latest \
  --exec /bin/sh -- -c "$show_eth0")"
echo "podman ctr on eth0: $(in_ns $PODMAN run --rm --pull=never --network=bridge \
  --entrypoint /bin/sh "$IMAGE_ID" -c "$show_eth0")"

echo "== run IMAGE --exec /bin/true on the engine's default network (inside netns $NETNS) =="
in_ns hyperfine --runs "$RUNS" --warmup 3 -N --export-json "$WORK/net.json" \
  -n rkt "$RKT --dir $STORE run --net=default localhost/busybox:latest --exec /bin/true" \
  -n podman "$PODMAN run --rm --pull=never --network=bridge --entrypoint /bin/true $IMAGE_ID" \
  -n rkt-none "$RKT --dir $STORE run --net=none localhost/busybox:latest --exec /bin/true" \
  -n podman-none "$PODMAN run --rm --pull=never --network=none --entrypoint /bin/true $IMAGE_ID"
ratio_table "$WORK/net.json" rkt
# Means as ratio_table prints them, and medians and minimums, which a loaded machine's outliers
# move less.
awk '
  /"command":/ { gsub(/.*"command": "|",$/, ""); cmd=$0 }
  /"mean":/    { gsub(/.*"mean": |,$/, ""); mean[cmd]=$0 }
  /"median":/  { gsub(/.*"median": |,$/, ""); med[cmd]=$0 }
  /"min":/     { gsub(/.*"min": |,$/, ""); min[cmd]=$0 }
  END {
    printf "\nrkt / podman on the network: %.2f (means), %.2f (medians), %.2f (minimums); target: at most 0.33\n",
      mean["rkt"] / mean["podman"], med["rkt"] / med["podman"], min["rkt"] / min["podman"]
    printf "cost of the network (median, vs --net=none): rkt %+.3f s, podman %+.3f s\n",
      med["rkt"] - med["rkt-none"], med["podman"] - med["podman-none"]
  }' "$WORK/net.json"
