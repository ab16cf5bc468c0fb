#!/usr/bin/env python3
"""Interleaved A/B timing of rkt builds (or any commands), for changes under a millisecond.

This VM's speed drifts by 30-50% within minutes, so two separate hyperfine runs cannot tell a
0.5 ms change from noise. This alternates the commands run by run and compares medians.

    benches/ab.py [--vs NAME] N NAME=COMMAND NAME=COMMAND ...

With --vs, each command's median and mean are also given as a ratio to NAME's.

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
    args = sys.argv[1:]
    base = None
    if len(args) > 1 and args[0] == "--vs":
        base, args = args[1], args[2:]
    if len(args) < 2 or not args[0].isdigit():
        sys.exit(__doc__)
    n = int(args[0])
    cmds = [a.split("=", 1) for a in args[1:]]
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
        line = (f"{name:10s} median {statistics.median(v):7.2f} ms  mean {statistics.mean(v):7.2f}"
                f"  p25 {v[len(v) // 4]:7.2f}  min {v[0]:7.2f}")
        if base in times:
            b = times[base]
            line += (f"  median {statistics.median(v) / statistics.median(b):5.2f}x"
                     f"  mean {statistics.mean(v) / statistics.mean(b):5.2f}x {base}")
        print(line)


if __name__ == "__main__":
    main()
