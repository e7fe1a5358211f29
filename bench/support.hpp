// bench/support.hpp — what every benchmark under bench/ shares: finding
// python3 and running the Python workloads (bench/python/*.py), reading the
// flat JSON they print, medians, sample rounds around the Python run, the
// ratio table, process memory, and the raw-I/O helpers of the raw baselines.
#pragma once

#include <linux/futex.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <isola/process.hpp>
#include <isola/start_method.hpp>

// Where the Python workloads are: bench/python/, one NAME.py per benchmark.
// bench/CMakeLists.txt passes that source folder at compile time, so a
// benchmark reads its script from the source tree wherever its binary runs
// (the build tree, ctest); nothing is copied next to the binaries.
#ifndef ISOLA_BENCH_PYTHON_DIR
#error "ISOLA_BENCH_PYTHON_DIR (the folder of the bench/python/*.py workloads) is not defined"
#endif

extern char** environ;

namespace isola_bench {

inline std::optional<std::string> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return std::nullopt;
  std::stringstream ss(path);
  for (std::string dir; std::getline(ss, dir, ':');) {
    auto full = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (::access(full.c_str(), X_OK) == 0) return full.string();
  }
  return std::nullopt;
}

// Flat JSON from our own script: "key": number or "key": "string".
inline std::map<std::string, double> parse_numbers(const std::string& json, std::string& version) {
  std::map<std::string, double> out;
  std::size_t i = 0;
  while ((i = json.find('"', i)) != std::string::npos) {
    auto j = json.find('"', i + 1);
    if (j == std::string::npos) break;
    auto key = json.substr(i + 1, j - i - 1);
    auto colon = json.find(':', j);
    if (colon == std::string::npos) break;
    auto v = colon + 1;
    while (v < json.size() && json[v] == ' ') ++v;
    if (v < json.size() && json[v] == '"') {
      auto e = json.find('"', v + 1);
      if (key == "version") version = json.substr(v + 1, e - v - 1);
      i = e + 1;
      continue;
    }
    char* end = nullptr;
    double d = std::strtod(json.c_str() + v, &end);
    if (end != json.c_str() + v) out[key] = d;
    i = static_cast<std::size_t>(end - json.c_str());
  }
  return out;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string fmt(double v, int prec = 1) {
  if (std::isnan(v)) return "n/a";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

struct stats {
  double median = NAN;
  double p90 = NAN;
  std::size_t n = 0;
};

inline stats summarize(std::vector<double> xs) {
  stats s;
  s.n = xs.size();
  if (xs.empty()) return s;
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  s.median = n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
  auto k = static_cast<std::size_t>(std::ceil(0.9 * static_cast<double>(n)));
  s.p90 = xs[std::max<std::size_t>(k, 1) - 1];
  return s;
}

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what.c_str(),
               std::strerror(errno));
  std::exit(2);
}

inline void write_all(int fd, const void* p, std::size_t n) {
  auto* s = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t r = ::write(fd, s, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    s += r;
    n -= static_cast<std::size_t>(r);
  }
}

/// False on EOF before n bytes.
inline bool read_all(int fd, void* p, std::size_t n) {
  auto* s = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::read(fd, s, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("read");
    }
    if (r == 0) return false;
    s += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

/// The futex syscall on a word of the raw shared-memory baselines. Shared
/// (not FUTEX_PRIVATE_FLAG): the word lives in a MAP_SHARED mapping.
inline long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t val) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), op, val, nullptr, nullptr, 0);
}

inline int wait_pid(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) die("waitpid");
  return st;
}

inline void check_exit(int st, const char* who) {
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    throw std::runtime_error(std::string(who) + " child failed (status " + std::to_string(st) +
                             ")");
}

