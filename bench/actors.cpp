// bench/actors — what isola's actors cost, against a raw ping-pong written
// here, CAF's own remote actors (BASP over loopback, two processes) and
// Python's multiprocessing, all in one run.
//
//   actors [--quick] [--repeats R] [--no-python] [--no-caf] [--caf-policy P]
//          [--only KEY,KEY...] [--verbose]
//
// --only runs just the C++ cases with those keys (and no Python): for working
// on one case; a full run is what the performance notes quote. --verbose
// prints every sample.
//
// Cases:
// - request round trip of a small int, root thread -> actor -> reply:
//   isola `actor.request<int>(i).get()` to an actor process whose handler
//   returns its argument; vs a raw blocking ping-pong with a forked child over
//   two pipe()s (4-byte write / read); for information a raw AF_UNIX stream
//   socketpair ping-pong, a raw shared-memory futex ping-pong (a word per
//   direction, FUTEX_WAIT / FUTEX_WAKE every time: the mechanism under an
//   isola mailbox, without the mailbox) and the same with isola's waiting
//   policy (poll up to 20 µs with sched_yield, then sleep; wake only a
//   sleeper: the floor for a request done the way isola does it); vs CAF
//   remote actors (a second process, this binary exec'd with --caf-server,
//   publishes an actor with caf::io::publish on 127.0.0.1; this process gets
//   it with remote_actor and a scoped_actor does request(...).receive(...));
//   vs Python (Pipe send / recv with a fork child, bench/python/actors.py).
//   Two placements:
//   "same CPU" (every thread of both processes pinned to one CPU: what the
//   machinery costs per message) and "split CPUs" (one process per CPU: for
//   whoever sleeps while waiting, dominated by waking the other, idle vCPU).
// - one-way throughput between two actor processes: actor A, when told
//   (a request from the root carrying B's handle and n), sends n small
//   messages to actor B, then asks B for its count; B counts each and answers
//   the count. Timed from the root's request to A's reply. CAF: the same
//   shape, A a local actor of this process, B the remote actor in the server
//   process (the hop between processes is A -> B in both). Placements as
//   above; "split": B alone on the second CPU. The targets are checked on
//   split CPUs (two processes side by side); on one CPU the figure is the
//   sum of both sides' costs and is shown for information.
// - spawn to first reply: isola::spawn(make_echo) + a first request answered
//   (forkserver, the default, and spawn), vs a raw posix_spawn of this binary
//   (/proc/self/exe --exit-immediately) + waitpid. Teardown is not timed.
// - idle actor memory: VmRSS from /proc/<pid>/status, Pss and Private_Clean +
//   Private_Dirty from /proc/<pid>/smaps_rollup of an actor that has answered
//   one request and waits for the next; for information the same for the CAF
//   server process, a raw forked child and a Python fork child.
//
// Method: every case is warmed up first (each round-trip sample also starts
// with 200 untimed round trips). A sample is one run of a case over n items
// (round trips, messages) and records time per item; spawn cases record one
// sample per spawn. The C++ cases are interleaved round-robin, half of the
// rounds before the Python script and half after; medians and p90 (the slow
// end). The CAF processes use scheduler.policy=sharing (as isola's node does;
// --caf-policy stealing for CAF's default).
//
// The PASS/MISS markers are informational: a benchmark never fails on speed,
// so the exit status is 0 unless something could not run.
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <isola/actor.hpp>
#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/start_method.hpp>
#include "caf_support.hpp"
#include "support.hpp"

extern char** environ;

using namespace isola_bench;

// ---------------------------------------------------------------- messages

namespace bench_msg {
// A tells A to send n items to B, then to ask B for its count.
struct blast {
  std::int64_t n = 0;
  isola::actor to;
  template <class A>
  void serialize(A& ar) {
    ar(n, to);
  }
};
struct item {
  std::int32_t v = 0;
  template <class A>
  void serialize(A& ar) {
    ar(v);
  }
};
struct count_q {
  template <class A>
  void serialize(A&) {}
};
}  // namespace bench_msg

ISOLA_TYPE_NAME(bench_msg::blast, "bench.blast")
ISOLA_TYPE_NAME(bench_msg::item, "bench.item")
ISOLA_TYPE_NAME(bench_msg::count_q, "bench.count_q")

