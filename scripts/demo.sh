#!/usr/bin/env bash
# The main job, start to finish on this machine, as root:
#   1. build rkt (release);
#   2. build a busybox image from Debian's busybox-static (no image comes from the internet);
#   3. serve it from Debian's docker-registry on loopback, over TLS with token auth, with a
#      throwaway rkt configuration that trusts its CA (certs.d) and holds its credentials
#      (auth.d dockerAuth), as an administrator would put them in /etc/rkt;
#   4. fetch it into the store (/var/lib/rkt, or $RKT_DIR) and verify it;
#   5. run a pod from it — rkt execs into stage1, which isolates the app (namespaces,
#      overlayfs, cgroups, seccomp, capabilities), puts it on rkt's default CNI network and
#      supervises it — then show the pod's state, address and logs, and garbage-collect it.
#      The pod runs inside a throwaway network namespace made here, so that the demo leaves
#      this machine's own network (interfaces, routes, NAT rules) exactly as it was.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/build.sh
work=$(mktemp -d)
serve_pid=
demo_net="rkt-demo-$$"
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  ip netns del "$demo_net" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

./target/release/rkt-fixtures serve --tls --auth token --push busybox=busybox \
  --ready-file "$work/ready" --rkt-config "$work/etc-rkt" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 600); do
  [ -f "$work/ready" ] && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.2
done
addr=$(sed -n 's/.*"addr": "\([^"]*\)".*/\1/p' "$work/ready")
[ -n "$addr" ] || { echo "demo: the registry did not start" >&2; cat "$work/serve.log" >&2; exit 1; }

rkt=(./target/release/rkt --local-config "$work/etc-rkt")
[ -n "${RKT_DIR:-}" ] && rkt+=(--dir "$RKT_DIR")

set -x
"${rkt[@]}" --insecure-options=image fetch "docker://$addr/busybox:latest"
"${rkt[@]}" image list
"${rkt[@]}" image verify "$addr/busybox:latest"
ip netns add "$demo_net"
nsenter --net="/run/netns/$demo_net" "${rkt[@]}" --insecure-options=image run \
  --uuid-file-save "$work/uuid" "docker://$addr/busybox:latest" --exec /bin/sh -- -c \
  'echo "hello from pod $(hostname)"; ip -4 -o addr show eth0;
   grep -E "^(NoNewPrivs|Seccomp|CapEff)" /proc/self/status'
"${rkt[@]}" list
"${rkt[@]}" status --uuid-file "$work/uuid"
"${rkt[@]}" logs "$(cat "$work/uuid")"
nsenter --net="/run/netns/$demo_net" "${rkt[@]}" rm --uuid-file "$work/uuid"
set +x
