// bench/pool — isola::pool and process_pool_executor against Python's
// multiprocessing.Pool(2) / concurrent.futures.ProcessPoolExecutor(2) and a
// raw-OS baseline (two forked workers fed through pipes), in one run.
//
//   pool [--quick] [--repeats N]
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

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  bool quick = false;
  int repeats = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    if (a == "--repeats" && i + 1 < argc) repeats = std::atoi(argv[++i]);
  }
  const int big = quick ? 2000 : 200000;
  const int small = quick ? 200 : 20000;
  const int life = quick ? 2 : 10;
  if (quick) repeats = 1;

  std::map<std::string, std::vector<double>> cpp;
  std::vector<int> big_in(static_cast<std::size_t>(big)), small_in(static_cast<std::size_t>(small));
  for (int i = 0; i < big; ++i) big_in[static_cast<std::size_t>(i)] = i;
  for (int i = 0; i < small; ++i) small_in[static_cast<std::size_t>(i)] = i;

  auto run_cpp = [&] {
    {
      isola::pool p(2);
      p.map(identity, std::vector<int>(1000, 1));  // warm-up: workers up, code paged in
      auto t0 = clk::now();
      auto r = p.map(identity, big_in);
      cpp["map_default"].push_back(seconds_since(t0));
      if (r.size() != big_in.size()) std::abort();
      t0 = clk::now();
      r = p.map(identity, small_in, 1);
      cpp["map_chunk1"].push_back(seconds_since(t0));
      t0 = clk::now();
      std::vector<isola::future<int>> fs;
      fs.reserve(small_in.size());
      for (int x : small_in) fs.push_back(p.apply_async(identity, x));
      for (auto& f : fs) f.get();
      cpp["apply_async"].push_back(seconds_since(t0));
    }
    {
      isola::process_pool_executor ex(2);
      ex.map(identity, std::vector<int>(100, 1));
      auto t0 = clk::now();
      std::vector<isola::future<int>> fs;
      fs.reserve(small_in.size());
      for (int x : small_in) fs.push_back(ex.submit(identity, x));
      for (auto& f : fs) f.get();
      cpp["submit"].push_back(seconds_since(t0));
    }
    for (int i = 0; i < (quick ? 1 : 2); ++i) {
      auto t0 = clk::now();
      isola::pool p(2);
      p.map(identity, std::vector<int>{1, 2});
      p.close();
      p.join();
      cpp["lifecycle"].push_back(seconds_since(t0));
    }
    cpp["raw"].push_back(raw_pipe_pool(small));
  };

  int before = (repeats + 1) / 2;
  for (int i = 0; i < before; ++i) run_cpp();

  std::map<std::string, double> py;
  std::string py_version;
  py = run_python("pool.py", {std::to_string(big), std::to_string(small), std::to_string(quick ? 1 : 3),
                   std::to_string(life)},
                  "map_default_median_s", py_version);

  for (int i = before; i < repeats; ++i) run_cpp();

  auto med = [&](const std::string& k) { return summarize(cpp[k]).median; };
  auto pyv = [&](const std::string& k) { return py.count(k + "_median_s") ? py[k + "_median_s"] : NAN; };

  std::printf("\npool benchmark (%s; isola samples %d, Python %s)\n", quick ? "quick" : "full", repeats,
              py_version.empty() ? "n/a" : py_version.c_str());
  std::printf("%-44s %12s %12s %10s\n", "case", "isola ms", "Python ms", "ratio");
  struct row {
    const char* key;
    std::string label;
    double target;  // Python/isola must be >= target
  };
  auto k = [](int n) { return n >= 1000 ? std::to_string(n / 1000) + "k" : std::to_string(n); };
  const row rows[] = {
      {"map_default", "map " + k(big) + " trivial tasks, default chunksize", 3},
      {"map_chunk1", "map " + k(small) + " trivial tasks, chunksize=1", 15},
      {"apply_async", "apply_async x " + k(small) + ", then get all", 15},
      {"submit", "executor submit x " + k(small) + ", then result all", 30},
      {"lifecycle", "create + map 2 items + close + join", 5},
  };
  for (auto& r : rows) {
    double a = med(r.key) * 1e3, b = pyv(r.key) * 1e3;
    double ratio = b / a;
    std::printf("%-44s %12s %12s %9sx  (target >= %.0fx: %s)\n", r.label.c_str(), fmt(a, 2).c_str(),
                fmt(b, 2).c_str(), fmt(ratio, 1).c_str(), r.target,
                std::isnan(ratio) ? "n/a" : ratio >= r.target ? "PASS" : "MISS");
  }
  double raw = med("raw") * 1e3, c1 = med("map_chunk1") * 1e3, aa = med("apply_async") * 1e3;
  std::printf("%-44s %12s\n", ("raw: " + k(small) + " ints through 2 forked workers, pipes").c_str(),
              fmt(raw, 2).c_str());
  std::printf("isola map chunksize=1 / raw: %sx; apply_async / raw: %sx (per task: %s us vs %s us)\n",
              fmt(c1 / raw, 1).c_str(), fmt(aa / raw, 1).c_str(), fmt(c1 / small * 1e3, 2).c_str(),
              fmt(raw / small * 1e3, 2).c_str());
  return 0;
}