namespace {

using namespace bench_msg;

// ---------------------------------------------------------------- isola actors

isola::behavior make_echo() {
  return {[](int v) { return v; }};
}

// Each actor is its own process: a global is that actor's state.
std::int64_t g_counted = 0;

isola::behavior make_counter() {
  return {
      [](const item&) { ++g_counted; },
      [](const count_q&) {
        std::int64_t c = g_counted;
        g_counted = 0;
        return c;
      },
  };
}

isola::behavior make_sender() {
  return {[](const blast& b) -> std::int64_t {
    for (std::int64_t i = 0; i < b.n; ++i) b.to.send(item{static_cast<std::int32_t>(i)});
    return b.to.request<std::int64_t>(count_q{}).get();
  }};
}

// ---------------------------------------------------------------- CAF side

using item_atom = caf::atom_constant<caf::atom("item")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using blast_atom = caf::atom_constant<caf::atom("blast")>;

// CAF 0.17 binds a null argument tuple to a function actor spawned without
// arguments (UBSan flags it), hence the unused `int`.

// In the server process: echoes an int32 request, counts items.
caf::behavior caf_peer(caf::event_based_actor*, int) {
  auto n = std::make_shared<std::int64_t>(0);
  return {
      [](std::int32_t v) { return v; },
      [n](item_atom, std::int32_t) { ++*n; },
      [n](count_atom) {
        std::int64_t c = *n;
        *n = 0;
        return c;
      },
  };
}

// In this process: sends n items to b, then asks b for its count and answers
// the trigger with it.
caf::behavior caf_sender(caf::event_based_actor* self, int) {
  return {
      [self](blast_atom, std::int64_t n, caf::actor b) {
        for (std::int64_t i = 0; i < n; ++i)
          self->send(b, item_atom::value, static_cast<std::int32_t>(i));
        auto rp = self->make_response_promise();
        self->request(b, caf::infinite, count_atom::value)
            .then([rp](std::int64_t c) mutable { rp.deliver(c); },
                  [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      },
  };
}

// ---------------------------------------------------------------- placement

struct cpus {
  int first = 0, second = 0;
  cpu_set_t all{};
};

cpus g_cpus;

cpu_set_t one_cpu(int c) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(c, &s);
  return s;
}

// Every thread of pid (CAF processes have several).
void pin_process(pid_t pid, const cpu_set_t& set) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    ::sched_setaffinity(pid, sizeof set, &set);
    return;
  }
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    ::sched_setaffinity(std::atoi(e->d_name), sizeof set, &set);
  }
  ::closedir(d);
}

enum class placement { same, split };
const char* to_string(placement p) { return p == placement::same ? "same CPU" : "split CPUs"; }
const char* key_of(placement p) { return p == placement::same ? "same" : "split"; }

// Pins this process to the first CPU and peer to the first (same) or second
// (split) CPU; the destructor gives both every CPU back.
class placer {
 public:
  placer(placement p, std::vector<pid_t> peers) : peers_(std::move(peers)) {
    pin_process(::getpid(), one_cpu(g_cpus.first));
    auto other = one_cpu(p == placement::same ? g_cpus.first : g_cpus.second);
    for (pid_t q : peers_) pin_process(q, other);
  }
  void add(pid_t q, placement p) {
    pin_process(q, one_cpu(p == placement::same ? g_cpus.first : g_cpus.second));
    peers_.push_back(q);
  }
  ~placer() {
    pin_process(::getpid(), g_cpus.all);
    for (pid_t q : peers_) pin_process(q, g_cpus.all);
  }
  placer(const placer&) = delete;
  placer& operator=(const placer&) = delete;

 private:
  std::vector<pid_t> peers_;
};

// ---------------------------------------------------------------- raw baselines

constexpr int pingpong_warm = 200;