/// Runs the Python workload `script` (a file name in bench/python/) with
/// python3 and the given arguments, and reads the flat JSON it prints. Empty,
/// after saying why, if python3 or the script is missing, or the script failed
/// or did not print `must_have`.
inline std::map<std::string, double> run_python(const std::string& script,
                                                const std::vector<std::string>& args,
                                                const std::string& must_have,
                                                std::string& version) {
  auto exe = find_in_path("python3");
  if (!exe) {
    std::printf("python3 not found: Python ratios skipped\n");
    return {};
  }
  const std::string path = std::string(ISOLA_BENCH_PYTHON_DIR) + "/" + script;
  if (::access(path.c_str(), R_OK) != 0) {
    std::printf("%s not found: Python ratios skipped\n", path.c_str());
    return {};
  }
  // -B: importing bench_common.py writes no __pycache__ into the source tree.
  std::string cmd = shell_quote(*exe) + " -B " + shell_quote(path);
  for (auto& a : args) {
    cmd += ' ';  // (" " + std::string&& trips a GCC 12 -Wrestrict false positive)
    cmd += shell_quote(a);
  }
  std::fflush(stdout);
  std::string out;
  int status = -1;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (std::size_t k; (k = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, k);
    status = ::pclose(p);
  }
  auto numbers = parse_numbers(out, version);
  if (status != 0 || !numbers.count(must_have)) {
    std::printf("python3 failed (status %d): Python ratios skipped\n", status);
    return {};
  }
  return numbers;
}

/// What a Python run gave: its figures by key and its version ("" if skipped).
struct python_result {
  std::map<std::string, double> values;
  std::string version;
  bool empty() const { return values.empty(); }
  /// The figure `key`, NaN if the run was skipped or did not print it.
  double operator[](const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? NAN : it->second;
  }
};

inline python_result run_python(const std::string& script, const std::vector<std::string>& args,
                                const std::string& must_have) {
  python_result r;
  r.values = run_python(script, args, must_have, r.version);
  return r;
}

/// The C++ samples of a benchmark, by case key.
struct samples {
  std::map<std::string, std::vector<double>> by_key;
  void add(const std::string& key, double v) { by_key[key].push_back(v); }
  /// NaN if the case has no samples.
  double median(const std::string& key) const {
    auto it = by_key.find(key);
    return it == by_key.end() ? NAN : summarize(it->second).median;
  }
};

/// Runs `one_round` `repeats` times, the first half (rounded up) before
/// `python` and the rest after, so machine noise hits both sides alike.
template <class Round, class Python>
void rounds_around_python(int repeats, Round&& one_round, Python&& python) {
  const int before = (repeats + 1) / 2;
  for (int i = 0; i < before; ++i) one_round();
  python();
  for (int i = before; i < repeats; ++i) one_round();
}

/// PASS or MISS for a ratio against its target (at least / at most), n/a
/// for NaN. Informational: no benchmark fails on speed.
inline const char* pass_mark(double ratio, double target, bool at_least) {
  if (std::isnan(ratio)) return "n/a";
  return (at_least ? ratio >= target : ratio <= target) ? "PASS" : "MISS";
}

using clk = std::chrono::steady_clock;

inline double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

/// The first line of a benchmark's report: its name, quick or full, CPUs,
/// kernel, date (local time, or UTC saying so), then `extra` (starting with
/// "; ") if any.
inline void print_banner(const char* name, bool quick, unsigned cpus, const std::string& extra = "",
                         bool utc = false) {
  utsname un{};
  ::uname(&un);
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M",
                utc ? std::gmtime(&now) : std::localtime(&now));
  std::printf("isola bench/%s  (%s; %u CPUs; Linux %s; %s%s%s)\n", name, quick ? "quick" : "full",
              cpus, un.release, date, utc ? " UTC" : "", extra.c_str());
}

