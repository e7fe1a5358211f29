// bench/manager — isola::manager's proxies against Python's Manager() proxies
// and a raw socket ping-pong, in one run.
//
//   manager [--quick] [--repeats R] [--no-python]
//
// Cases (the client is the benchmark's main thread, the manager a child
// process started with fork; Python uses the fork context too):
//   get       d.get("key") round trip on a managed dict holding an int
//             (Python: d['key'] on Manager().dict()). Target <= 1/2 of
//             Python's time.
//   set       d.set("key", i)                          (information)
//   update    d.update("key", add, 1), run in the manager (information;
//             Python has no equivalent: its d['key'] += 1 is a get and a set
//             that are not atomic together)
//   lock      acquire + release of a managed lock      (information; Python:
//             m.Lock() acquire + release)
//   tcp get   d.get over a served TCP loopback connection (information)
//   raw       a 40-byte request / 24-byte reply ping-pong over an AF_UNIX
//             stream socketpair with a forked echo child: the floor for any
//             request over a local socket (information)
//
// Method: a sample is the mean time of n operations after a warm-up; the C++
// samples are taken half before and half after the Python run, so noise hits
// both alike; medians are reported. The machine is shared: absolute figures
// move between runs, ratios less. PASS/MISS is informational: a benchmark
// never fails on speed.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <isola/manager.hpp>
#include <isola/function_registry.hpp>
#include <isola/runtime.hpp>

#include "support.hpp"

using namespace isola_bench;

namespace {

int add(int v, int d) { return v + d; }
// The manager runs it for a client that names it: registered at start-up.
ISOLA_REGISTER_FUNCTION(add);

template <class F>
double per_op(int n, F&& f) {
  for (int i = 0; i < std::max(50, n / 20); ++i) f(i);  // warm-up
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) f(i);
  return seconds_since(t0) / n;
}

double raw_pingpong(int n) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);
    char req[40], rep[24] = {};
    while (read_all(sv[1], req, sizeof req)) write_all(sv[1], rep, sizeof rep);
    ::_exit(0);
  }
  ::close(sv[1]);
  char req[40] = {}, rep[24];
  double t = per_op(n, [&](int) {
    write_all(sv[0], req, sizeof req);
    if (!read_all(sv[0], rep, sizeof rep)) die("echo child gone");
  });
  ::close(sv[0]);
  check_exit(wait_pid(pid), "echo");
  return t;
}

// The managed objects the cases use: a dict and a lock in a manager started
// with fork, and a dict of the same manager over a served TCP connection.
struct managed_objects {
  isola::manager m{isola::manager_options{.method = isola::start_method::fork}};
  isola::managed::dict<std::string, int> d = m.dict<std::string, int>();
  isola::managed::lock l = m.lock();
  isola::manager remote =
      isola::manager::connect("127.0.0.1", m.serve(0, "bench-key"), "bench-key");
  isola::managed::dict<std::string, int> rd = remote.dict<std::string, int>("tcp");
  managed_objects() {
    d.set("key", 1);
    rd.set("key", 1);
  }
};

// One sample of every C++ case, n operations each.
void one_round(samples& cpp, managed_objects& o, int n) {
  volatile int sink = 0;
  cpp.add("get", per_op(n, [&](int) { sink = o.d.get("key"); }));
  cpp.add("set", per_op(n, [&](int i) { o.d.set("key", i); }));
  cpp.add("update", per_op(n, [&](int) { sink = o.d.update("key", &add, 1); }));
  cpp.add("lock", per_op(n, [&](int) {
            o.l.acquire();
            o.l.release();
          }));
  cpp.add("tcp_get", per_op(n, [&](int) { sink = o.rd.get("key"); }));
  cpp.add("raw", raw_pingpong(n));
  (void)sink;
}

void print_report(const samples& cpp, const python_result& py, bool quick, int repeats, int n) {
  auto us = [](double s, int prec = 2) { return fmt(s * 1e6, prec); };
  auto med = [&](const char* k) { return cpp.median(k); };
  auto pyv = [&](const char* k) { return py[std::string(k) + "_median"]; };
  std::printf(
      "\nmanager benchmark (%s; isola samples %d x %d ops, Python %s; medians, us per op)\n",
      quick ? "quick" : "full", repeats, n, py.version.empty() ? "n/a" : py.version.c_str());
  double g = med("get"), gp = pyv("get");
  std::printf("  %-34s %8s   Python %8s   ratio %s\n", "dict get (local socket)", us(g).c_str(),
              us(gp, 1).c_str(), fmt(g / gp, 3).c_str());
  std::printf("  %-34s %8s   Python %8s   ratio %s\n", "dict set", us(med("set")).c_str(),
              us(pyv("set"), 1).c_str(), fmt(med("set") / pyv("set"), 3).c_str());
  std::printf("  %-34s %8s   (information)\n", "dict update(key, add, 1)",
              us(med("update")).c_str());
  std::printf("  %-34s %8s   Python %8s   ratio %s\n", "lock acquire + release",
              us(med("lock")).c_str(), us(pyv("lock"), 1).c_str(),
              fmt(med("lock") / pyv("lock"), 3).c_str());
  std::printf("  %-34s %8s   (information)\n", "dict get over TCP loopback",
              us(med("tcp_get")).c_str());
  std::printf("  %-34s %8s   (information)\n", "raw socketpair ping-pong", us(med("raw")).c_str());
  std::printf("  dict get isola / Python: %s (target <= 0.5: %s); isola / raw ping-pong: %sx\n",
              fmt(g / gp, 3).c_str(), pass_mark(g / gp, 0.5, false),
              fmt(g / med("raw"), 2).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  const auto args = parse_common_args(argc, argv, "manager");
  if (!args.ok) return 2;
  const int n = args.quick ? 2000 : 20000;
  const int py_n = args.quick ? 500 : 5000, py_reps = args.quick ? 1 : 3;

  managed_objects o;

  samples cpp;
  python_result py;
  rounds_around_python(
      args.repeats, [&] { one_round(cpp, o, n); },
      [&] {
        if (args.python)
          py = run_python("manager.py", {std::to_string(py_n), std::to_string(py_reps)},
                          "get_median");
      });
  print_report(cpp, py, args.quick, args.repeats, n);
  return 0;
}