// Over two pipe()s, or (socket) one AF_UNIX stream socketpair. Seconds per
// round trip.
double raw_pingpong(long n, placement where, bool socket) {
  int p2c[2], c2p[2];
  if (socket) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
    p2c[0] = sv[1];
    p2c[1] = sv[0];
    c2p[0] = ::dup(sv[0]);
    c2p[1] = ::dup(sv[1]);
  } else if (::pipe2(p2c, O_CLOEXEC) != 0 || ::pipe2(c2p, O_CLOEXEC) != 0) {
    die("pipe");
  }
  pid_t pid = fork_child([&] {
    ::close(p2c[1]);
    ::close(c2p[0]);
    for (;;) {
      std::int32_t v;
      if (!read_all(p2c[0], &v, 4) || v < 0) return 0;
      write_all(c2p[1], &v, 4);
    }
  });
  ::close(p2c[0]);
  ::close(c2p[1]);
  double s;
  {
    placer pl(where, {pid});
    auto rt = [&](std::int32_t i) {
      write_all(p2c[1], &i, 4);
      std::int32_t v;
      if (!read_all(c2p[0], &v, 4) || v != i) throw std::runtime_error("raw ping-pong: bad reply");
    };
    for (int i = 0; i < pingpong_warm; ++i) rt(i);
    auto t0 = clk::now();
    for (long i = 0; i < n; ++i) rt(static_cast<std::int32_t>(i));
    s = seconds_since(t0);
  }
  std::int32_t stop = -1;
  write_all(p2c[1], &stop, 4);
  ::close(p2c[1]);
  ::close(c2p[0]);
  check_exit(wait_pid(pid), "raw ping-pong");
  return s / static_cast<double>(n);
}

// Shared memory, one word per direction carrying the value; every message is
// a store + FUTEX_WAKE, every wait a FUTEX_WAIT (no spinning).
struct fx_shm {
  alignas(64) std::atomic<std::uint32_t> to_child{0};
  alignas(64) std::atomic<std::uint32_t> to_parent{0};
};

void fx_wait_for(std::atomic<std::uint32_t>& w, std::uint32_t v) {
  for (;;) {
    std::uint32_t cur = w.load(std::memory_order_acquire);
    if (cur == v) return;
    futex(&w, FUTEX_WAIT, cur);
  }
}

