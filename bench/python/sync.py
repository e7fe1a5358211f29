# bench/python/sync.py — the Python workload of bench/sync, which runs it as
# python3 sync.py ARGS... and reads the flat JSON it prints: Value += 1 under
# get_lock() from 2 processes, Event round trip, Barrier(2) cycles.

import json, multiprocessing as mp, os, statistics, sys, time

def counter_child(v, n, ready, go, done):
    ready.release()
    go.acquire()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    done.release()

def counter(n):
    v = mp.Value('i', 0)
    ready, go, done = mp.Semaphore(0), mp.Semaphore(0), mp.Semaphore(0)
    ps = [mp.Process(target=counter_child, args=(v, n, ready, go, done)) for _ in range(2)]
    for p in ps: p.start()
    ready.acquire(); ready.acquire()
    t0 = time.perf_counter()
    go.release(); go.release()
    done.acquire(); done.acquire()
    s = time.perf_counter() - t0
    for p in ps: p.join()
    assert v.value == 2 * n
    return 2 * n / s

def event_pong(a, b, rounds):
    for _ in range(rounds):
        a.wait(); a.clear(); b.set()

def event_rt(n):
    a, b = mp.Event(), mp.Event()
    warm = 100
    p = mp.Process(target=event_pong, args=(a, b, warm + n))
    p.start()
    def one():
        a.set(); b.wait(); b.clear()
    for _ in range(warm): one()
    t0 = time.perf_counter()
    for _ in range(n): one()
    s = (time.perf_counter() - t0) / n
    p.join()
    return s

def barrier_child(b, rounds):
    for _ in range(rounds): b.wait()

def barrier(n):
    b = mp.Barrier(2)
    warm = 100
    p = mp.Process(target=barrier_child, args=(b, warm + n))
    p.start()
    for _ in range(warm): b.wait()
    t0 = time.perf_counter()
    for _ in range(n): b.wait()
    s = time.perf_counter() - t0
    p.join()
    return n / s

if __name__ == '__main__':
    mp.set_start_method('fork')
    n_counter, n_event, n_barrier, reps = (int(x) for x in sys.argv[1:5])
    res = {"version": sys.version.split()[0]}
    samples = {"counter": [], "event": [], "barrier": []}
    for _ in range(reps):
        samples["counter"].append(counter(n_counter))
        samples["event"].append(event_rt(n_event))
        samples["barrier"].append(barrier(n_barrier))
    for k, xs in samples.items():
        res[k + "_median"] = statistics.median(xs)
    print(json.dumps(res), flush=True)
