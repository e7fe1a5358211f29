// bench/process_start — start + join of an empty target under every start
// method, against Python's multiprocessing (each method) and the raw OS
// (fork + _exit + waitpid, posix_spawn of this same binary), all in one run.
// Also the memory an idle child costs.
//
//   process_start [--quick] [--iterations N] [--no-python]
//
// Prints medians and p90s in microseconds, then the ratios with their targets
// and PASS/MISS markers. The markers are informational: a benchmark never
// fails on speed, so the exit status is 0 unless something could not run.
//
// Method:
// - The C++ cases are interleaved round-robin (one sample of each case per
//   round; the spawn cases, with fewer iterations, are spread evenly over the
//   rounds), so machine noise hits every case alike and the ratios hold.
//   Half of the rounds run before the Python measurements and half after.
// - Each case is warmed up first. A sample covers constructing the
//   isola::process, start() and join() (Python: Process(...), start(), join()).
// - Python runs once, in a child `python3` process, with bench/python/process_start.py
//   (the same empty target, warmed up the same way); its medians come back as
//   JSON on stdout.
// - Memory of an idle child: VmRSS from /proc/<pid>/status (counts pages
//   shared with the parent), Pss and Private_Clean + Private_Dirty from
//   /proc/<pid>/smaps_rollup (Private is what the child really adds).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support.hpp"
#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/start_method.hpp>

extern char** environ;

using namespace isola_bench;

namespace {

// ---------------------------------------------------------------- targets

void empty_target() {}

// Tells the parent through a FIFO that it runs, then idles until terminated.
// A path (not a descriptor) so that it works under forkserver and spawn too.
void idle_target(std::string fifo) {
  int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    char c = 'x';
    [[maybe_unused]] auto n = ::write(fd, &c, 1);
    ::close(fd);
  }
  for (;;) ::pause();
}

// ---------------------------------------------------------------- helpers

double us_since(clk::time_point t0) {
  return std::chrono::duration<double, std::micro>(clk::now() - t0).count();
}

int wait_pid(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) die("waitpid");
  return st;
}

// ---------------------------------------------------------------- memory

struct mem_kb {
  long rss = -1;      // VmRSS
  long pss = -1;      // Pss
  long priv = -1;     // Private_Clean + Private_Dirty
  bool ok() const { return rss >= 0; }
};

mem_kb read_mem(pid_t pid) {
  mem_kb m;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) m.rss = std::stol(line.substr(6));
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  long pc = -1, pd = -1;
  for (std::string line; std::getline(rollup, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos || line.find(' ') < colon) continue;  // the header line
    auto key = line.substr(0, colon);
    long v = std::stol(line.substr(colon + 1));
    if (key == "Pss") m.pss = v;
    if (key == "Private_Clean") pc = v;
    if (key == "Private_Dirty") pd = v;
  }
  if (pc >= 0 && pd >= 0) m.priv = pc + pd;
  return m;
}

// A FIFO the idle children write one byte to once they run. Opened O_RDWR by
// us, so neither side ever blocks in open().
class ready_fifo {
 public:
  explicit ready_fifo(std::string path) : path_(std::move(path)) {
    if (::mkfifo(path_.c_str(), 0600) != 0) die("mkfifo " + path_);
    fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) die("open " + path_);
  }
  ~ready_fifo() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  ready_fifo(const ready_fifo&) = delete;
  ready_fifo& operator=(const ready_fifo&) = delete;
  const std::string& path() const { return path_; }
  // True once a child has written its byte (within 30 s).
  bool wait() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 30000) != 1) return false;
    char c;
    return ::read(fd_, &c, 1) == 1;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

mem_kb raw_child_mem(ready_fifo& fifo) {
  pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    int fd = ::open(fifo.path().c_str(), O_WRONLY);
    char c = 'x';
    if (fd < 0 || ::write(fd, &c, 1) != 1) ::_exit(1);
    for (;;) ::pause();
  }
  mem_kb m;
  if (fifo.wait()) m = read_mem(pid);
  ::kill(pid, SIGTERM);
  wait_pid(pid);
  return m;
}

mem_kb isola_child_mem(isola::start_method method, ready_fifo& fifo) {
  isola::process p(isola::process_options{.method = method}, idle_target, fifo.path());
  p.start();
  mem_kb m;
  if (fifo.wait()) m = read_mem(p.pid());
  p.terminate();
  p.join();
  return m;
}

// ---------------------------------------------------------------- timed cases

std::string self_exe;
std::string argv0;

double raw_fork_once() {
  auto t0 = clk::now();
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  if (pid < 0) die("fork");
  int st = wait_pid(pid);
  double us = us_since(t0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) throw std::runtime_error("raw fork child failed");
  return us;
}

