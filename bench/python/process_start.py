# bench/python/process_start.py — the Python workload of bench/process_start,
# which runs it as python3 process_start.py ARGS... and reads the flat JSON it
# prints: Process start + join per start method, and an idle child's memory.
#
# Module level imports only what a child needs: forkserver and spawn children
# re-run this module (as __mp_main__), and heavier imports would be charged
# to Python's start time.

import multiprocessing as mp, os, signal, sys, time

def empty():
    pass

def idle(path):
    fd = os.open(path, os.O_WRONLY)
    os.write(fd, b"x")
    os.close(fd)
    while True:
        signal.pause()

def timed(ctx, n, warm):
    for _ in range(warm):
        p = ctx.Process(target=empty)
        p.start()
        p.join()
    xs = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        p = ctx.Process(target=empty)
        p.start()
        p.join()
        xs.append((time.perf_counter_ns() - t0) / 1000.0)
        if p.exitcode != 0:
            sys.exit("python child exited with %r" % p.exitcode)
    return summarize(xs)

def idle_mem(ctx, path):
    import select
    rfd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        p = ctx.Process(target=idle, args=(path,))
        p.start()
        r, _, _ = select.select([rfd], [], [], 30)
        out = mem(p.pid) if r and os.read(rfd, 1) else {}
        p.terminate()
        p.join()
        return out
    finally:
        os.close(rfd)

if __name__ == "__main__":
    import json
    from bench_common import mem, summarize
    counts = {"fork": int(sys.argv[1]), "forkserver": int(sys.argv[2]), "spawn": int(sys.argv[3])}
    warm = int(sys.argv[4])
    fifo = sys.argv[5]
    res = {"version": sys.version.split()[0]}
    for m in ("fork", "forkserver", "spawn"):
        ctx = mp.get_context(m)
        med, p90 = timed(ctx, counts[m], warm)
        res[m + "_median_us"] = med
        res[m + "_p90_us"] = p90
        for k, v in idle_mem(ctx, fifo).items():
            res[m + "_" + k] = v
    print(json.dumps(res), flush=True)
