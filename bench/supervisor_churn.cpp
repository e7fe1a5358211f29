// supervisor_churn: what 10,000 short-lived temporary children cost a
// simple_one_for_one supervisor's own bookkeeping (issue 18). Not a
// comparison (Python has no supervisors): it starts and terminates N
// instances, at most LIVE at a time, and prints, per window of 1,000,
// the median start_child and terminate_child times (flat windows: the
// bookkeeping is O(1) per child, OTP-9242), the root's heap in use per live
// instance (the supervisor's records plus the registry's, an upper bound on
// the supervisor's own), and the heap left after all ended (a leak check),
// against the same churn of plain spawn/stop with no supervisor.
//
//   supervisor_churn [--quick] [N] [LIVE]      (defaults 10000 100)
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <tuple>
#include <vector>

#include <isola/isola.hpp>

namespace {
struct ping {
  int x = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x);
  }
};
isola::behavior worker() {
  return {[](const ping& p) { return p.x + 1; }};
}
long heap() { return static_cast<long>(::mallinfo2().uordblks); }
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
using fsec = std::chrono::duration<double, std::micro>;
}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt(argc, argv);
  bool quick = false;
  std::vector<long> nums;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else
      nums.push_back(std::atol(argv[i]));
  }
  const long n = nums.size() > 0 ? nums[0] : quick ? 300 : 10'000;
  const long live_max = nums.size() > 1 ? nums[1] : 100;
  // Baseline: the same churn with no supervisor (spawn, stop, join by a
  // down notice), so that what the supervisor adds can be told apart from
  // the registry's own records of ended actors.
  auto plain_churn = [&](long count) {
    std::vector<double> st;
    const long h0 = heap();
    auto t0 = std::chrono::steady_clock::now();
    std::deque<isola::actor> live;
    for (long started = 0; started < count || !live.empty();) {
      if (started < count && static_cast<long>(live.size()) < live_max) {
        auto s0 = std::chrono::steady_clock::now();
        live.push_back(isola::spawn(worker));
        st.push_back(fsec(std::chrono::steady_clock::now() - s0).count());
        ++started;
      } else {
        auto m = live.front().monitor();
        live.front().stop();
        m.get();
        live.pop_front();
      }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::tuple{secs, median(st), heap() - h0};
  };
  for (int i = 0; i < 20; ++i) isola::spawn(worker).stop();
  auto [plain_secs, plain_start, plain_heap] = plain_churn(n);

  isola::supervisor sup(
      {.strategy = isola::strategy::simple_one_for_one, .intensity = 10, .period = std::chrono::seconds(5)},
      {isola::child_spec::actor("w", worker).restart_type(isola::restart::temporary)});
  // Warm up (first spawns map the forkserver, the registry's tables).
  for (int i = 0; i < 20; ++i) sup.terminate_child(sup.start_child());
  const long heap0 = heap();
  std::deque<isola::actor> live;
  std::vector<double> starts, stops;
  long started = 0;
  const long window = std::min(1000L, n);
  std::printf("%8s %14s %18s\n", "children", "start_child us", "terminate_child us");
  auto t_all = std::chrono::steady_clock::now();
  while (started < n || !live.empty()) {
    if (started < n && static_cast<long>(live.size()) < live_max) {
      auto t0 = std::chrono::steady_clock::now();
      live.push_back(sup.start_child());
      starts.push_back(fsec(std::chrono::steady_clock::now() - t0).count());
      ++started;
    } else {
      auto t0 = std::chrono::steady_clock::now();
      sup.terminate_child(live.front());
      stops.push_back(fsec(std::chrono::steady_clock::now() - t0).count());
      live.pop_front();
    }
    if (static_cast<long>(starts.size()) == window) {
      std::printf("%8ld %14.0f %18.0f\n", started, median(starts), median(stops));
      starts.clear();
      stops.clear();
    }
  }
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
  const long churn_heap = heap() - heap0;
  // With live_max instances: their heap, which_children, count_children.
  const long before_live = heap();
  for (long i = 0; i < live_max; ++i) live.push_back(sup.start_child());
  const long per_live = (heap() - before_live) / live_max;
  auto t0 = std::chrono::steady_clock::now();
  auto kids = sup.which_children();
  double wc = fsec(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  auto cc = sup.count_children();
  double cnt = fsec(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  sup.stop();  // all at once
  double stop_all = fsec(std::chrono::steady_clock::now() - t0).count();
  std::printf("supervised: %ld children started and terminated in %.1f s (%.0f/s)\n", n, total,
              n / total);
  std::printf("plain spawn/stop, no supervisor: %.1f s (%.0f/s), spawn median %.0f us\n",
              plain_secs, n / plain_secs, plain_start);
  std::printf("root heap left after the churn: supervised %+.1f B per child, plain %+.1f B per "
              "child (the registry's records of ended actors, capped)\n",
              static_cast<double>(churn_heap) / static_cast<double>(n),
              static_cast<double>(plain_heap) / static_cast<double>(n));
  std::printf("with %ld live: %ld B of root heap each (registry + supervisor), which_children "
              "%.0f us (%zu), count_children %.0f us (%zu active), stop all %.0f ms\n",
              live_max, per_live, wc, kids.size(), cnt, cc.active, stop_all / 1000);
  return 0;
}
