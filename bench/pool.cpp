// bench/pool — isola::pool and process_pool_executor against Python's
// multiprocessing.Pool(2) / concurrent.futures.ProcessPoolExecutor(2) and a
// raw-OS baseline (two forked workers fed through pipes), in one run.
//
//   pool [--quick] [--repeats R] [--no-python]
//
// Cases (time per whole workload; medians of the samples):
//   map_default   map of 200k trivial tasks, default chunksize     (target >= 3x Python)
//   map_chunk1    map of 20k trivial tasks, chunksize 1              (target >= 15x Python)
//   apply_async   20k apply_async, then get all                      (target >= 15x Python)
//   submit        executor submit x 20k, then result all             (target >= 30x Python)
//   lifecycle     pool create + map 2 items + close + join           (target <= 1/5 of Python)
//   raw           20k ints through 2 forked workers over pipes (the OS floor for one
//                 message per task, for information)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <isola/isola.hpp>

#include "support.hpp"

using namespace isola_bench;

namespace {

int identity(int x) { return x; }

// Raw: two forked workers read 4-byte tasks from one pipe and write 4-byte
// results to another; a parent thread feeds the tasks while it reads results.
double raw_pipe_pool(int n) {
  int tasks[2], results[2];
  if (::pipe(tasks) != 0 || ::pipe(results) != 0) std::abort();
  std::vector<pid_t> kids;
  for (int w = 0; w < 2; ++w) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(tasks[1]);
      ::close(results[0]);
      int x;
      while (::read(tasks[0], &x, 4) == 4) {
        int r = identity(x);
        if (::write(results[1], &r, 4) != 4) _exit(1);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  ::close(tasks[0]);
  ::close(results[1]);
  auto t0 = clk::now();
  std::thread feeder([&] {
    for (int i = 0; i < n; ++i)
      if (::write(tasks[1], &i, 4) != 4) std::abort();
    ::close(tasks[1]);
  });
  long long sum = 0;
  for (int i = 0; i < n; ++i) {
    int r;
    if (::read(results[0], &r, 4) != 4) std::abort();
    sum += r;
  }
  double s = seconds_since(t0);
  feeder.join();
  ::close(results[0]);
  for (auto k : kids) ::waitpid(k, nullptr, 0);
  if (sum != static_cast<long long>(n) * (n - 1) / 2) std::abort();
  return s;
}

// The workload sizes and their inputs.
struct workload {
  int big, small, life;
  std::vector<int> big_in, small_in;
  explicit workload(bool quick)
      : big(quick ? 2000 : 200000), small(quick ? 200 : 20000), life(quick ? 2 : 10) {
    big_in.resize(static_cast<std::size_t>(big));
    small_in.resize(static_cast<std::size_t>(small));
    for (int i = 0; i < big; ++i) big_in[static_cast<std::size_t>(i)] = i;
    for (int i = 0; i < small; ++i) small_in[static_cast<std::size_t>(i)] = i;
  }
};

// map_default, map_chunk1 and apply_async on one isola::pool(2).
void time_pool(samples& cpp, const workload& w) {
  isola::pool p(2);
  p.map(identity, std::vector<int>(1000, 1));  // warm-up: workers up, code paged in
  auto t0 = clk::now();
  auto r = p.map(identity, w.big_in);
  cpp.add("map_default", seconds_since(t0));
  if (r.size() != w.big_in.size()) std::abort();
  t0 = clk::now();
  r = p.map(identity, w.small_in, 1);
  cpp.add("map_chunk1", seconds_since(t0));
  t0 = clk::now();
  std::vector<isola::future<int>> fs;
  fs.reserve(w.small_in.size());
  for (int x : w.small_in) fs.push_back(p.apply_async(identity, x));
  for (auto& f : fs) f.get();
  cpp.add("apply_async", seconds_since(t0));
}

void time_executor(samples& cpp, const workload& w) {
  isola::process_pool_executor ex(2);
  ex.map(identity, std::vector<int>(100, 1));
  auto t0 = clk::now();
  std::vector<isola::future<int>> fs;
  fs.reserve(w.small_in.size());
  for (int x : w.small_in) fs.push_back(ex.submit(identity, x));
  for (auto& f : fs) f.get();
  cpp.add("submit", seconds_since(t0));
}

void time_lifecycle(samples& cpp, int times) {
  for (int i = 0; i < times; ++i) {
    auto t0 = clk::now();
    isola::pool p(2);
    p.map(identity, std::vector<int>{1, 2});
    p.close();
    p.join();
    cpp.add("lifecycle", seconds_since(t0));
  }
}

void one_round(samples& cpp, const workload& w, bool quick) {
  time_pool(cpp, w);
  time_executor(cpp, w);
  time_lifecycle(cpp, quick ? 1 : 2);
  cpp.add("raw", raw_pipe_pool(w.small));
}

python_result python_side(const workload& w, bool quick) {
  return run_python("pool.py",
                    {std::to_string(w.big), std::to_string(w.small), std::to_string(quick ? 1 : 3),
                     std::to_string(w.life)},
                    "map_default_median_s");
}

void print_report(const samples& cpp, const python_result& py, const workload& w, bool quick,
                  int repeats) {
  auto med = [&](const std::string& k) { return cpp.median(k); };
  auto pyv = [&](const std::string& k) { return py[k + "_median_s"]; };
  std::printf("\npool benchmark (%s; isola samples %d, Python %s)\n", quick ? "quick" : "full",
              repeats, py.version.empty() ? "n/a" : py.version.c_str());
  std::printf("%-44s %12s %12s %10s\n", "case", "isola ms", "Python ms", "ratio");
  struct row {
    const char* key;
    std::string label;
    double target;  // Python/isola must be >= target
  };
  auto k = [](int n) { return n >= 1000 ? std::to_string(n / 1000) + "k" : std::to_string(n); };
  const row rows[] = {
      {"map_default", "map " + k(w.big) + " trivial tasks, default chunksize", 3},
      {"map_chunk1", "map " + k(w.small) + " trivial tasks, chunksize=1", 15},
      {"apply_async", "apply_async x " + k(w.small) + ", then get all", 15},
      {"submit", "executor submit x " + k(w.small) + ", then result all", 30},
      {"lifecycle", "create + map 2 items + close + join", 5},
  };
  for (auto& r : rows) {
    double a = med(r.key) * 1e3, b = pyv(r.key) * 1e3;
    double ratio = b / a;
    std::printf("%-44s %12s %12s %9sx  (target >= %.0fx: %s)\n", r.label.c_str(), fmt(a, 2).c_str(),
                fmt(b, 2).c_str(), fmt(ratio, 1).c_str(), r.target,
                pass_mark(ratio, r.target, true));
  }
  double raw = med("raw") * 1e3, c1 = med("map_chunk1") * 1e3, aa = med("apply_async") * 1e3;
  std::printf("%-44s %12s\n",
              ("raw: " + k(w.small) + " ints through 2 forked workers, pipes").c_str(),
              fmt(raw, 2).c_str());
  std::printf(
      "isola map chunksize=1 / raw: %sx; apply_async / raw: %sx (per task: %s us vs %s us)\n",
      fmt(c1 / raw, 1).c_str(), fmt(aa / raw, 1).c_str(), fmt(c1 / w.small * 1e3, 2).c_str(),
      fmt(raw / w.small * 1e3, 2).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  const auto args = parse_common_args(argc, argv, "pool");
  if (!args.ok) return 2;
  const workload w(args.quick);

  samples cpp;
  python_result py;
  rounds_around_python(
      args.repeats, [&] { one_round(cpp, w, args.quick); },
      [&] {
        if (args.python) py = python_side(w, args.quick);
      });
  print_report(cpp, py, w, args.quick, args.repeats);
  return 0;
}
