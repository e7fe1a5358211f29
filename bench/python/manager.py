# bench/python/manager.py — the Python workload of bench/manager, which runs
# it as python3 manager.py ARGS... and reads the flat JSON it prints:
# Manager().dict() get / set and Manager().Lock() acquire + release.

import json, multiprocessing as mp, statistics, sys, time

def per_op(n, f):
    for i in range(max(50, n // 20)): f(i)
    t0 = time.perf_counter()
    for i in range(n): f(i)
    return (time.perf_counter() - t0) / n

if __name__ == '__main__':
    mp.set_start_method('fork')
    n, reps = (int(x) for x in sys.argv[1:3])
    res = {"version": sys.version.split()[0]}
    samples = {"get": [], "set": [], "lock": []}
    with mp.Manager() as m:
        d = m.dict({"key": 1})
        l = m.Lock()
        def get(i): return d["key"]
        def put(i): d["key"] = i
        def lock(i):
            l.acquire(); l.release()
        for _ in range(reps):
            samples["get"].append(per_op(n, get))
            samples["set"].append(per_op(n, put))
            samples["lock"].append(per_op(n, lock))
    for k, xs in samples.items():
        res[k + "_median"] = statistics.median(xs)
    print(json.dumps(res), flush=True)
