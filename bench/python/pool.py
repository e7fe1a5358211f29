# bench/python/pool.py — the Python workload of bench/pool, which runs it as
# python3 pool.py ARGS... and reads the flat JSON it prints: Pool(2) map /
# apply_async, ProcessPoolExecutor(2) submit, pool lifecycle.

import json, sys, time, statistics
from multiprocessing import get_context
from concurrent.futures import ProcessPoolExecutor

def identity(x):
    return x

def main():
    big, small, repeats, life = (int(a) for a in sys.argv[1:5])
    ctx = get_context("fork")
    out = {"version": sys.version.split()[0]}
    samples = {k: [] for k in ("map_default", "map_chunk1", "apply_async", "submit", "lifecycle")}
    with ctx.Pool(2) as p:
        p.map(identity, range(1000))
        for _ in range(repeats):
            t0 = time.perf_counter(); p.map(identity, range(big)); samples["map_default"].append(time.perf_counter() - t0)
            t0 = time.perf_counter(); p.map(identity, range(small), 1); samples["map_chunk1"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rs = [p.apply_async(identity, (i,)) for i in range(small)]
            for r in rs: r.get()
            samples["apply_async"].append(time.perf_counter() - t0)
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        list(ex.map(identity, range(100)))
        for _ in range(repeats):
            t0 = time.perf_counter()
            fs = [ex.submit(identity, i) for i in range(small)]
            for f in fs: f.result()
            samples["submit"].append(time.perf_counter() - t0)
    for _ in range(life):
        t0 = time.perf_counter()
        p = ctx.Pool(2); p.map(identity, [1, 2]); p.close(); p.join()
        samples["lifecycle"].append(time.perf_counter() - t0)
    for k, v in samples.items():
        out[k + "_median_s"] = statistics.median(v)
    print(json.dumps(out))

if __name__ == "__main__":
    main()
