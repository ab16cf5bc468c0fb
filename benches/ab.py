#!/usr/bin/env python3
"""Interleaved A/B timing of rkt builds (or any commands), for changes under a millisecond.

This VM's speed drifts by 30-50% within minutes, so two separate hyperfine runs cannot tell a
0.5 ms change from noise. This alternates the commands run by run and compares medians.

    benches/ab.py N NAME=COMMAND NAME=COMMAND ...

For two builds of rkt, each directory holding `rkt` and `rkt-stage1`, on one store:

    benches/ab.py 40 \\
      "old=/tmp/old/rkt --dir /var/tmp/s run --net=none localhost/busybox:latest --exec /bin/true" \\
      "new=/tmp/new/rkt --dir /var/tmp/s run --net=none localhost/busybox:latest --exec /bin/true"

(run.sh unmounts the hybrid host's cgroup2 for crun; do the same, in `unshare --mount`, to
compare with its numbers; and `rkt gc` the store afterwards.)
"""
import shlex
import statistics
import subprocess
import sys
import time

WARMUP = 2


def main():
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        sys.exit(__doc__)
    n = int(sys.argv[1])
    cmds = [a.split("=", 1) for a in sys.argv[2:]]
    times = {name: [] for name, _ in cmds}
    for i in range(n + WARMUP):
        for name, cmd in cmds:
            start = time.perf_counter()
            r = subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ms = (time.perf_counter() - start) * 1000
            if r.returncode != 0:
                sys.exit(f"{name} failed: {r.stderr.decode()[-500:]}")
            if i >= WARMUP:
                times[name].append(ms)
    for name, _ in cmds:
        v = sorted(times[name])
        print(f"{name:10s} median {statistics.median(v):7.2f} ms  p25 {v[len(v) // 4]:7.2f}  min {v[0]:7.2f}")


if __name__ == "__main__":
    main()
