#!/usr/bin/env bash
# Starting a pod from a stored image: `rkt run --net=none IMAGE --exec /bin/true`, in one run
# with its peers, each from what it needs already on disk:
#   floor   unshare --pid --fork --mount --uts --ipc --net chroot ROOTFS /bin/true
#   crun    crun run of a ready OCI bundle (no image handling, no overlay, no store)
#   runc    runc run of the same bundle
#   rkt     rkt run of the image in its store (lookup, pod directory, overlayfs, cgroups,
#           seccomp, caps, masked paths, supervisor, logs, exit status on disk)
#   podman  podman run --rm --network=none of the image in its store
# then the resident memory the engine keeps beside an idle pod (`sleep`): rkt's stage1 and
# pod supervisor against podman's conmon.
# Usage: benches/run.sh   (RUNS=N, default 30)
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-30}

command -v crun >/dev/null && command -v runc >/dev/null || {
  echo "benches: crun and runc are needed; run scripts/install.sh --bench" >&2; exit 1; }

busybox=$("$FIXTURES" build --print-paths | sed -n '/"busybox": {/,/"tag"/p' | sed -n 's/.*"path": "\([^"]*\)".*/\1/p' | head -1)
[ -d "$busybox" ] || { echo "benches: busybox fixture not found" >&2; exit 1; }

# rkt: the image in a store of its own.
STORE="$WORK/rkt"
"$RKT" --dir "$STORE" --insecure-options=image fetch "oci:$busybox:latest" >/dev/null
# crun/runc: a bundle with the same rootfs.
mkdir -p "$WORK/bundle"
"$RKT" --dir "$STORE" image extract --rootfs-only localhost/busybox:latest "$WORK/bundle/rootfs"
(cd "$WORK/bundle" && crun spec)
sed -i 's/"terminal": true/"terminal": false/; s/^\(\s*\)"sh"$/\1"\/bin\/true"/' "$WORK/bundle/config.json"
# podman: its own storage; runc as its runtime (its default crun refuses this machine's hybrid
# cgroups), and no raised rlimits (root here lacks CAP_SYS_RESOURCE).
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
PODMAN="podman --root $WORK/podman/root --runroot $WORK/podman/run --storage-driver overlay \
--events-backend none --cgroup-manager cgroupfs --runtime runc"
IMAGE_ID=$($PODMAN pull -q "oci:$busybox:latest")

# crun (1.8) refuses a hybrid cgroup layout whose cgroup2 has controllers; in a private mount
# namespace without that cgroup2 it runs, as do the others.
inner() {
  if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then umount /sys/fs/cgroup/unified; fi
  hyperfine --runs "$RUNS" --warmup 3 -N --export-json "$WORK/run.json" \
    -n floor "unshare --pid --fork --mount --uts --ipc --net chroot $WORK/bundle/rootfs /bin/true" \
    -n crun "crun run -b $WORK/bundle rkt-bench-crun" \
    -n runc "runc run -b $WORK/bundle rkt-bench-runc" \
    -n rkt "$RKT --dir $STORE run --net=none localhost/busybox:latest --exec /bin/true" \
    -n podman "$PODMAN run --rm --pull=never --network=none --entrypoint /bin/true $IMAGE_ID"
}
# hyperfine times one command after the other, and this VM's speed drifts by 30-50% within
# minutes: rkt against crun and the floor again, the commands alternating run by run.
interleaved() {
  if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then umount /sys/fs/cgroup/unified; fi
  python3 benches/ab.py --vs rkt "$RUNS" \
    "floor=unshare --pid --fork --mount --uts --ipc --net chroot $WORK/bundle/rootfs /bin/true" \
    "crun=crun run -b $WORK/bundle rkt-bench-crun" \
    "rkt=$RKT --dir $STORE run --net=none localhost/busybox:latest --exec /bin/true"
}
export -f inner interleaved
export RUNS WORK STORE RKT PODMAN IMAGE_ID
# This VM's ext4 has no journal: a run within 6 minutes of another (whose cleanup removed
# thousands of files) measures rkt's pods 1.3-1.5x slower (see lib.sh).
sync
wait_for_freed_inodes
echo "== rkt run --net=none IMAGE --exec /bin/true =="
stolen=$(steal_ms)
unshare --mount --propagation private bash -c inner
ratio_table "$WORK/run.json" rkt
echo "CPU time taken by the hypervisor meanwhile: $(( $(steal_ms) - stolen )) ms"
echo
echo "== the same, interleaved run by run =="
stolen=$(steal_ms)
unshare --mount --propagation private bash -c interleaved
echo "CPU time taken by the hypervisor meanwhile: $(( $(steal_ms) - stolen )) ms"
"$RKT" --dir "$STORE" gc --grace-period=0s >/dev/null 2>&1 || true

echo
echo "== memory the engine keeps beside an idle pod =="
rss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
"$RKT" --dir "$STORE" run --net=none --uuid-file-save "$WORK/uuid" localhost/busybox:latest \
  --exec /bin/sleep -- 300 >/dev/null 2>&1 &
RKT_PID=$!
for _ in $(seq 100); do [ -s "$WORK/uuid" ] && break; sleep 0.1; done
"$RKT" --dir "$STORE" status --wait-ready=30s --uuid-file "$WORK/uuid" >/dev/null
SUP=$(cat "$STORE/pods/run/$(cat "$WORK/uuid")/pid")
C=$($PODMAN run -d --pull=never --network=none --entrypoint /bin/sleep "$IMAGE_ID" 300)
CONMON=$($PODMAN inspect -f '{{.State.ConmonPid}}' "$C")
# Idle: both measured after a few quiet seconds (rkt's stage1 and supervisor give back their
# start-up code pages after one).
sleep 3
rkt_kb=$(( $(rss "$RKT_PID") + $(rss "$SUP") ))
conmon_kb=$(rss "$CONMON")
printf "%-28s %8s KiB (PSS)\n" "rkt stage1 + supervisor" "$rkt_kb" "podman conmon" "$conmon_kb"
awk -v a="$rkt_kb" -v b="$conmon_kb" 'BEGIN { printf "rkt / conmon: %.2fx\n", a / b }'
"$RKT" --dir "$STORE" stop --uuid-file "$WORK/uuid" >/dev/null
wait "$RKT_PID" || true
# Its cgroups go with gc: a pod directory removed without it would leave them behind.
"$RKT" --dir "$STORE" gc --grace-period=0s >/dev/null 2>&1 || true
$PODMAN rm -f -t 0 "$C" >/dev/null
