# bench/python/channels.py — the Python workload of bench/channels, which runs
# it as python3 channels.py ARGS... and reads the flat JSON it prints: Pipe
# ping-pong, Queue / JoinableQueue throughput and bulk bytes.

import os, sys, time

from bench_common import ctx, pingpong, summarize

class Gate:
    def __init__(self):
        self.go_r, self.go_w = os.pipe()
        self.note_r, self.note_w = os.pipe()
    def ready(self): os.write(self.note_w, b"r")
    def done(self): os.write(self.note_w, b"d")
    def wait_go(self): os.read(self.go_r, 1)
    def wait_notes(self, n):
        while n > 0:
            n -= len(os.read(self.note_r, n))
    def open(self, n): os.write(self.go_w, b"g" * n)
    def close(self):
        for fd in (self.go_r, self.go_w, self.note_r, self.note_w):
            os.close(fd)

def q_producer(q, g, n):
    g.ready()
    g.wait_go()
    for i in range(n):
        q.put(i)
    q.put(-1)

def q_consumer(q, g):
    g.ready()
    while q.get() >= 0:
        pass
    g.done()

def queue_ints(n, producers, consumers):
    q = ctx.Queue()
    g = Gate()
    per = n // producers
    ps = [ctx.Process(target=q_consumer, args=(q, g)) for _ in range(consumers)]
    ps += [ctx.Process(target=q_producer, args=(q, g, per)) for _ in range(producers)]
    for p in ps:
        p.start()
    g.wait_notes(producers + consumers)
    t0 = time.perf_counter()
    g.open(producers)
    g.wait_notes(consumers)
    s = time.perf_counter() - t0
    for p in ps:
        p.join()
    g.close()
    return s / (per * producers)

def jq_consumer(q, g):
    g.ready()
    while True:
        v = q.get()
        q.task_done()
        if v < 0:
            return

def joinable(n):
    q = ctx.JoinableQueue()
    g = Gate()
    c = ctx.Process(target=jq_consumer, args=(q, g))
    c.start()
    g.wait_notes(1)
    t0 = time.perf_counter()
    for i in range(n):
        q.put(i)
    q.join()
    s = time.perf_counter() - t0
    q.put(-1)
    c.join()
    g.close()
    return s / n

def qb_producer(q, g, size, k):
    buf = b"\x01" * size
    g.ready()
    g.wait_go()
    for _ in range(k):
        q.put(buf)

def queue_bulk(size, k):
    q = ctx.Queue()
    g = Gate()
    p = ctx.Process(target=qb_producer, args=(q, g, size, k))
    p.start()
    g.wait_notes(1)
    t0 = time.perf_counter()
    g.open(1)
    for _ in range(k):
        if len(q.get()) != size:
            sys.exit("wrong size")
    s = time.perf_counter() - t0
    p.join()
    g.close()
    return s / k

def pb_sender(c, size, k):
    buf = b"\x01" * size
    c.send(1)
    c.recv()
    for _ in range(k):
        c.send_bytes(buf)

def pipe_bulk(size, k):
    a, b = ctx.Pipe()
    p = ctx.Process(target=pb_sender, args=(b, size, k))
    p.start()
    a.recv()
    t0 = time.perf_counter()
    a.send(1)
    for _ in range(k):
        if len(a.recv_bytes()) != size:
            sys.exit("wrong size")
    s = time.perf_counter() - t0
    p.join()
    return s / k

if __name__ == "__main__":
    import json
    (reps, pp_free, pp_same, pp_split, q11, q22, jq, bulk_size, qb_k, pb_k) = map(int, sys.argv[1:11])
    cases = [
        ("pp_free", lambda n: pingpong(n, "free"), pp_free),
        ("pp_same", lambda n: pingpong(n, "same"), pp_same),
        ("pp_split", lambda n: pingpong(n, "split"), pp_split),
        ("q11", lambda n: queue_ints(n, 1, 1), q11),
        ("q22", lambda n: queue_ints(n, 2, 2), q22),
        ("jq", joinable, jq),
        ("qbulk", lambda k: queue_bulk(bulk_size, k), qb_k),
        ("pbulk", lambda k: pipe_bulk(bulk_size, k), pb_k),
    ]
    for _, f, n in cases:  # warm-up
        f(max(1, n // 20))
    samples = {key: [] for key, _, _ in cases}
    for _ in range(reps):  # interleaved, as the C++ cases are
        for key, f, n in cases:
            samples[key].append(f(n))
    res = {"version": sys.version.split()[0]}
    for key, xs in samples.items():
        med, p90 = summarize(xs)
        res[key + "_median"] = med
        res[key + "_p90"] = p90
    print(json.dumps(res), flush=True)