double raw_spawn_once() {
  char flag[] = "--exit-immediately";
  char* args[] = {argv0.data(), flag, nullptr};
  auto t0 = clk::now();
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, self_exe.c_str(), nullptr, nullptr, args, environ);
  if (rc != 0) {
    errno = rc;
    die("posix_spawn");
  }
  int st = wait_pid(pid);
  double us = us_since(t0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) throw std::runtime_error("posix_spawn child failed");
  return us;
}

double isola_once(isola::start_method m) {
  auto t0 = clk::now();
  isola::process p(isola::process_options{.method = m}, empty_target);
  p.start();
  p.join();
  double us = us_since(t0);
  if (p.exitcode() != 0)
    throw std::runtime_error("isola " + std::string(isola::to_string(m)) + " child exited with " +
                             std::to_string(p.exitcode().value_or(-999)));
  return us;
}

struct bench_case {
  std::string key;
  std::string label;
  int n;
  std::function<double()> once;
  std::vector<double> samples;
};

// ---------------------------------------------------------------- output

std::string mb(long kb) { return kb < 0 ? "n/a" : fmt(static_cast<double>(kb) / 1024.0, 2); }

struct ratio_row {
  std::string label;
  double value;
  std::string target;
  bool pass;
};

}  // namespace

int main(int argc, char** argv) {
  // The raw posix_spawn baseline starts this same binary with this argument.
  if (argc > 1 && std::string_view(argv[1]) == "--exit-immediately") return 0;
  isola::runtime rt{argc, argv};

  bool quick = false, python = true;
  int base = 200;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--no-python") {
      python = false;
    } else if (a == "--iterations" && i + 1 < argc) {
      base = std::max(2, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--iterations N] [--no-python]\n", argv[0]);
      return 2;
    }
  }
  if (quick) base = 10;
  const int n_fork = base, n_spawn = std::max(1, base / 2);
  const int warmup = quick ? 2 : 5;
  const int py_fork = quick ? 5 : 100, py_forkserver = quick ? 5 : 50, py_spawn = quick ? 5 : 30;
  const int py_warm = quick ? 1 : 3;

  argv0 = argv[0];
  self_exe = "/proc/self/exe";

  char tmpl[] = "/tmp/isola-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) die("mkdtemp");
  std::string tmpdir = tmpl;

  utsname un{};
  ::uname(&un);
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M", std::localtime(&now));
  std::printf("isola bench/process_start  (%s; %u CPUs; Linux %s; %s)\n", quick ? "quick" : "full",
              isola::cpu_count(), un.release, date);

  int rc = 0;
  try {
    // ---- memory of an idle child (first, while the parent is smallest)
    mem_kb parent = read_mem(::getpid());
    mem_kb raw_m, isola_m[3];
    const isola::start_method methods[3] = {isola::start_method::fork,
                                            isola::start_method::forkserver,
                                            isola::start_method::spawn};
    {
      ready_fifo fifo(tmpdir + "/ready");
      raw_m = raw_child_mem(fifo);
      for (int i = 0; i < 3; ++i) isola_m[i] = isola_child_mem(methods[i], fifo);
    }

    // ---- C++ timings, interleaved
    std::vector<bench_case> cases;
    cases.push_back({"raw_fork", "raw fork + _exit + waitpid", n_fork, raw_fork_once, {}});
    cases.push_back({"raw_spawn", "raw posix_spawn(self, --exit-immediately) + waitpid", n_spawn,
                     raw_spawn_once, {}});
    cases.push_back({"fork", "isola fork", n_fork,
                     [] { return isola_once(isola::start_method::fork); }, {}});
    cases.push_back({"forkserver", "isola forkserver", n_fork,
                     [] { return isola_once(isola::start_method::forkserver); }, {}});
    cases.push_back({"spawn", "isola spawn", n_spawn,
                     [] { return isola_once(isola::start_method::spawn); }, {}});
    for (auto& c : cases)
      for (int i = 0; i < warmup; ++i) c.once();
    int rounds = 0;
    for (auto& c : cases) rounds = std::max(rounds, c.n);
    auto run_rounds = [&](int from, int to) {
      for (int r = from; r < to; ++r)
        for (auto& c : cases) {
          // c.n samples spread evenly over the rounds
          long before = static_cast<long>(r) * c.n / rounds;
          long after = static_cast<long>(r + 1) * c.n / rounds;
          if (after > before) c.samples.push_back(c.once());
        }
    };
    // Half of the C++ rounds before Python and half after, so that both sides
    // sample the same stretch of (noisy) machine time.
    run_rounds(0, rounds / 2);

    // ---- Python
    std::map<std::string, double> py;
    std::string py_version;
    if (python) {
      ready_fifo fifo(tmpdir + "/py-ready");
      py = run_python("process_start.py", {std::to_string(py_fork), std::to_string(py_forkserver), std::to_string(py_spawn),
                       std::to_string(py_warm), fifo.path()},
                      "fork_median_us", py_version);
    }
    auto pyv = [&](const std::string& k) { return py.count(k) ? py[k] : NAN; };

    run_rounds(rounds / 2, rounds);
    std::map<std::string, stats> st;
    for (auto& c : cases) st[c.key] = summarize(c.samples);

    // ---- report
    std::printf("\nstart + join of an empty target     (C++ cases interleaved; samples: raw fork, "
                "fork, forkserver %d; posix_spawn, spawn %d; warm-up %d each)\n",
                n_fork, n_spawn, warmup);
    std::printf("%-52s %12s %12s %6s\n", "case", "median us", "p90 us", "n");
    for (auto& c : cases)
      std::printf("%-52s %12s %12s %6zu\n", c.label.c_str(), fmt(st[c.key].median).c_str(),
                  fmt(st[c.key].p90).c_str(), st[c.key].n);
    if (!py.empty()) {
      const std::pair<const char*, int> pm[3] = {
          {"fork", py_fork}, {"forkserver", py_forkserver}, {"spawn", py_spawn}};
      for (auto& [m, n] : pm)
        std::printf("%-52s %12s %12s %6d\n",
                    ("python " + py_version + " " + m).c_str(),
                    fmt(pyv(std::string(m) + "_median_us")).c_str(),
                    fmt(pyv(std::string(m) + "_p90_us")).c_str(), n);
    }

    std::vector<ratio_row> ratios;
    auto le = [&](std::string label, double v, double target) {
      ratios.push_back({std::move(label), v, "<= " + fmt(target, 1) + "x", v <= target});
    };
    auto ge = [&](std::string label, double v, double target) {
      ratios.push_back({std::move(label), v, ">= " + fmt(target, 1) + "x", v >= target});
    };
    le("isola fork / raw fork", st["fork"].median / st["raw_fork"].median, 1.5);
    le("isola forkserver / raw fork", st["forkserver"].median / st["raw_fork"].median, 3.0);
    le("isola spawn / raw posix_spawn", st["spawn"].median / st["raw_spawn"].median, 2.0);
    if (!py.empty())
      for (const char* m : {"fork", "forkserver", "spawn"})
        ge(std::string("python ") + m + " / isola " + m,
           pyv(std::string(m) + "_median_us") / st[m].median, 5.0);
    std::printf("\n%-52s %12s %12s %6s\n", "ratio of medians", "value", "target", "");
    for (auto& r : ratios)
      std::printf("%-52s %11sx %12s %6s\n", r.label.c_str(), fmt(r.value, 2).c_str(),
                  r.target.c_str(), std::isnan(r.value) ? "n/a" : r.pass ? "PASS" : "MISS");

    std::printf("\nidle child memory, MB           (VmRSS counts pages shared with the parent; "
                "Private is what the child adds)\n");
    std::printf("%-52s %12s %12s %12s\n", "child", "VmRSS", "Pss", "Private");
    auto mem_row = [](const std::string& label, const mem_kb& m) {
      std::printf("%-52s %12s %12s %12s\n", label.c_str(), mb(m.rss).c_str(), mb(m.pss).c_str(),
                  mb(m.priv).c_str());
    };
    mem_row("(the benchmark parent itself)", parent);
    mem_row("raw forked child (fork + pause)", raw_m);
    for (int i = 0; i < 3; ++i)
      mem_row("isola " + std::string(isola::to_string(methods[i])) + " child", isola_m[i]);
    if (!py.empty())
      for (const char* m : {"fork", "forkserver", "spawn"}) {
        auto k = [&](const char* f) {
          auto v = pyv(std::string(m) + "_" + f);
          return std::isnan(v) ? -1L : static_cast<long>(v);
        };
        mem_row(std::string("python ") + m + " child", mem_kb{k("rss_kb"), k("pss_kb"), k("private_kb")});
      }
    double fork_rss = isola_m[0].ok() ? static_cast<double>(isola_m[0].rss) / 1024.0 : NAN;
    std::printf("%-52s %11s  %12s %6s\n", "isola fork child VmRSS", fmt(fork_rss, 2).c_str(),
                "<= 2.0 MB", std::isnan(fork_rss) ? "n/a" : fork_rss <= 2.0 ? "PASS" : "MISS");
    std::printf("\n(PASS/MISS are informational; this benchmark exits 0 whatever the speed)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "process_start: %s\n", e.what());
    rc = 1;
  }
  ::rmdir(tmpdir.c_str());
  return rc;
}
