// bench/distributed — the coordinator forms of isola/distributed/ (event,
// barrier, queue: state in a coordinator actor, waits answered later) against
// Python's Manager() objects, which are the same design (a server process
// holds the state, proxies ask it), and a raw pipe ping-pong, in one run.
//
//   distributed [--quick] [--repeats R] [--no-python]
//
// Cases (the coordinator is an actor process of this root; the other party
// an actor process; Python uses Manager() and a forked Process):
//   event     round trip: we set A, the party waits A, clears it and sets B,
//             we wait B and clear it (Python: Manager().Event()).
//   barrier   barrier(2) cycles per second between us and the party
//             (Python: Manager().Barrier(2)).
//   queue     small ints put by the party and got by us, items per second
//             (Python: Manager().Queue()).
//   raw       a 4-byte pipe ping-pong between two forked processes: the
//             floor for one message there and back (information).
// There are no targets: the same-host forms (bench/sync) are the fast path,
// these are for parties on other hosts. A sample is one timed run after a
// warm-up; C++ samples are taken half before and half after the Python run;
// medians are reported.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <isola/actor.hpp>
#include <isola/distributed/barrier.hpp>
#include <isola/distributed/event.hpp>
#include <isola/distributed/queue.hpp>
#include <isola/runtime.hpp>

#include "support.hpp"

using namespace isola_bench;
namespace dist = isola::distributed;

namespace {

struct rounds {
  int n = 0;
  template <class A>
  void serialize(A& ar) {
    ar(n);
  }
};

isola::behavior event_party(dist::event a, dist::event b) {
  return {[a, b](const rounds& r) {
    for (int i = 0; i < r.n; ++i) {
      a.wait();
      a.clear();
      b.set();
    }
    return r.n;
  }};
}

isola::behavior barrier_party(dist::barrier bar) {
  return {[bar](const rounds& r) {
    for (int i = 0; i < r.n; ++i) bar.wait();
    return r.n;
  }};
}

isola::behavior queue_party(dist::queue<int> q) {
  return {[q](const rounds& r) {
    for (int i = 0; i < r.n; ++i) q.put(i);
    return r.n;
  }};
}

// Seconds per round trip.
double event_rt(int n) {
  auto a = dist::event::create(), b = dist::event::create();
  auto p = isola::spawn(event_party, a, b);
  const int warm = 50;
  auto done = p.request<int>(rounds{warm + n});
  auto one = [&] {
    a.set();
    b.wait();
    b.clear();
  };
  for (int i = 0; i < warm; ++i) one();
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) one();
  double s = seconds_since(t0) / n;
  done.get();
  for (auto& x : {p, a.coordinator(), b.coordinator()}) x.stop();
  return s;
}

// Cycles per second.
double barrier_cycles(int n) {
  auto bar = dist::barrier::create(2);
  auto p = isola::spawn(barrier_party, bar);
  const int warm = 50;
  auto done = p.request<int>(rounds{warm + n});
  for (int i = 0; i < warm; ++i) bar.wait();
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) bar.wait();
  double s = seconds_since(t0);
  done.get();
  p.stop();
  bar.coordinator().stop();
  return n / s;
}

// Items per second.
double queue_items(int n) {
  auto q = dist::queue<int>::create(1000);
  auto p = isola::spawn(queue_party, q);
  const int warm = 100;
  auto done = p.request<int>(rounds{warm + n});
  for (int i = 0; i < warm; ++i) q.get();
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) q.get();
  double s = seconds_since(t0);
  done.get();
  p.stop();
  q.coordinator().stop();
  return n / s;
}

struct counts {
  int event, barrier, queue;
  int py_event, py_barrier, py_queue, py_reps;
};

counts counts_for(bool quick) {
  return {.event = quick ? 100 : 2000,
          .barrier = quick ? 200 : 5000,
          .queue = quick ? 1000 : 20000,
          .py_event = quick ? 50 : 500,
          .py_barrier = quick ? 50 : 1000,
          .py_queue = quick ? 200 : 5000,
          .py_reps = quick ? 1 : 3};
}

// One sample of every coordinator case.
void one_round(samples& cpp, const counts& n) {
  cpp.add("event", event_rt(n.event));
  cpp.add("barrier", barrier_cycles(n.barrier));
  cpp.add("queue", queue_items(n.queue));
}

python_result python_side(const counts& n) {
  return run_python("distributed.py",
                    {std::to_string(n.py_event), std::to_string(n.py_barrier),
                     std::to_string(n.py_queue), std::to_string(n.py_reps)},
                    "queue_median");
}

void print_report(const samples& cpp, const python_result& py, int repeats) {
  auto pyv = [&](const char* k) { return py[std::string(k) + "_median"]; };
  std::printf(
      "\ndistributed benchmark (coordinator actors; isola samples %d, Python %s; medians)\n",
      repeats, py.version.empty() ? "skipped" : py.version.c_str());
  double e = cpp.median("event"), ep = pyv("event"), er = cpp.median("raw");
  std::printf(
      "\nevent round trip (set A; party waits A, clears it, sets B; wait B, clear B) (us):\n");
  std::printf("  isola distributed::event     %8s\n", fmt(e * 1e6, 1).c_str());
  std::printf("  Python Manager().Event()     %8s\n", fmt(ep * 1e6, 1).c_str());
  std::printf("  raw pipe ping-pong           %8s   (one message each way)\n",
              fmt(er * 1e6, 1).c_str());
  std::printf("  isola / Python: %s (time; lower is better)\n", fmt(e / ep, 3).c_str());
  double b = cpp.median("barrier"), bp = pyv("barrier");
  std::printf("\nbarrier(2) cycles/s (k/s):\n");
  std::printf("  isola distributed::barrier   %8s\n", fmt(b / 1e3, 2).c_str());
  std::printf("  Python Manager().Barrier(2)  %8s\n", fmt(bp / 1e3, 2).c_str());
  std::printf("  isola / Python: %sx\n", fmt(b / bp, 1).c_str());
  double q = cpp.median("queue"), qp = pyv("queue");
  std::printf("\nqueue 1 -> 1, small ints (k items/s):\n");
  std::printf("  isola distributed::queue     %8s\n", fmt(q / 1e3, 1).c_str());
  std::printf("  Python Manager().Queue()     %8s\n", fmt(qp / 1e3, 1).c_str());
  std::printf("  isola / Python: %sx\n", fmt(q / qp, 1).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  const auto args = parse_common_args(argc, argv, "distributed");
  if (!args.ok) return 2;
  const counts n = counts_for(args.quick);

  // The raw baseline forks: take all its samples before the first actor
  // starts CAF's threads in this process.
  samples cpp;
  for (int i = 0; i < args.repeats; ++i) cpp.add("raw", raw_pipe_pingpong(n.event));

  event_rt(20);  // warm-up: code paged in, forkserver started
  python_result py;
  rounds_around_python(
      args.repeats, [&] { one_round(cpp, n); },
      [&] {
        if (args.python) py = python_side(n);
      });
  print_report(cpp, py, args.repeats);
  return 0;
}
