# Shared set-up for the benchmark scripts: release binaries, a scratch directory on a real
# filesystem, and a loopback registry serving the project's own fixture images.
# Source it; it defines RKT, FIXTURES, WORK, start_registry and the cleanup trap.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

for tool in hyperfine skopeo podman; do
  command -v "$tool" >/dev/null || { echo "benches: $tool is missing; run scripts/install.sh --bench" >&2; exit 1; }
done

# The release binaries as rkt runs them (stage1 linked statically).
./scripts/build.sh >&2
RKT=$ROOT/target/release/rkt
FIXTURES=$ROOT/target/release/rkt-fixtures

# /var/tmp, not /tmp: a store must not sit on tmpfs or overlayfs, and the peers should write to
# the same kind of disk as rkt.
WORK=$(mktemp -d /var/tmp/rkt-bench.XXXXXX)
SERVE_PID=
cleanup() {
  # Pods still running from an interrupted benchmark go first, with their processes.
  for pid in $(pgrep -f "rkt-stage1 run --pod-dir $WORK/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
  # Pods' cgroups go only with gc: removing their directories alone would leave them behind
  # (thousands of leftover cgroups slow every later cgroup operation on the host).
  [ -d "$WORK/rkt/pods" ] && { "$RKT" --dir "$WORK/rkt" gc --grace-period=0s >/dev/null 2>&1 || true; }
  # podman leaves overlay mounts in its private root.
  grep -o "$WORK[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r umount -l 2>/dev/null || true
  rm -rf "$WORK"
  # Written back at once, so the freed inodes' table blocks are clean for what runs next (see
  # wait_for_freed_inodes).
  sync
  touch "$LAST_CLEANUP"
}
trap cleanup EXIT

# When the last benchmark removed its scratch directory (thousands of inodes).
LAST_CLEANUP=/var/tmp/.rkt-bench-last-cleanup

# wait_for_freed_inodes: an ext4 without a journal (this VM's root) does not reuse an inode for
# 60 s after it was freed, 360 s while its inode-table block is dirty (which every allocation in
# the group keeps it), and skips such inodes one by one, looking each up in the buffer cache:
# within 6 minutes of a large removal every file a pod creates costs 150-250 us instead of ~25
# (perf: recently_deleted, find_inode_bit). So a timed run waits until 6 minutes have passed
# since the previous one's cleanup.
wait_for_freed_inodes() {
  [ -e "$LAST_CLEANUP" ] || return 0
  local left=$(( 360 - ($(date +%s) - $(stat -c %Y "$LAST_CLEANUP")) ))
  if [ "$left" -gt 0 ]; then
    echo "benches: waiting ${left}s for the inodes the last run freed to become reusable" >&2
    sleep "$left"
  fi
}

# start_registry NAME=FIXTURE...: serves the fixtures over plain http on loopback; sets ADDR.
start_registry() {
  local args=()
  for p in "$@"; do args+=(--push "$p"); done
  "$FIXTURES" serve "${args[@]}" --ready-file "$WORK/ready" >"$WORK/serve.log" 2>&1 &
  SERVE_PID=$!
  for _ in $(seq 300); do
    [ -f "$WORK/ready" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
    sleep 0.2
  done
  ADDR=$(sed -n 's/.*"addr": "\([^"]*\)".*/\1/p' "$WORK/ready")
  [ -n "$ADDR" ] || { echo "benches: the registry did not start" >&2; cat "$WORK/serve.log" >&2; exit 1; }
}

# ratio_table JSON BASELINE_NAME: prints each command's mean and median and their ratios to the
# baseline's (a peer whose times are bimodal, as crun's are here, is better seen by both).
ratio_table() {
  local json=$1 base=$2
  awk -v base="$base" '
    /"command":/ { gsub(/.*"command": "|",$/, ""); cmd=$0 }
    /"mean":/    { gsub(/.*"mean": |,$/, ""); mean[cmd]=$0; order[n++]=cmd }
    /"median":/  { gsub(/.*"median": |,$/, ""); median[cmd]=$0 }
    END {
      b = mean[base]; bm = median[base]
      printf "%-12s %10s %10s %10s %10s\n", "command", "mean ms", "median ms", "mean vs " base, "median vs " base
      for (i = 0; i < n; i++) {
        c = order[i]
        printf "%-12s %10.2f %10.2f %9.2fx %9.2fx\n", c, mean[c] * 1000, median[c] * 1000, mean[c] / b, median[c] / bm
      }
    }' "$json"
}

# steal_ms: CPU time the hypervisor has taken from this VM since boot, in ms (the 8th field of
# /proc/stat's cpu line, in USER_HZ ticks). A section that loses much of it measured the host's
# other guests as much as the commands.
steal_ms() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%d\n", $9 * 1000 / hz; exit }' /proc/stat
}

