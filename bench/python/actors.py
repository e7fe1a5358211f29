# bench/python/actors.py — the Python workload of bench/actors, which runs it
# as python3 actors.py ARGS... and reads the flat JSON it prints: request
# round trip over Pipe with a fork child, per placement, and the child's
# memory.

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

def pingpong(n, where):
    old = os.sched_getaffinity(0)
    cpus = sorted(old)[:2]
    first, second = cpus[0], cpus[-1]
    os.sched_setaffinity(0, {first} if where == "same" else {second})  # the child inherits it
    try:
        a, b = ctx.Pipe()
        p = ctx.Process(target=echo, args=(b,))
        p.start()
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

def idle_mem():
    a, b = ctx.Pipe()
    p = ctx.Process(target=echo, args=(b,))
    p.start()
    a.send(1)
    a.recv()
    time.sleep(0.02)
    out = mem(p.pid)
    a.send(-1)
    p.join()
    return out

if __name__ == "__main__":
    import json
    reps, n_same, n_split = map(int, sys.argv[1:4])
    cases = [("pp_same", lambda n: pingpong(n, "same"), n_same),
             ("pp_split", lambda n: pingpong(n, "split"), n_split)]
    for _, f, n in cases:
        f(max(1, n // 20))
    samples = {key: [] for key, _, _ in cases}
    for _ in range(reps):
        for key, f, n in cases:
            samples[key].append(f(n))
    res = {"version": sys.version.split()[0]}
    for key, xs in samples.items():
        med, p90 = summarize(xs)
        res[key + "_median"] = med
        res[key + "_p90"] = p90
    for k, v in idle_mem().items():
        res["mem_" + k] = v
    print(json.dumps(res), flush=True)
