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

#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/start_method.hpp>
#include "support.hpp"

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

// ---------------------------------------------------------------- memory

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

// A timed case: n samples of once() (microseconds) spread over the rounds.
struct start_case {
  std::string key;
  std::string label;
  int n;
  std::function<double()> once;
  std::vector<double> samples;
};

// ---------------------------------------------------------------- run

struct options {
  bool quick = false, python = true;
  int base = 200;  // --iterations: samples of the fork cases
};

// False (after the usage line) on bad arguments.
bool parse_options(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--no-python") {
      o.python = false;
    } else if (a == "--iterations" && i + 1 < argc) {
      o.base = std::max(2, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--iterations N] [--no-python]\n", argv[0]);
      return false;
    }
  }
  if (o.quick) o.base = 10;
  return true;
}

const isola::start_method methods[3] = {isola::start_method::fork, isola::start_method::forkserver,
                                        isola::start_method::spawn};

// Memory of idle children, measured first, while the parent is smallest.
struct memory {
  mem_kb parent, raw, isola[3];
};

memory measure_memory(const std::string& tmpdir) {
  memory m;
  m.parent = read_mem(::getpid());
  ready_fifo fifo(tmpdir + "/ready");
  m.raw = raw_child_mem(fifo);
  for (int i = 0; i < 3; ++i) m.isola[i] = isola_child_mem(methods[i], fifo);
  return m;
}

std::vector<start_case> make_cases(int n_fork, int n_spawn) {
  std::vector<start_case> cases;
  cases.push_back({"raw_fork", "raw fork + _exit + waitpid", n_fork, raw_fork_once, {}});
  cases.push_back({"raw_spawn",
                   "raw posix_spawn(self, --exit-immediately) + waitpid",
                   n_spawn,
                   [] { return raw_self_spawn_once(argv0) * 1e6; },
                   {}});
  cases.push_back(
      {"fork", "isola fork", n_fork, [] { return isola_once(isola::start_method::fork); }, {}});
  cases.push_back({"forkserver",
                   "isola forkserver",
                   n_fork,
                   [] { return isola_once(isola::start_method::forkserver); },
                   {}});
  cases.push_back(
      {"spawn", "isola spawn", n_spawn, [] { return isola_once(isola::start_method::spawn); }, {}});
  return cases;
}

int rounds_of(const std::vector<start_case>& cases) {
  int rounds = 0;
  for (auto& c : cases) rounds = std::max(rounds, c.n);
  return rounds;
}

// Rounds [from, to) of `rounds`: each case's n samples spread evenly over them.
void run_start_rounds(std::vector<start_case>& cases, int rounds, int from, int to) {
  for (int r = from; r < to; ++r)
    for (auto& c : cases) {
      long before = static_cast<long>(r) * c.n / rounds;
      long after = static_cast<long>(r + 1) * c.n / rounds;
      if (after > before) c.samples.push_back(c.once());
    }
}

struct python_counts {
  int fork, forkserver, spawn, warm;
};

python_result python_side(const python_counts& n, const std::string& tmpdir) {
  ready_fifo fifo(tmpdir + "/py-ready");
  return run_python("process_start.py",
                    {std::to_string(n.fork), std::to_string(n.forkserver), std::to_string(n.spawn),
                     std::to_string(n.warm), fifo.path()},
                    "fork_median_us");
}

// ---------------------------------------------------------------- report

void print_timings(const std::vector<start_case>& cases, const std::map<std::string, stats>& st,
                   const python_result& py, const python_counts& pn, int n_fork, int n_spawn,
                   int warmup) {
  std::printf(
      "\nstart + join of an empty target     (C++ cases interleaved; samples: raw fork, "
      "fork, forkserver %d; posix_spawn, spawn %d; warm-up %d each)\n",
      n_fork, n_spawn, warmup);
  std::printf("%-52s %12s %12s %6s\n", "case", "median us", "p90 us", "n");
  for (auto& c : cases) {
    const stats& s = st.at(c.key);
    std::printf("%-52s %12s %12s %6zu\n", c.label.c_str(), fmt(s.median).c_str(),
                fmt(s.p90).c_str(), s.n);
  }
  if (py.empty()) return;
  const std::pair<const char*, int> pm[3] = {
      {"fork", pn.fork}, {"forkserver", pn.forkserver}, {"spawn", pn.spawn}};
  for (auto& [m, n] : pm)
    std::printf("%-52s %12s %12s %6d\n", ("python " + py.version + " " + m).c_str(),
                fmt(py[std::string(m) + "_median_us"]).c_str(),
                fmt(py[std::string(m) + "_p90_us"]).c_str(), n);
}