/// A measured case of the interleaved benchmarks (channels, actors): `once(n)`
/// runs it over n items and returns seconds per item; per-item cases (single
/// spawns) take n samples of once(1) per round instead of one of once(n).
template <class Unit>
struct bench_case {
  bench_case(std::string k, std::string l, Unit unit, long items, long warm,
             std::function<double(long)> f, bool per_item = false)
      : key(std::move(k)),
        label(std::move(l)),
        u(unit),
        n(items),
        warm_n(warm),
        once(std::move(f)),
        per_item_samples(per_item) {}
  std::string key;
  std::string label;
  Unit u;
  long n;       // items per sample (per-item cases: samples per round)
  long warm_n;  // for the warm-up run
  std::function<double(long)> once;
  std::vector<double> samples;
  bool per_item_samples = false;
};

template <class Unit>
void warm_up(std::vector<bench_case<Unit>>& cases) {
  for (auto& c : cases) {
    if (c.per_item_samples)
      for (long i = 0; i < c.warm_n; ++i) c.once(1);
    else
      c.once(std::max(1L, c.warm_n));
  }
}

/// Rounds [from, to): one sample of every case per round, round-robin, so
/// machine noise hits every case alike.
template <class Unit>
void run_rounds(std::vector<bench_case<Unit>>& cases, int from, int to) {
  for (int r = from; r < to; ++r)
    for (auto& c : cases) {
      if (c.per_item_samples)
        for (long i = 0; i < c.n; ++i) c.samples.push_back(c.once(1));
      else
        c.samples.push_back(c.once(c.n));
    }
}

template <class Unit>
const bench_case<Unit>* find_case(const std::vector<bench_case<Unit>>& cases,
                                  const std::string& key) {
  for (auto& c : cases)
    if (c.key == key) return &c;
  return nullptr;
}

/// The case tables of the interleaved benchmarks: every case's median and
/// p90 (and Python's, added as py_KEY), shown in each case's unit.
/// `shown(u, seconds per item)` converts; for a rate, p90 is the rate of the
/// slow end.
template <class Unit>
struct case_report {
  const std::vector<bench_case<Unit>>& cases;
  int width;  // of the label column
  std::function<double(Unit, double)> shown;
  std::map<std::string, stats> st;

  case_report(const std::vector<bench_case<Unit>>& c, int label_width,
              std::function<double(Unit, double)> to_shown)
      : cases(c), width(label_width), shown(std::move(to_shown)) {
    for (auto& k : cases) st[k.key] = summarize(k.samples);
  }
  /// Python's KEY_median and KEY_p90 as the stats of py_KEY.
  void add_python(const python_result& py, const std::string& key, int repeats) {
    st["py_" + key] =
        stats{py[key + "_median"], py[key + "_p90"], static_cast<std::size_t>(repeats)};
  }
  double med(const std::string& k) const { return st.count(k) ? st.at(k).median : NAN; }
  void section(const std::string& title, const char* unit_head,
               const char* count_head = "per sample") const {
    std::printf("\n%s\n%-*s %10s %10s %5s  %s\n", title.c_str(), width, "case", unit_head, "p90",
                "n", count_head);
  }
  void row(const std::string& label, Unit u, const std::string& key, const std::string& count) {
    const stats& s = st[key];
    std::printf("%-*s %10s %10s %5zu  %s\n", width, label.c_str(),
                fmt(shown(u, s.median), 2).c_str(), fmt(shown(u, s.p90), 2).c_str(), s.n,
                count.c_str());
  }
  /// The row of a C++ case, if it ran.
  void cpp_row(const std::string& k) {
    if (auto* c = find_case(cases, k)) row(c->label, c->u, k, std::to_string(c->n));
  }
};

/// A ratio of medians (or a figure) against its target, as the report's
/// last table shows it.
struct ratio_row {
  std::string label;
  double value;
  std::string shown;   // value with its unit
  std::string target;  // empty: informational
  bool pass;
};

/// The ratio table: rows are added with le / ge (a target), info (none) or
/// figure (a value in its own unit), then printed.
class ratio_table {
 public:
  /// `times` shows a ratio ("1.23x").
  explicit ratio_table(std::function<std::string(double)> times = adaptive_times)
      : times_(std::move(times)) {}

  /// Two decimals, three below 1; n/a for NaN.
  static std::string adaptive_times(double v) {
    return std::isnan(v) ? std::string("n/a") : fmt(v, v < 1 ? 3 : 2) + "x";
  }

