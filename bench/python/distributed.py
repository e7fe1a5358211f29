# bench/python/distributed.py — the Python workload of bench/distributed,
# which runs it as python3 distributed.py ARGS... and reads the flat JSON it
# prints: Manager().Event() round trip, Manager().Barrier(2) cycles,
# Manager().Queue() items.

import json, multiprocessing as mp, statistics, sys, time

def event_child(a, b, n):
    for _ in range(n):
        a.wait(); a.clear(); b.set()

def event_rt(m, n):
    a, b = m.Event(), m.Event()
    p = mp.Process(target=event_child, args=(a, b, n + 20)); p.start()
    for _ in range(20):
        a.set(); b.wait(); b.clear()
    t0 = time.perf_counter()
    for _ in range(n):
        a.set(); b.wait(); b.clear()
    s = (time.perf_counter() - t0) / n
    p.join()
    return s

def barrier_child(b, n):
    for _ in range(n):
        b.wait()

def barrier(m, n):
    b = m.Barrier(2)
    p = mp.Process(target=barrier_child, args=(b, n + 20)); p.start()
    for _ in range(20):
        b.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        b.wait()
    s = time.perf_counter() - t0
    p.join()
    return n / s

def queue_child(q, n):
    for i in range(n):
        q.put(i)

def queue(m, n):
    q = m.Queue(1000)
    p = mp.Process(target=queue_child, args=(q, n + 50)); p.start()
    for _ in range(50):
        q.get()
    t0 = time.perf_counter()
    for _ in range(n):
        q.get()
    s = time.perf_counter() - t0
    p.join()
    return n / s

if __name__ == "__main__":
    mp.set_start_method("fork")
    n_event, n_barrier, n_queue, reps = (int(x) for x in sys.argv[1:5])
    out = {"version": sys.version.split()[0]}
    with mp.Manager() as m:
        samples = {"event": [], "barrier": [], "queue": []}
        for _ in range(reps):
            samples["event"].append(event_rt(m, n_event))
            samples["barrier"].append(barrier(m, n_barrier))
            samples["queue"].append(queue(m, n_queue))
    for k, xs in samples.items():
        out[k + "_median"] = statistics.median(xs)
    print(json.dumps(out))
