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
#include <isola/runtime.hpp>

#include "support.hpp"

using namespace isola_bench;

namespace {

int add(int v, int d) { return v + d; }

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

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  const auto args = parse_common_args(argc, argv, "manager");
  if (!args.ok) return 2;
  const bool quick = args.quick, python = args.python;
  const int repeats = args.repeats;
  const int n = quick ? 2000 : 20000;
  const int py_n = quick ? 500 : 5000, py_reps = quick ? 1 : 3;

  isola::manager m({.method = isola::start_method::fork});
  auto d = m.dict<std::string, int>();
  d.set("key", 1);
  auto l = m.lock();
  std::uint16_t port = m.serve(0, "bench-key");
  auto remote = isola::manager::connect("127.0.0.1", port, "bench-key");
  auto rd = remote.dict<std::string, int>("tcp");
  rd.set("key", 1);

  std::map<std::string, std::vector<double>> cpp;
  volatile int sink = 0;
  auto run_cpp = [&] {
    cpp["get"].push_back(per_op(n, [&](int) { sink = d.get("key"); }));
    cpp["set"].push_back(per_op(n, [&](int i) { d.set("key", i); }));
    cpp["update"].push_back(per_op(n, [&](int) { sink = d.update("key", &add, 1); }));
    cpp["lock"].push_back(per_op(n, [&](int) {
      l.acquire();
      l.release();
    }));
    cpp["tcp_get"].push_back(per_op(n, [&](int) { sink = rd.get("key"); }));
    cpp["raw"].push_back(raw_pingpong(n));
  };

  int before = (repeats + 1) / 2;
  for (int i = 0; i < before; ++i) run_cpp();
  std::map<std::string, double> py;
  std::string py_version;
  if (python)
    py = run_python("manager.py", {std::to_string(py_n), std::to_string(py_reps)}, "get_median", py_version);
  for (int i = before; i < repeats; ++i) run_cpp();

  auto med = [&](const char* k) { return summarize(cpp[k]).median; };
  auto pyv = [&](const char* k) {
    auto it = py.find(std::string(k) + "_median");
    return it == py.end() ? NAN : it->second;
  };
  auto us = [](double s, int prec = 2) { return fmt(s * 1e6, prec); };

  std::printf("\nmanager benchmark (%s; isola samples %d x %d ops, Python %s; medians, us per op)\n",
              quick ? "quick" : "full", repeats, n, py_version.empty() ? "n/a" : py_version.c_str());
  double g = med("get"), gp = pyv("get");
  std::printf("  %-34s %8s   Python %8s   ratio %s\n", "dict get (local socket)", us(g).c_str(),
              us(gp, 1).c_str(), fmt(g / gp, 3).c_str());
  std::printf("  %-34s %8s   Python %8s   ratio %s\n", "dict set", us(med("set")).c_str(),
              us(pyv("set"), 1).c_str(), fmt(med("set") / pyv("set"), 3).c_str());
  std::printf("  %-34s %8s   (information)\n", "dict update(key, add, 1)", us(med("update")).c_str());
  std::printf("  %-34s %8s   Python %8s   ratio %s\n", "lock acquire + release", us(med("lock")).c_str(),
              us(pyv("lock"), 1).c_str(), fmt(med("lock") / pyv("lock"), 3).c_str());
  std::printf("  %-34s %8s   (information)\n", "dict get over TCP loopback", us(med("tcp_get")).c_str());
  std::printf("  %-34s %8s   (information)\n", "raw socketpair ping-pong", us(med("raw")).c_str());
  const char* mark = std::isnan(gp) ? "n/a" : (g / gp <= 0.5 ? "PASS" : "MISS");
  std::printf("  dict get isola / Python: %s (target <= 0.5: %s); isola / raw ping-pong: %sx\n",
              fmt(g / gp, 3).c_str(), mark, fmt(g / med("raw"), 2).c_str());
  (void)sink;
  return 0;
}
