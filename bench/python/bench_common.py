# bench/python/bench_common.py — what the Python workloads of several
# benchmarks share (imported from the scripts beside it: python3 puts a
# script's folder first on sys.path).

import multiprocessing as mp, os, sys, time

ctx = mp.get_context("fork")

def summarize(xs):
    xs = sorted(xs)
    n = len(xs)
    med = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    k = max(-(-9 * n // 10), 1)
    return med, xs[k - 1]

def echo(c):
    while True:
        v = c.recv()
        if v < 0:
            return
        c.send(v)

# Seconds per round trip of n Pipe send/recv with a fork child echoing, after
# 200 untimed: "same" pins both to the first CPU, "split" the child to the
# second and us to the first, "free" leaves them to the scheduler.
def pingpong(n, where):
    old = os.sched_getaffinity(0)
    cpus = sorted(old)[:2]
    first, second = cpus[0], cpus[-1]
    if where == "same":
        os.sched_setaffinity(0, {first})
    elif where == "split":
        os.sched_setaffinity(0, {second})  # the child inherits it
    try:
        a, b = ctx.Pipe()
        p = ctx.Process(target=echo, args=(b,))
        p.start()
        if where == "split":
            os.sched_setaffinity(0, {first})
        for i in range(200):
            a.send(i)
            a.recv()
        t0 = time.perf_counter()
        for i in range(n):
            a.send(i)
            if a.recv() != i:
                sys.exit("bad reply")
        s = time.perf_counter() - t0
        a.send(-1)
        p.join()
        return s / n
    finally:
        os.sched_setaffinity(0, old)

def mem(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_kb"] = int(line.split()[1])
    pc = pd = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                k, v = parts[0][:-1], int(parts[1])
                if k == "Pss":
                    out["pss_kb"] = v
                elif k == "Private_Clean":
                    pc = v
                elif k == "Private_Dirty":
                    pd = v
    out["private_kb"] = pc + pd
    return out
