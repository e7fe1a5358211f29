// Sandboxed actors against unsandboxed ones, in one run (issue 19 item 6):
// - request throughput to a compute actor: round trips per second, the same
//   actor behavior with and without syscall_policy::compute (+ rlimits);
// - spawn cost: spawn to first reply, sandboxed and not.
// Rounds alternate between the two so that load on the machine hits both;
// the median of each is reported with the ratio. The baseline here is isola
// itself without a sandbox (a sandbox has no Python or raw-OS counterpart).
//
//   sandbox [--quick] [--rounds R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <isola/isola.hpp>

namespace {

using clk = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct work {
  int x = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x);
  }
};

isola::behavior compute_actor() {
  return {[](const work& w) {
    unsigned v = static_cast<unsigned>(w.x);
    for (int i = 0; i < 64; ++i) v = v * 2654435761u + 1;  // a little work per request
    return static_cast<int>(v & 0x7fffffff);
  }};
}

isola::spawn_options opts(bool boxed) {
  isola::spawn_options o;
  if (boxed) {
    isola::sandbox b;
    b.syscalls = isola::syscall_policy::compute;
    b.open_files = 64;
    b.file_size = 1 << 20;
    o.sandbox = b;
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Round trips per second over n requests.
double throughput(isola::actor& a, int n) {
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) (void)a.request<int>(work{i}).get(10s);
  return n / std::chrono::duration<double>(clk::now() - t0).count();
}

// Microseconds from spawn to the first reply.
double spawn_cost(bool boxed) {
  auto t0 = clk::now();
  auto a = isola::spawn(opts(boxed), compute_actor);
  (void)a.request<int>(work{1}).get(10s);
  double us = std::chrono::duration<double, std::micro>(clk::now() - t0).count();
  auto mon = a.monitor();
  a.stop();
  (void)mon.get(10s);
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  bool quick = false;
  int rounds = 7;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::atoi(argv[++i]);
  }
  if (quick) rounds = 2;
  const int n = quick ? 500 : 20000;
  const int spawns = quick ? 3 : 20;

  auto plain = isola::spawn(opts(false), compute_actor);
  auto boxed = isola::spawn(opts(true), compute_actor);
  throughput(plain, n / 10);  // warm both
  throughput(boxed, n / 10);
  std::vector<double> tp_plain, tp_boxed, sp_plain, sp_boxed;
  for (int r = 0; r < rounds; ++r) {
    tp_plain.push_back(throughput(plain, n));
    tp_boxed.push_back(throughput(boxed, n));
  }
  for (int r = 0; r < spawns; ++r) {
    sp_plain.push_back(spawn_cost(false));
    sp_boxed.push_back(spawn_cost(true));
  }
  double tpp = median(tp_plain), tpb = median(tp_boxed);
  double spp = median(sp_plain), spb = median(sp_boxed);
  std::printf("sandbox bench: %d rounds of %d requests, %d spawns each (medians)\n", rounds, n,
              spawns);
  std::printf("request throughput: unsandboxed %.0f/s, compute sandbox %.0f/s, ratio %.3f "
              "(target >= 0.95)\n",
              tpp, tpb, tpb / tpp);
  std::printf("spawn to first reply: unsandboxed %.0f us, compute sandbox %.0f us, ratio %.3f "
              "(target <= 1.5)\n",
              spp, spb, spb / spp);
  return 0;
}