double raw_futex_pingpong(long n, placement where) {
  void* mem =
      ::mmap(nullptr, sizeof(fx_shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  auto* s = new (mem) fx_shm;
  const std::uint32_t stop = 0xffffffffu;
  pid_t pid = fork_child([s, stop] {
    for (std::uint32_t k = 1;; ++k) {
      for (;;) {
        std::uint32_t cur = s->to_child.load(std::memory_order_acquire);
        if (cur == stop) return 0;
        if (cur == k) break;
        futex(&s->to_child, FUTEX_WAIT, cur);
      }
      s->to_parent.store(k, std::memory_order_release);
      futex(&s->to_parent, FUTEX_WAKE, 1);
    }
  });
  double secs;
  {
    placer pl(where, {pid});
    std::uint32_t k = 0;
    auto rt = [&] {
      ++k;
      s->to_child.store(k, std::memory_order_release);
      futex(&s->to_child, FUTEX_WAKE, 1);
      fx_wait_for(s->to_parent, k);
    };
    for (int i = 0; i < pingpong_warm; ++i) rt();
    auto t0 = clk::now();
    for (long i = 0; i < n; ++i) rt();
    secs = seconds_since(t0);
  }
  s->to_child.store(stop, std::memory_order_release);
  futex(&s->to_child, FUTEX_WAKE, 1);
  check_exit(wait_pid(pid), "raw futex ping-pong");
  ::munmap(mem, sizeof(fx_shm));
  return secs / static_cast<double>(n);
}

// The same with isola's waiting policy (see actors/src/core.cpp): a waiter
// polls for up to 20 µs, calling sched_yield between polls, before it
// sleeps, and says so in a flag; the other side stores its message and makes
// the FUTEX_WAKE call only when that flag is set. The floor for a request
// round trip done the way isola does it.
struct fxs_word {
  alignas(64) std::atomic<std::uint32_t> value{0};
  std::atomic<std::uint32_t> sleeping{0};
};
struct fxs_shm {
  fxs_word to_child, to_parent;
};

// Waits until w.value is v or stop (returns false for stop).
bool fxs_wait(fxs_word& w, std::uint32_t v, std::uint32_t stop) {
  auto seen = [&] {
    std::uint32_t c = w.value.load(std::memory_order_acquire);
    return c == v || c == stop;
  };
  auto start = clk::now();
  bool ok = seen();
  while (!ok && clk::now() - start < std::chrono::microseconds(20)) {
    ::sched_yield();
    ok = seen();
  }
  while (!ok) {
    w.sleeping.store(1, std::memory_order_seq_cst);
    std::uint32_t c = w.value.load(std::memory_order_seq_cst);
    if (c != v && c != stop) futex(&w.value, FUTEX_WAIT, c);
    w.sleeping.store(0, std::memory_order_relaxed);
    ok = seen();
  }
  return w.value.load(std::memory_order_acquire) != stop;
}

void fxs_send(fxs_word& w, std::uint32_t v) {
  w.value.store(v, std::memory_order_seq_cst);
  if (w.sleeping.load(std::memory_order_seq_cst)) futex(&w.value, FUTEX_WAKE, 1);
}

double raw_spin_futex_pingpong(long n, placement where) {
  void* mem =
      ::mmap(nullptr, sizeof(fxs_shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  auto* s = new (mem) fxs_shm;
  const std::uint32_t stop = 0xffffffffu;
  pid_t pid = fork_child([s, stop] {
    for (std::uint32_t k = 1;; ++k) {
      if (!fxs_wait(s->to_child, k, stop)) return 0;
      fxs_send(s->to_parent, k);
    }
  });
  double secs;
  {
    placer pl(where, {pid});
    std::uint32_t k = 0;
    auto rt = [&] {
      ++k;
      fxs_send(s->to_child, k);
      fxs_wait(s->to_parent, k, stop);
    };
    for (int i = 0; i < pingpong_warm; ++i) rt();
    auto t0 = clk::now();
    for (long i = 0; i < n; ++i) rt();
    secs = seconds_since(t0);
  }
  fxs_send(s->to_child, stop);
  check_exit(wait_pid(pid), "raw spin+futex ping-pong");
  ::munmap(mem, sizeof(fxs_shm));
  return secs / static_cast<double>(n);
}

// ---------------------------------------------------------------- isola cases

struct isola_side {
  isola::actor echo;     // round trips
  isola::actor sender;   // A
  isola::actor counter;  // B
};

double isola_round_trip(isola_side& is, long n, placement where) {
  placer pl(where, {is.echo.pid()});
  for (int i = 0; i < pingpong_warm; ++i)
    if (is.echo.request<int>(i).get() != i) throw std::runtime_error("isola echo: bad reply");
  auto t0 = clk::now();
  for (long i = 0; i < n; ++i)
    if (is.echo.request<int>(static_cast<int>(i)).get() != static_cast<int>(i))
      throw std::runtime_error("isola echo: bad reply");
  return seconds_since(t0) / static_cast<double>(n);
}

// Root and A on the first CPU; B on the first (same) or second (split).
double isola_throughput(isola_side& is, long n, placement where) {
  placer pl(placement::same, {is.sender.pid()});
  pl.add(is.counter.pid(), where);
  auto t0 = clk::now();
  auto got = is.sender.request<std::int64_t>(blast{n, is.counter}).get();
  double s = seconds_since(t0);
  if (got != n)
    throw std::runtime_error("isola throughput: B counted " + std::to_string(got) + " of " +
                             std::to_string(n));
  return s / static_cast<double>(n);
}

void stop_and_wait(const isola::actor& a) {
  auto d = a.monitor();
  a.stop();
  d.get(std::chrono::seconds(30));
}

double isola_spawn_once(isola::start_method m) {
  isola::spawn_options o;
  o.method = m;
  auto t0 = clk::now();
  auto a = isola::spawn(o, make_echo);
  int r = a.request<int>(7).get();
  double s = seconds_since(t0);
  if (r != 7) throw std::runtime_error("isola spawn: bad first reply");
  stop_and_wait(a);
  return s;
}

// ---------------------------------------------------------------- CAF cases

// CAF's remote peer (caf_support.hpp) plus a local sender actor (A) for the
// one-way case.
struct caf_side : caf_remote_peer {
  caf::actor sender;
  caf_side(const std::string& argv0, const std::string& policy) : caf_remote_peer(argv0, policy) {
    sender = sys->spawn(caf_sender, 0);
  }
  ~caf_side() {
    caf::anon_send_exit(sender, caf::exit_reason::user_shutdown);
    sender = nullptr;
  }
};

double caf_round_trip(caf_side& cs, long n, placement where) {
  placer pl(where, {cs.server});
  for (int i = 0; i < pingpong_warm; ++i) cs.echo(i);
  auto t0 = clk::now();
  for (long i = 0; i < n; ++i) cs.echo(static_cast<std::int32_t>(i));
  return seconds_since(t0) / static_cast<double>(n);
}

double caf_throughput(caf_side& cs, long n, placement where) {
  placer pl(where, {cs.server});
  std::int64_t got = -1;
  auto t0 = clk::now();
  (*cs.self)
      ->request(cs.sender, caf::infinite, blast_atom::value, static_cast<std::int64_t>(n), cs.peer)
      .receive([&](std::int64_t c) { got = c; }, [&](caf::error&) { got = -2; });
  double s = seconds_since(t0);
  if (got != n)
    throw std::runtime_error("caf throughput: B counted " + std::to_string(got) + " of " +
                             std::to_string(n));
  return s / static_cast<double>(n);
}

// ---------------------------------------------------------------- memory

mem_kb isola_actor_mem(isola::start_method m) {
  isola::spawn_options o;
  o.method = m;
  auto a = isola::spawn(o, make_echo);
  if (a.request<int>(1).get() != 1) throw std::runtime_error("isola echo: bad reply");
  ::usleep(20000);
  mem_kb r = read_mem(a.pid());
  stop_and_wait(a);
  return r;
}

mem_kb raw_child_mem() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) die("pipe");
  pid_t pid = fork_child([&] {
    char c = 'r';
    if (::write(p[1], &c, 1) != 1) return 1;
    for (;;) ::pause();
  });
  char c;
  mem_kb m;
  if (::read(p[0], &c, 1) == 1) m = read_mem(pid);
  ::close(p[0]);
  ::close(p[1]);
  ::kill(pid, SIGKILL);
  wait_pid(pid);
  return m;
}

// ---------------------------------------------------------------- run

enum class unit { us_per_rt, m_msgs_per_s, us_each };
using actor_case = bench_case<unit>;

struct options {
  common_args common;
  bool caf_on = true, verbose = false;
  std::string policy = "sharing";
  std::vector<std::string> only;
  bool wanted(const std::string& k) const {
    return only.empty() || std::find(only.begin(), only.end(), k) != only.end();
  }
};

// False (after the usage line) on bad arguments.
bool parse_options(int argc, char** argv, options& o) {
  o.common = parse_common_args(
      argc, argv, argv[0],
      [&](std::string_view a, char** v, int c, int& i) {
        if (a == "--verbose") {
          o.verbose = true;
        } else if (a == "--no-caf") {
          o.caf_on = false;
        } else if (a == "--caf-policy" && i + 1 < c) {
          o.policy = v[++i];
        } else if (a == "--only" && i + 1 < c) {
          o.only = split_keys(v[++i]);
        } else {
          return false;
        }
        return true;
      },
      "[--quick] [--repeats R] [--no-python] [--no-caf] [--caf-policy P] [--only KEY,...] "
      "[--verbose]");
  if (!o.common.ok) return false;
  if (!o.only.empty()) {
    o.common.python = false;
    if (std::none_of(o.only.begin(), o.only.end(),
                     [](const std::string& k) { return k.rfind("caf_", 0) == 0; }))
      o.caf_on = false;
  }
  return true;
}

// Counts per sample: each full-size case runs ~0.1-0.5 s on a 2-vCPU VM.
struct sizes {
  long rt_same, rt_split, caf_rt_same, caf_rt_split, tp_n, caf_tp_n, spawns, py_same, py_split;
};

sizes sizes_for(bool quick) {
  return {.rt_same = quick ? 300 : 20000,
          .rt_split = quick ? 100 : 2000,
          .caf_rt_same = quick ? 100 : 4000,
          .caf_rt_split = quick ? 50 : 1000,
          .tp_n = quick ? 20000 : 1000000,
          .caf_tp_n = quick ? 5000 : 100000,
          .spawns = quick ? 2 : 20,
          .py_same = quick ? 200 : 5000,
          .py_split = quick ? 100 : 2000};
}

void find_cpus() {
  cpu_set_t all;
  if (::sched_getaffinity(0, sizeof all, &all) != 0) die("sched_getaffinity");
  int c[2] = {-1, -1}, k = 0;
  for (int i = 0; i < CPU_SETSIZE && k < 2; ++i)
    if (CPU_ISSET(i, &all)) c[k++] = i;
  g_cpus.all = all;
  g_cpus.first = c[0];
  g_cpus.second = c[1] < 0 ? c[0] : c[1];
}

// Memory of idle actors, measured first, while the root is smallest.
struct memory {
  mem_kb fs, sp, raw, caf;
};

// The measured parties: isola actors, and CAF's remote peer unless --no-caf.
struct parties {
  isola_side is;
  std::unique_ptr<caf_side> cs;
};

void add_round_trip_cases(std::vector<actor_case>& cases, parties& ps, const sizes& z) {
  for (placement w : {placement::same, placement::split}) {
    std::string k = key_of(w), l = std::string(", ") + to_string(w);
    long n = w == placement::same ? z.rt_same : z.rt_split;
    long cn = w == placement::same ? z.caf_rt_same : z.caf_rt_split;
    cases.push_back({"raw_pp_" + k, "raw pipe() ping-pong" + l, unit::us_per_rt, n, n / 10,
                     [w](long m) { return raw_pingpong(m, w, false); }});
    cases.push_back({"raw_sp_" + k, "raw socketpair ping-pong (info)" + l, unit::us_per_rt, n,
                     n / 10, [w](long m) { return raw_pingpong(m, w, true); }});
    cases.push_back({"raw_fx_" + k, "raw shm futex ping-pong (info)" + l, unit::us_per_rt, n,
                     n / 10, [w](long m) { return raw_futex_pingpong(m, w); }});
    cases.push_back({"raw_fxs_" + k, "raw shm spin-then-futex ping-pong (info)" + l,
                     unit::us_per_rt, n, n / 10,
                     [w](long m) { return raw_spin_futex_pingpong(m, w); }});
    cases.push_back({"rt_" + k, "isola request<int> round trip" + l, unit::us_per_rt, n, n / 10,
                     [&is = ps.is, w](long m) { return isola_round_trip(is, m, w); }});
    if (ps.cs)
      cases.push_back({"caf_rt_" + k, "CAF remote request/receive" + l, unit::us_per_rt, cn,
                       cn / 10, [&cs = ps.cs, w](long m) { return caf_round_trip(*cs, m, w); }});
  }
}

void add_throughput_cases(std::vector<actor_case>& cases, parties& ps, const sizes& z) {
  for (placement w : {placement::split, placement::same}) {
    std::string k = key_of(w), l = std::string(", ") + to_string(w);
    cases.push_back({"tp_" + k, "isola A -> B one-way" + l, unit::m_msgs_per_s, z.tp_n, z.tp_n / 10,
                     [&is = ps.is, w](long m) { return isola_throughput(is, m, w); }});
    if (ps.cs)
      cases.push_back({"caf_tp_" + k, "CAF A -> remote B one-way" + l, unit::m_msgs_per_s,
                       z.caf_tp_n, z.caf_tp_n / 10,
                       [&cs = ps.cs, w](long m) { return caf_throughput(*cs, m, w); }});
  }
}

void add_spawn_cases(std::vector<actor_case>& cases, const sizes& z, const std::string& argv0) {
  cases.push_back({"raw_spawn", "raw posix_spawn(self, --exit-immediately) + waitpid",
                   unit::us_each, z.spawns, 2, [argv0](long) { return raw_self_spawn_once(argv0); },
                   true});
  cases.push_back({"spawn_fs", "isola::spawn + first reply (forkserver, default)", unit::us_each,
                   z.spawns, 2,
                   [](long) { return isola_spawn_once(isola::start_method::forkserver); }, true});
  cases.push_back({"spawn_sp", "isola::spawn + first reply (spawn)", unit::us_each, z.spawns, 2,
                   [](long) { return isola_spawn_once(isola::start_method::spawn); }, true});
}

// Every case, or those named by --only.
std::vector<actor_case> make_cases(parties& ps, const sizes& z, const options& o,
                                   const std::string& argv0) {
  std::vector<actor_case> cases;
  add_round_trip_cases(cases, ps, z);
  add_throughput_cases(cases, ps, z);
  add_spawn_cases(cases, z, argv0);
  std::erase_if(cases, [&](const actor_case& c) { return !o.wanted(c.key); });
  return cases;
}

// ---------------------------------------------------------------- report

double actors_shown(unit u, double spi) {
  switch (u) {
    case unit::us_per_rt:
    case unit::us_each: return spi * 1e6;
    case unit::m_msgs_per_s: return 1e-6 / spi;
  }
  return NAN;
}

// The tables of this run, C++ cases and Python's (py_KEY) alike.
struct report : case_report<unit> {
  const python_result& py;
  const sizes& z;
  const memory& mem;
  bool caf;

  report(const std::vector<actor_case>& c, const python_result& p, const sizes& sz, const memory& m,
         bool with_caf, int repeats)
      : case_report(c, 58, actors_shown), py(p), z(sz), mem(m), caf(with_caf) {
    if (!py.empty())
      for (const char* k : {"pp_same", "pp_split"}) add_python(py, k, repeats);
  }
  void section(unit u, const char* title) const {
    case_report::section(title, u == unit::m_msgs_per_s ? "M msgs/s" : "median us",
                         u == unit::us_each ? "samples are single spawns" : "per sample");
  }

  void print_samples() const;
  void print_timings();
  void print_memory() const;
  void print_ratios() const;
};

void report::print_samples() const {
  for (auto& c : cases) {
    std::printf("samples %-12s", c.key.c_str());
    for (double v : c.samples) std::printf(" %.3g", c.u == unit::m_msgs_per_s ? 1e-6 / v : v * 1e6);
    std::printf("\n");
  }
}

void report::print_timings() {
  section(unit::us_per_rt,
          "request round trip of a small int, root -> other process -> reply "
          "(p90: slow end)");
  for (placement w : {placement::same, placement::split}) {
    std::string k = key_of(w);
    for (auto pre : {"raw_pp_", "raw_sp_", "raw_fx_", "raw_fxs_", "rt_", "caf_rt_"})
      cpp_row(pre + k);
    if (!py.empty())
      row("python " + py.version + " Pipe send/recv, " + to_string(w), unit::us_per_rt,
          "py_pp_" + k, std::to_string(w == placement::same ? z.py_same : z.py_split));
  }
  section(unit::m_msgs_per_s,
          "one-way throughput, actor A -> actor B in another process (p90: slow end)");
  for (auto k : {"tp_split", "caf_tp_split", "tp_same", "caf_tp_same"}) cpp_row(k);
  section(unit::us_each, "spawn to first reply");
  for (auto k : {"raw_spawn", "spawn_fs", "spawn_sp"}) cpp_row(k);
}

void report::print_memory() const {
  std::printf(
      "\nidle actor memory, MB        (VmRSS counts pages shared with other processes; "
      "Private is what the process adds)\n");
  std::printf("%-58s %10s %10s %10s\n", "process", "VmRSS", "Pss", "Private");
  auto mem_row = [](const std::string& label, const mem_kb& m) {
    std::printf("%-58s %10s %10s %10s\n", label.c_str(), mb(m.rss).c_str(), mb(m.pss).c_str(),
                mb(m.priv).c_str());
  };
  mem_row("isola actor (forkserver, default), after one request", mem.fs);
  mem_row("isola actor (spawn), after one request", mem.sp);
  mem_row("raw forked child of this benchmark (info)", mem.raw);
  if (caf) mem_row("CAF server process, one published actor (info)", mem.caf);
  if (!py.empty())
    mem_row("python " + py.version + " fork child, after one Pipe reply (info)",
            python_mem(py, "mem_"));
}

// Each a ratio of medians taken in this run (or a figure).
void report::print_ratios() const {
  ratio_table r;
  for (placement w : {placement::same, placement::split}) {
    std::string k = key_of(w), l = std::string(", ") + to_string(w);
    r.le("isola request / raw pipe ping-pong" + l, med("rt_" + k) / med("raw_pp_" + k), 1.5);
    if (caf)
      r.le("isola request / CAF remote request" + l, med("rt_" + k) / med("caf_rt_" + k), 1.0 / 3.0,
           3);
    r.info("isola request / raw socketpair ping-pong" + l, med("rt_" + k) / med("raw_sp_" + k));
    r.info("isola request / raw shm futex ping-pong" + l, med("rt_" + k) / med("raw_fx_" + k));
    r.info("isola request / raw shm spin-then-futex ping-pong" + l,
           med("rt_" + k) / med("raw_fxs_" + k));
    if (!py.empty())
      r.info("python Pipe round trip / isola request" + l, med("py_pp_" + k) / med("rt_" + k));
  }
  // The throughput targets are for two processes running side by side
  // (split CPUs); on one CPU the figure is the sum of both sides' costs.
  for (placement w : {placement::split, placement::same}) {
    std::string k = key_of(w), l = std::string(", ") + to_string(w);
    double mps = shown(unit::m_msgs_per_s, med("tp_" + k));
    bool target = w == placement::split;
    r.figure("isola one-way throughput" + l, mps, fmt(mps, 2) + " M/s", target ? ">= 5.0 M/s" : "",
             mps >= 5.0);
    if (!caf) continue;
    if (target)
      r.ge("isola one-way / CAF remote one-way" + l, med("caf_tp_" + k) / med("tp_" + k), 25);
    else
      r.info("isola one-way / CAF remote one-way" + l, med("caf_tp_" + k) / med("tp_" + k));
  }
  r.le("isola spawn + first reply (forkserver) / raw posix_spawn",
       med("spawn_fs") / med("raw_spawn"), 2.0);
  r.le("isola spawn + first reply (spawn) / raw posix_spawn", med("spawn_sp") / med("raw_spawn"),
       2.0);
  for (auto [label, m] : {std::pair{"idle actor VmRSS (forkserver, default)", &mem.fs},
                          std::pair{"idle actor VmRSS (spawn)", &mem.sp}}) {
    double v = m->rss < 0 ? NAN : static_cast<double>(m->rss) / 1024.0;
    r.figure(label, v, fmt(v, 2) + " MB", "<= 3.0 MB", v <= 3.0);
  }
  r.print("ratio of medians (or figure)", 58, 14);
}

// Memory, the parties, the warm-up, the interleaved rounds around the Python
// run, the report; then the parties are stopped.
void run(const options& o, const std::string& argv0) {
  const sizes z = sizes_for(o.common.quick);
  const int repeats = o.common.repeats;
  memory mem;
  mem.fs = isola_actor_mem(isola::start_method::forkserver);
  mem.sp = isola_actor_mem(isola::start_method::spawn);
  mem.raw = raw_child_mem();

  parties ps;
  ps.is.echo = isola::spawn(make_echo);
  ps.is.sender = isola::spawn(make_sender);
  ps.is.counter = isola::spawn(make_counter);
  if (o.caf_on) {
    ps.cs = std::make_unique<caf_side>(argv0, o.policy);
    ps.cs->echo(1);
    ::usleep(20000);
    mem.caf = read_mem(ps.cs->server);
  }

  auto cases = make_cases(ps, z, o, argv0);
  warm_up(cases);
  run_rounds(cases, 0, repeats / 2);
  python_result py;
  if (o.common.python)
    py =
        run_python("actors.py",
                   {std::to_string(repeats), std::to_string(z.py_same), std::to_string(z.py_split)},
                   "pp_split_median");
  run_rounds(cases, repeats / 2, repeats);

  report rep(cases, py, z, mem, ps.cs != nullptr, repeats);
  if (o.verbose) rep.print_samples();
  rep.print_timings();
  rep.print_memory();
  rep.print_ratios();
  std::printf("\n(PASS/MISS are informational; this benchmark exits 0 whatever the speed)\n");
  std::fflush(stdout);

  ps.cs.reset();
  for (auto* a : {&ps.is.echo, &ps.is.sender, &ps.is.counter}) stop_and_wait(*a);
}

}  // namespace

int main(int argc, char** argv) {
  // Not actor processes: the raw spawn baseline and the CAF server are this
  // binary exec'd with a flag, and never start an isola runtime.
  if (argc > 1 && std::string_view(argv[1]) == "--exit-immediately") return 0;
  if (argc > 2 && std::string_view(argv[1]) == "--caf-server")
    return caf_server_main("actors", argv[2],
                           [](caf::actor_system& s) { return s.spawn(caf_peer, 0); });
  isola::runtime rt{argc, argv};

  options o;
  if (!parse_options(argc, argv, o)) return 2;
  find_cpus();
  const std::string argv0 = argv[0];
  print_banner("actors", o.common.quick, isola::cpu_count(),
               "; " + caf_version() + ", scheduler.policy=" + o.policy);
  if (g_cpus.first == g_cpus.second)
    std::printf("one CPU only: \"split CPUs\" runs on the same CPU\n");
  std::fflush(stdout);

  try {
    run(o, argv0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "actors: %s\n", e.what());
    return 1;
  }
  return 0;
}
