// bench/sync — isola's shared-memory synchronization against Python's
// multiprocessing and raw-OS baselines, in one run.
//
//   sync [--quick] [--repeats R] [--no-python]
//
// Cases (every process is a fork of this one; Python uses the fork context):
//   counter   a value<int> += 1 under its lock, from 2 processes at once:
//             std::scoped_lock g(v.get_lock()); v.store(v.load() + 1);
//             (Python: with v.get_lock(): v.value += 1). Total increments/s.
//             Targets: >= 20x Python, >= 30% of the raw baseline: an int
//             guarded by a plain (not robust) process-shared pthread mutex
//             in MAP_SHARED memory, same loop. For information also the same
//             through get_obj() (no re-entry of the rlock per access) and
//             fetch_add (no lock).
//   event     round trip: the parent sets A and waits for B; the child waits
//             for A, clears it and sets B. Target <= 1/2 of Python's. For
//             information: a raw pipe ping-pong (4 bytes each way).
//   barrier   barrier(2) cycles/s, parent and child each calling wait().
//             Target >= 3x Python. For information: a process-shared
//             pthread_barrier_t.
//
// Method: a sample is one run of a case (counter: both children start
// together from a pipe gate, the time runs until both have written "done";
// event and barrier: 200 warm-up rounds, then n timed rounds in the parent).
// The C++ samples are taken round-robin, half before and half after the
// Python run, so noise hits every case alike; medians are reported. The
// machine is shared: absolute figures move between runs, ratios less. The
// PASS/MISS markers are informational: a benchmark never fails on speed.
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <isola/barrier.hpp>
#include <isola/event.hpp>
#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/value.hpp>

#include "support.hpp"

using namespace isola_bench;

namespace {

// --------------------------------------------------------------- counter

enum class incr { load_store, get_obj, fetch_add };

// Increments/s of 2 children doing n increments each.
double isola_counter(int n, incr how) {
  isola::value<int> v(0);
  gate g;
  auto child = [&] {
    g.ready();
    g.wait_go();
    for (int i = 0; i < n; ++i) {
      if (how == incr::fetch_add) {
        v.fetch_add(1);
      } else if (how == incr::get_obj) {
        std::scoped_lock l(v.get_lock());
        ++v.get_obj();
      } else {
        std::scoped_lock l(v.get_lock());
        v.store(v.load() + 1);
      }
    }
    g.done();
  };
  isola::process a(forked(), child), b(forked(), child);
  a.start();
  b.start();
  g.wait_notes(2);
  auto t0 = clk::now();
  g.open(2);
  g.wait_notes(2);
  double s = seconds_since(t0);
  join_ok(a, "isola counter");
  join_ok(b, "isola counter");
  if (v.load() != 2 * n) {
    std::fprintf(stderr, "sync: counter is %d, expected %d\n", v.load(), 2 * n);
    std::exit(2);
  }
  return 2.0 * n / s;
}

struct raw_shared {
  pthread_mutex_t m;
  int value;
};

double raw_counter(int n) {
  void* mem = ::mmap(nullptr, sizeof(raw_shared), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  auto* sh = static_cast<raw_shared*>(mem);
  pthread_mutexattr_t a;
  ::pthread_mutexattr_init(&a);
  ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  ::pthread_mutex_init(&sh->m, &a);
  sh->value = 0;
  gate g;
  std::vector<pid_t> kids;
  for (int k = 0; k < 2; ++k) {
    pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      g.ready();
      g.wait_go();
      for (int i = 0; i < n; ++i) {
        ::pthread_mutex_lock(&sh->m);
        sh->value = sh->value + 1;
        ::pthread_mutex_unlock(&sh->m);
      }
      g.done();
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  g.wait_notes(2);
  auto t0 = clk::now();
  g.open(2);
  g.wait_notes(2);
  double s = seconds_since(t0);
  for (pid_t k : kids) check_exit(wait_pid(k), "raw counter");
  if (sh->value != 2 * n) {
    std::fprintf(stderr, "sync: raw counter is %d\n", sh->value);
    std::exit(2);
  }
  ::munmap(mem, sizeof(raw_shared));
  return 2.0 * n / s;
}

// ------------------------------------------------------------------ event

void event_pong(isola::event a, isola::event b, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    a.wait();
    a.clear();
    b.set();
  }
}

// Seconds per round trip.
double isola_event(int n) {
  isola::event a, b;
  const int warm = 200;
  isola::process p(forked(), event_pong, a, b, warm + n);
  p.start();
  auto one = [&] {
    a.set();
    b.wait();
    b.clear();
  };
  for (int i = 0; i < warm; ++i) one();
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) one();
  double s = seconds_since(t0) / n;
  join_ok(p, "isola event");
  return s;
}

// ---------------------------------------------------------------- barrier

void barrier_rounds(isola::barrier b, int rounds) {
  for (int i = 0; i < rounds; ++i) b.wait();
}

// Cycles per second.
double isola_barrier(int n) {
  isola::barrier b(2);
  const int warm = 200;
  isola::process p(forked(), barrier_rounds, b, warm + n);
  p.start();
  for (int i = 0; i < warm; ++i) b.wait();
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) b.wait();
  double s = seconds_since(t0);
  join_ok(p, "isola barrier");
  return n / s;
}