  void le(std::string label, double v, double target, int prec = 1) {
    rows_.push_back({std::move(label), v, times_(v), "<= " + fmt(target, prec) + "x", v <= target});
  }
  void ge(std::string label, double v, double target) {
    rows_.push_back({std::move(label), v, times_(v), ">= " + fmt(target, 1) + "x", v >= target});
  }
  void info(std::string label, double v) {
    rows_.push_back({std::move(label), v, times_(v), "", true});
  }
  void figure(std::string label, double v, std::string shown, std::string target, bool pass) {
    rows_.push_back({std::move(label), v, std::move(shown), std::move(target), pass});
  }

  void print(const char* title, int label_width, int value_width) const {
    std::printf("\n%-*s %*s %12s %6s\n", label_width, title, value_width, "value", "target", "");
    for (auto& r : rows_)
      std::printf("%-*s %*s %12s %6s\n", label_width, r.label.c_str(), value_width, r.shown.c_str(),
                  r.target.empty() ? "(info)" : r.target.c_str(),
                  std::isnan(r.value) ? "n/a"
                  : r.target.empty()  ? ""
                  : r.pass            ? "PASS"
                                      : "MISS");
  }

 private:
  std::function<std::string(double)> times_;
  std::vector<ratio_row> rows_;
};

/// Memory of a process, kB; -1 where unknown.
struct mem_kb {
  long rss = -1;   // VmRSS
  long pss = -1;   // Pss
  long priv = -1;  // Private_Clean + Private_Dirty
  bool ok() const { return rss >= 0; }
};

inline mem_kb read_mem(pid_t pid) {
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

/// kB as MB with two decimals, n/a if unknown.
inline std::string mb(long kb) { return kb < 0 ? "n/a" : fmt(static_cast<double>(kb) / 1024.0, 2); }

/// A mem_kb from a Python run's figures PREFIXrss_kb, PREFIXpss_kb,
/// PREFIXprivate_kb (-1 where missing).
inline mem_kb python_mem(const python_result& py, const std::string& prefix) {
  auto k = [&](const char* f) {
    double v = py[prefix + f];
    return std::isnan(v) ? -1L : static_cast<long>(v);
  };
  return mem_kb{k("rss_kb"), k("pss_kb"), k("private_kb")};
}

/// Options for an isola::process started with fork (the start method every
/// forked-child case uses, like Python's fork context).
inline isola::process_options forked() {
  return isola::process_options{.method = isola::start_method::fork};
}

/// Joins p; throws if it did not exit with 0.
inline void join_ok(isola::process& p, const char* who) {
  p.join();
  if (p.exitcode() != 0)
    throw std::runtime_error(std::string(who) + " child exited with " +
                             std::to_string(p.exitcode().value_or(-999)));
}

/// A raw forked child running f, ending with _exit (no atexit handlers): it
/// dies with its parent (PR_SET_PDEATHSIG), exits with f's int (0 if f
/// returns nothing), or 1 after saying so if f throws.
template <class F>
pid_t fork_child(F&& f) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    int rc = 0;
    try {
      if constexpr (std::is_void_v<std::invoke_result_t<F&>>)
        f();
      else
        rc = f();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: raw child: %s\n", program_invocation_short_name, e.what());
      rc = 1;
    }
    ::_exit(rc);
  }
  return pid;
}

/// Seconds for one posix_spawn of this binary ("/proc/self/exe", argv[0]
/// `argv0`) with --exit-immediately, and its waitpid: the raw baseline of a
/// fresh process (every benchmark using it returns 0 at once on that flag).
inline double raw_self_spawn_once(const std::string& argv0) {
  std::string a0 = argv0, flag = "--exit-immediately";
  char* args[] = {a0.data(), flag.data(), nullptr};
  auto t0 = clk::now();
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, args, environ);
  if (rc != 0) {
    errno = rc;
    die("posix_spawn");
  }
  int st = wait_pid(pid);
  double s = seconds_since(t0);
  check_exit(st, "posix_spawn");
  return s;
}