void print_ratios(const std::map<std::string, stats>& st, const python_result& py) {
  ratio_table ratios([](double v) { return fmt(v, 2) + "x"; });
  auto med = [&](const char* k) { return st.at(k).median; };
  ratios.le("isola fork / raw fork", med("fork") / med("raw_fork"), 1.5);
  ratios.le("isola forkserver / raw fork", med("forkserver") / med("raw_fork"), 3.0);
  ratios.le("isola spawn / raw posix_spawn", med("spawn") / med("raw_spawn"), 2.0);
  if (!py.empty())
    for (const char* m : {"fork", "forkserver", "spawn"})
      ratios.ge(std::string("python ") + m + " / isola " + m,
                py[std::string(m) + "_median_us"] / med(m), 5.0);
  ratios.print("ratio of medians", 52, 12);
}

void print_memory(const memory& m, const python_result& py) {
  std::printf(
      "\nidle child memory, MB           (VmRSS counts pages shared with the parent; "
      "Private is what the child adds)\n");
  std::printf("%-52s %12s %12s %12s\n", "child", "VmRSS", "Pss", "Private");
  auto mem_row = [](const std::string& label, const mem_kb& k) {
    std::printf("%-52s %12s %12s %12s\n", label.c_str(), mb(k.rss).c_str(), mb(k.pss).c_str(),
                mb(k.priv).c_str());
  };
  mem_row("(the benchmark parent itself)", m.parent);
  mem_row("raw forked child (fork + pause)", m.raw);
  for (int i = 0; i < 3; ++i)
    mem_row("isola " + std::string(isola::to_string(methods[i])) + " child", m.isola[i]);
  if (!py.empty())
    for (const char* meth : {"fork", "forkserver", "spawn"})
      mem_row(std::string("python ") + meth + " child", python_mem(py, std::string(meth) + "_"));
  double fork_rss = m.isola[0].ok() ? static_cast<double>(m.isola[0].rss) / 1024.0 : NAN;
  std::printf("%-52s %11s  %12s %6s\n", "isola fork child VmRSS", fmt(fork_rss, 2).c_str(),
              "<= 2.0 MB",
              std::isnan(fork_rss) ? "n/a"
              : fork_rss <= 2.0    ? "PASS"
                                   : "MISS");
}

// Everything after the options: memory, the interleaved timings around the
// Python run, the report.
void run(const options& o, const std::string& tmpdir) {
  const int n_fork = o.base, n_spawn = std::max(1, o.base / 2);
  const int warmup = o.quick ? 2 : 5;
  const python_counts pn{.fork = o.quick ? 5 : 100,
                         .forkserver = o.quick ? 5 : 50,
                         .spawn = o.quick ? 5 : 30,
                         .warm = o.quick ? 1 : 3};

  const memory mem = measure_memory(tmpdir);
  auto cases = make_cases(n_fork, n_spawn);
  for (auto& c : cases)
    for (int i = 0; i < warmup; ++i) c.once();
  const int rounds = rounds_of(cases);
  // Half of the C++ rounds before Python and half after, so that both sides
  // sample the same stretch of (noisy) machine time.
  run_start_rounds(cases, rounds, 0, rounds / 2);
  python_result py;
  if (o.python) py = python_side(pn, tmpdir);
  run_start_rounds(cases, rounds, rounds / 2, rounds);

  std::map<std::string, stats> st;
  for (auto& c : cases) st[c.key] = summarize(c.samples);
  print_timings(cases, st, py, pn, n_fork, n_spawn, warmup);
  print_ratios(st, py);
  print_memory(mem, py);
  std::printf("\n(PASS/MISS are informational; this benchmark exits 0 whatever the speed)\n");
}

}  // namespace

int main(int argc, char** argv) {
  // The raw posix_spawn baseline starts this same binary with this argument.
  if (argc > 1 && std::string_view(argv[1]) == "--exit-immediately") return 0;
  isola::runtime rt{argc, argv};
  options o;
  if (!parse_options(argc, argv, o)) return 2;
  argv0 = argv[0];

  char tmpl[] = "/tmp/isola-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) die("mkdtemp");
  const std::string tmpdir = tmpl;
  print_banner("process_start", o.quick, isola::cpu_count());

  int rc = 0;
  try {
    run(o, tmpdir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "process_start: %s\n", e.what());
    rc = 1;
  }
  ::rmdir(tmpdir.c_str());
  return rc;
}
