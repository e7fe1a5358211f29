# bench/python/actors.py — the Python workload of bench/actors, which runs it
# as python3 actors.py ARGS... and reads the flat JSON it prints: request
# round trip over Pipe with a fork child, per placement, and the child's
# memory.

import sys, time

from bench_common import ctx, echo, mem, pingpong, summarize

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
