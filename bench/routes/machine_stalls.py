#!/usr/bin/python3
"""How often the machine itself stops a running thread, measured with nothing else to do.

One process per CPU spins on the monotonic clock for SECONDS and records every gap between two
readings of at least 0.1 ms: time the thread did not run although it never waited (hypervisor
steal, interrupts, other processes). Prints the gaps per CPU by size, the stalls per second
longer than each THRESHOLD_MS, and the steal time /proc/stat counted meanwhile.

A request whose deadline leaves it less slack than such a stall fails on that machine whatever
the runtime does; the route soaks compare their failures under a deadline with this figure.

Usage: bench/routes/machine_stalls.py [SECONDS] [THRESHOLD_MS ...]   (default 30 s; 1, 1.3, 5 ms)
Run it on an idle machine: it measures the machine, not tandem.
"""
import multiprocessing
import os
import sys
import time


def spin(seconds, queue):
    gaps = []
    now = time.monotonic_ns()
    end = now + int(seconds * 1e9)
    while now < end:
        later = time.monotonic_ns()
        if later - now >= 100_000:
            gaps.append((later - now) / 1e6)
        now = later
    queue.put(gaps)


def steal_ticks():
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) if len(fields) > 8 else 0


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    thresholds = [float(a) for a in sys.argv[2:]] or [1.0, 1.3, 5.0]
    cpus = os.cpu_count() or 1
    queue = multiprocessing.Queue()
    steal0 = steal_ticks()
    workers = [multiprocessing.Process(target=spin, args=(seconds, queue)) for _ in range(cpus)]
    for w in workers:
        w.start()
    per_cpu = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    steal_ms = (steal_ticks() - steal0) * 1000.0 / os.sysconf("SC_CLK_TCK")
    edges = [0.1, 0.5, 1, 2, 5, 10, 20, 50]
    print(f"machine stalls: {cpus} spinning processes for {seconds:.0f} s; steal counted by the kernel "
          f"{steal_ms:.0f} ms ({steal_ms / (seconds * 10 * cpus):.2f}% of CPU time)")
    for i, gaps in enumerate(per_cpu):
        buckets = []
        for lo, hi in zip(edges, edges[1:] + [float("inf")]):
            n = sum(1 for g in gaps if lo <= g < hi)
            if n:
                buckets.append(f"{lo:g}-{hi:g} ms: {n}")
        print(f"  process {i}: longest {max(gaps, default=0):.2f} ms; " + ", ".join(buckets))
    every = [g for gaps in per_cpu for g in gaps]
    for t in thresholds:
        n = sum(1 for g in every if g >= t)
        print(f"  stalls >= {t:g} ms: {n} ({n / seconds / cpus:.2f} per second per CPU)")


if __name__ == "__main__":
    main()