double raw_barrier(int n) {
  void* mem = ::mmap(nullptr, sizeof(pthread_barrier_t), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  auto* b = static_cast<pthread_barrier_t*>(mem);
  pthread_barrierattr_t a;
  ::pthread_barrierattr_init(&a);
  ::pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  ::pthread_barrier_init(b, &a, 2);
  const int warm = 200;
  pid_t pid = ::fork();
  if (pid == 0) {
    for (int i = 0; i < warm + n; ++i) ::pthread_barrier_wait(b);
    ::_exit(0);
  }
  for (int i = 0; i < warm; ++i) ::pthread_barrier_wait(b);
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) ::pthread_barrier_wait(b);
  double s = seconds_since(t0);
  check_exit(wait_pid(pid), "raw barrier");
  ::munmap(mem, sizeof(pthread_barrier_t));
  return n / s;
}

// ------------------------------------------------------------------ run

struct counts {
  int counter, event, barrier;  // counter: increments per process
  int py_counter, py_event, py_barrier, py_reps;
};

counts counts_for(bool quick) {
  return {.counter = quick ? 20000 : 300000,
          .event = quick ? 300 : 3000,
          .barrier = quick ? 1000 : 20000,
          .py_counter = quick ? 5000 : 50000,
          .py_event = quick ? 100 : 1000,
          .py_barrier = quick ? 200 : 2000,
          .py_reps = quick ? 1 : 3};
}

// One untimed warm-up of everything (code paged in, CPUs awake).
void warm_up() {
  isola_counter(1000, incr::load_store);
  isola_event(100);
  isola_barrier(100);
}

// One sample of every C++ case.
void one_round(samples& cpp, const counts& n) {
  cpp.add("counter", isola_counter(n.counter, incr::load_store));
  cpp.add("counter_obj", isola_counter(n.counter, incr::get_obj));
  cpp.add("counter_atomic", isola_counter(n.counter, incr::fetch_add));
  cpp.add("counter_raw", raw_counter(n.counter));
  cpp.add("event", isola_event(n.event));
  cpp.add("event_raw", raw_pipe_pingpong(n.event));
  cpp.add("barrier", isola_barrier(n.barrier));
  cpp.add("barrier_raw", raw_barrier(n.barrier));
}

python_result python_side(const counts& n) {
  return run_python("sync.py",
                    {std::to_string(n.py_counter), std::to_string(n.py_event),
                     std::to_string(n.py_barrier), std::to_string(n.py_reps)},
                    "barrier_median");
}

// --------------------------------------------------------------- report

void print_counter(const samples& cpp, const python_result& py) {
  double c = cpp.median("counter"), cr = cpp.median("counter_raw"), cp = py["counter_median"];
  std::printf("\nvalue<int> += 1 under its lock, 2 processes (M incr/s):\n");
  std::printf("  isola get_lock + load/store  %8s\n", fmt(c / 1e6, 2).c_str());
  std::printf("  isola get_lock + get_obj     %8s   (information)\n",
              fmt(cpp.median("counter_obj") / 1e6, 2).c_str());
  std::printf("  isola fetch_add, no lock     %8s   (information)\n",
              fmt(cpp.median("counter_atomic") / 1e6, 2).c_str());
  std::printf("  raw pshared pthread mutex    %8s\n", fmt(cr / 1e6, 2).c_str());
  std::printf("  Python Value + get_lock()    %8s\n", fmt(cp / 1e6, 3).c_str());
  std::printf("  isola / Python: %sx (target >= 20x: %s); isola / raw: %s%% (target >= 30%%: %s)\n",
              fmt(c / cp, 1).c_str(), pass_mark(c / cp, 20, true), fmt(100 * c / cr, 0).c_str(),
              pass_mark(c / cr, 0.30, true));
}

void print_event(const samples& cpp, const python_result& py) {
  double e = cpp.median("event"), er = cpp.median("event_raw"), ep = py["event_median"];
  std::printf("\nevent round trip (set A, child waits A and sets B, parent waits B) (us):\n");
  std::printf("  isola event                  %8s\n", fmt(e * 1e6, 2).c_str());
  std::printf("  raw pipe ping-pong           %8s   (information)\n", fmt(er * 1e6, 2).c_str());
  std::printf("  Python Event                 %8s\n", fmt(ep * 1e6, 1).c_str());
  std::printf("  isola / Python: %s (target <= 0.5: %s)\n", fmt(e / ep, 3).c_str(),
              pass_mark(e / ep, 0.5, false));
}

void print_barrier(const samples& cpp, const python_result& py) {
  double b = cpp.median("barrier"), br = cpp.median("barrier_raw"), bp = py["barrier_median"];
  std::printf("\nbarrier(2) cycles/s (k/s):\n");
  std::printf("  isola barrier                %8s\n", fmt(b / 1e3, 1).c_str());
  std::printf("  raw pshared pthread_barrier  %8s   (information)\n", fmt(br / 1e3, 1).c_str());
  std::printf("  Python Barrier               %8s\n", fmt(bp / 1e3, 2).c_str());
  std::printf("  isola / Python: %sx (target >= 3x: %s)\n", fmt(b / bp, 1).c_str(),
              pass_mark(b / bp, 3, true));
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  const auto args = parse_common_args(argc, argv, "sync");
  if (!args.ok) return 2;
  const counts n = counts_for(args.quick);

  samples cpp;
  python_result py;
  try {
    warm_up();
    rounds_around_python(
        args.repeats, [&] { one_round(cpp, n); },
        [&] {
          if (args.python) py = python_side(n);
        });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sync: %s\n", e.what());
    return 2;
  }

  std::printf("\nsync benchmark (%s; isola samples %d, Python %s; medians)\n",
              args.quick ? "quick" : "full", args.repeats,
              py.version.empty() ? "n/a" : py.version.c_str());
  print_counter(cpp, py);
  print_event(cpp, py);
  print_barrier(cpp, py);
  return 0;
}