/// A start line for multi-process cases: children write 'r' to `note` when
/// ready and 'd' when done; the parent writes one 'g' per child to `go`.
/// Plain pipes, inherited by forked children.
struct gate {
  int go[2] = {-1, -1};
  int note[2] = {-1, -1};
  gate() {
    if (::pipe(go) != 0 || ::pipe(note) != 0) die("pipe");
  }
  ~gate() {
    for (int fd : {go[0], go[1], note[0], note[1]}) ::close(fd);
  }
  gate(const gate&) = delete;
  gate& operator=(const gate&) = delete;
  // in a child
  void ready() const { write_all(note[1], "r", 1); }
  void done() const { write_all(note[1], "d", 1); }
  void wait_go() const {
    char c;
    if (!read_all(go[0], &c, 1)) die("go pipe closed");
  }
  // in the parent
  void wait_notes(int n) const {
    std::vector<char> b(static_cast<std::size_t>(n));
    if (!read_all(note[0], b.data(), b.size())) die("note pipe closed");
  }
  void open(int n) const {
    std::string g(static_cast<std::size_t>(n), 'g');
    write_all(go[1], g.data(), g.size());
  }
};

/// Seconds per round trip of a 4-byte ping-pong over two pipe()s with a
/// forked child: the floor for one message there and back (after 200
/// untimed round trips). Fork it before anything starts threads.
inline double raw_pipe_pingpong(int n) {
  int up[2], down[2];
  if (::pipe(up) != 0 || ::pipe(down) != 0) die("pipe");
  const int warm = 200;
  pid_t pid = ::fork();
  if (pid == 0) {
    int x;
    for (int i = 0; i < warm + n; ++i) {
      if (!read_all(down[0], &x, 4)) ::_exit(1);
      write_all(up[1], &x, 4);
    }
    ::_exit(0);
  }
  auto one = [&](int i) {
    write_all(down[1], &i, 4);
    if (!read_all(up[0], &i, 4)) die("pingpong");
  };
  for (int i = 0; i < warm; ++i) one(i);
  auto t0 = clk::now();
  for (int i = 0; i < n; ++i) one(i);
  double s = seconds_since(t0) / n;
  check_exit(wait_pid(pid), "raw pipe");
  for (int fd : {up[0], up[1], down[0], down[1]}) ::close(fd);
  return s;
}

/// The options the Python-comparing benchmarks share:
///   NAME [--quick] [--repeats R] [--no-python]
/// `extra`, if given, is offered every other argument first (with argv and
/// the index, which it advances past any value it takes) and returns whether
/// it took it; `usage` is then the whole option list of the usage line.
struct common_args {
  bool quick = false;
  bool python = true;
  int repeats = 5;
  bool ok = true;  // false: bad arguments (usage printed)
};
using extra_option = std::function<bool(std::string_view arg, char** argv, int argc, int& i)>;
inline common_args parse_common_args(int argc, char** argv, const char* name,
                                     const extra_option& extra = {},
                                     const char* usage = "[--quick] [--repeats R] [--no-python]") {
  common_args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--quick") {
      a.quick = true;
      a.repeats = 1;
    } else if (s == "--no-python") {
      a.python = false;
    } else if (s == "--repeats" && i + 1 < argc) {
      a.repeats = std::max(1, std::atoi(argv[++i]));
    } else if (!extra || !extra(s, argv, argc, i)) {
      std::fprintf(stderr, "usage: %s %s\n", name, usage);
      a.ok = false;
      return a;
    }
  }
  return a;
}

/// KEY,KEY,... as a list (for --only).
inline std::vector<std::string> split_keys(const std::string& list) {
  std::vector<std::string> keys;
  std::stringstream ss(list);
  for (std::string k; std::getline(ss, k, ',');) keys.push_back(k);
  return keys;
}

}  // namespace isola_bench
