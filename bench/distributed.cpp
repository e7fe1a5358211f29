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

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  const auto args = parse_common_args(argc, argv, "distributed");
  if (!args.ok) return 2;
  const bool quick = args.quick, python = args.python;
  const int repeats = args.repeats;
  const int n_event = quick ? 100 : 2000, n_barrier = quick ? 200 : 5000, n_queue = quick ? 1000 : 20000;
  const int py_event = quick ? 50 : 500, py_barrier = quick ? 50 : 1000, py_queue = quick ? 200 : 5000,
            py_reps = quick ? 1 : 3;

  // The raw baseline forks: take all its samples before the first actor
  // starts CAF's threads in this process.
  std::vector<double> raw;
  for (int i = 0; i < repeats; ++i) raw.push_back(raw_pipe_pingpong(n_event));

  std::map<std::string, std::vector<double>> cpp;
  auto run_cpp = [&] {
    cpp["event"].push_back(event_rt(n_event));
    cpp["barrier"].push_back(barrier_cycles(n_barrier));
    cpp["queue"].push_back(queue_items(n_queue));
  };
  event_rt(20);  // warm-up: code paged in, forkserver started
  int before = (repeats + 1) / 2;
  for (int i = 0; i < before; ++i) run_cpp();
  std::map<std::string, double> py;
  std::string py_version;
  if (python)
    py = run_python("distributed.py", {std::to_string(py_event), std::to_string(py_barrier), std::to_string(py_queue),
                     std::to_string(py_reps)},
                    "queue_median", py_version);
  for (int i = before; i < repeats; ++i) run_cpp();

  auto med = [&](const char* k) { return summarize(cpp[k]).median; };
  auto pyv = [&](const char* k) {
    auto it = py.find(std::string(k) + "_median");
    return it == py.end() ? NAN : it->second;
  };
  std::printf("\ndistributed benchmark (coordinator actors; isola samples %d, Python %s; medians)\n",
              repeats, py_version.empty() ? "skipped" : py_version.c_str());
  double e = med("event"), ep = pyv("event"), er = summarize(raw).median;
  std::printf("\nevent round trip (set A; party waits A, clears it, sets B; wait B, clear B) (us):\n");
  std::printf("  isola distributed::event     %8s\n", fmt(e * 1e6, 1).c_str());
  std::printf("  Python Manager().Event()     %8s\n", fmt(ep * 1e6, 1).c_str());
  std::printf("  raw pipe ping-pong           %8s   (one message each way)\n", fmt(er * 1e6, 1).c_str());
  std::printf("  isola / Python: %s (time; lower is better)\n", fmt(e / ep, 3).c_str());
  double b = med("barrier"), bp = pyv("barrier");
  std::printf("\nbarrier(2) cycles/s (k/s):\n");
  std::printf("  isola distributed::barrier   %8s\n", fmt(b / 1e3, 2).c_str());
  std::printf("  Python Manager().Barrier(2)  %8s\n", fmt(bp / 1e3, 2).c_str());
  std::printf("  isola / Python: %sx\n", fmt(b / bp, 1).c_str());
  double q = med("queue"), qp = pyv("queue");
  std::printf("\nqueue 1 -> 1, small ints (k items/s):\n");
  std::printf("  isola distributed::queue     %8s\n", fmt(q / 1e3, 1).c_str());
  std::printf("  Python Manager().Queue()     %8s\n", fmt(qp / 1e3, 1).c_str());
  std::printf("  isola / Python: %sx\n", fmt(q / qp, 1).c_str());
  return 0;
}
