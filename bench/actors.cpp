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

#include "caf_support.hpp"
#include "support.hpp"
#include <isola/actor.hpp>
#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/start_method.hpp>

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

// A raw forked child running f (no allocation on its path), ending with _exit.
template <class F>
pid_t fork_child(F&& f) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::_exit(f());
  }
  return pid;
}

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

long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t val) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), op, val, nullptr, nullptr, 0);
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
  void* mem = ::mmap(nullptr, sizeof(fx_shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
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
  void* mem = ::mmap(nullptr, sizeof(fxs_shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
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
  isola::actor echo;    // round trips
  isola::actor sender;  // A
  isola::actor counter; // B
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

double raw_spawn_once(const std::string& argv0) {
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

struct mem_kb {
  long rss = -1;   // VmRSS
  long pss = -1;   // Pss
  long priv = -1;  // Private_Clean + Private_Dirty
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

std::string mb(long kb) { return kb < 0 ? "n/a" : fmt(static_cast<double>(kb) / 1024.0, 2); }

// ---------------------------------------------------------------- output

enum class unit { us_per_rt, m_msgs_per_s, us_each };

struct bench_case {
  std::string key;
  std::string label;
  unit u;
  long n;                            // items per sample (spawn cases: spawns per round)
  long warm_n;
  std::function<double(long)> once;  // seconds per item (spawn: seconds for one)
  std::vector<double> samples;
  bool per_item_samples = false;     // spawn cases: n samples of one spawn each
};

struct ratio_row {
  std::string label;
  double value;
  std::string shown;
  std::string target;  // empty: informational
  bool pass;
};

}  // namespace

int main(int argc, char** argv) {
  // Not actor processes: the raw spawn baseline and the CAF server are this
  // binary exec'd with a flag, and never start an isola runtime.
  if (argc > 1 && std::string_view(argv[1]) == "--exit-immediately") return 0;
  if (argc > 2 && std::string_view(argv[1]) == "--caf-server")
    return caf_server_main("actors", argv[2], [](caf::actor_system& s) { return s.spawn(caf_peer, 0); });
  isola::runtime rt{argc, argv};

  bool quick = false, python = true, caf_on = true, verbose = false;
  int repeats = 5;
  std::string policy = "sharing";
  std::vector<std::string> only;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--no-python") {
      python = false;
    } else if (a == "--verbose") {
      verbose = true;
    } else if (a == "--no-caf") {
      caf_on = false;
    } else if (a == "--caf-policy" && i + 1 < argc) {
      policy = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      std::stringstream keys(argv[++i]);
      for (std::string k; std::getline(keys, k, ',');) only.push_back(k);
      python = false;
    } else if (a == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--repeats R] [--no-python] [--no-caf] "
                   "[--caf-policy P] [--only KEY,...] [--verbose]\n",
                   argv[0]);
      return 2;
    }
  }
  if (quick) repeats = 1;
  if (!only.empty() &&
      std::none_of(only.begin(), only.end(), [](const std::string& k) { return k.rfind("caf_", 0) == 0; }))
    caf_on = false;
  auto wanted = [&](const std::string& k) {
    return only.empty() || std::find(only.begin(), only.end(), k) != only.end();
  };

  // Counts per sample: each full-size case runs ~0.1-0.5 s on a 2-vCPU VM.
  const long rt_same = quick ? 300 : 20000, rt_split = quick ? 100 : 2000;
  const long caf_rt_same = quick ? 100 : 4000, caf_rt_split = quick ? 50 : 1000;
  const long tp_n = quick ? 20000 : 1000000, caf_tp_n = quick ? 5000 : 100000;
  const long spawns = quick ? 2 : 20;
  const long py_same = quick ? 200 : 5000, py_split = quick ? 100 : 2000;

  {
    cpu_set_t all;
    if (::sched_getaffinity(0, sizeof all, &all) != 0) die("sched_getaffinity");
    int c[2] = {-1, -1}, k = 0;
    for (int i = 0; i < CPU_SETSIZE && k < 2; ++i)
      if (CPU_ISSET(i, &all)) c[k++] = i;
    g_cpus.all = all;
    g_cpus.first = c[0];
    g_cpus.second = c[1] < 0 ? c[0] : c[1];
  }
  const std::string argv0 = argv[0];

  utsname un{};
  ::uname(&un);
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M", std::localtime(&now));
  std::printf("isola bench/actors  (%s; %u CPUs; Linux %s; %s; CAF %d.%d.%d, scheduler.policy=%s)\n",
              quick ? "quick" : "full", isola::cpu_count(), un.release, date,
              CAF_VERSION / 10000, CAF_VERSION / 100 % 100, CAF_VERSION % 100, policy.c_str());
  if (g_cpus.first == g_cpus.second)
    std::printf("one CPU only: \"split CPUs\" runs on the same CPU\n");
  std::fflush(stdout);

  int rc = 0;
  try {
    // ---- memory of idle actors, first, while the root is smallest
    mem_kb m_fs = isola_actor_mem(isola::start_method::forkserver);
    mem_kb m_sp = isola_actor_mem(isola::start_method::spawn);
    mem_kb m_raw = raw_child_mem();

    isola_side is;
    is.echo = isola::spawn(make_echo);
    is.sender = isola::spawn(make_sender);
    is.counter = isola::spawn(make_counter);
    std::unique_ptr<caf_side> cs;
    mem_kb m_caf;
    if (caf_on) {
      cs = std::make_unique<caf_side>(argv0, policy);
      cs->echo(1);
      ::usleep(20000);
      m_caf = read_mem(cs->server);
    }

    std::vector<bench_case> cases;
    auto add = [&](std::string key, std::string label, unit u, long n, long warm,
                   std::function<double(long)> f, bool per_item = false) {
      if (!wanted(key)) return;
      cases.push_back({std::move(key), std::move(label), u, n, warm, std::move(f), {}, per_item});
    };
    for (placement w : {placement::same, placement::split}) {
      std::string k = key_of(w), l = std::string(", ") + to_string(w);
      long n = w == placement::same ? rt_same : rt_split;
      long cn = w == placement::same ? caf_rt_same : caf_rt_split;
      add("raw_pp_" + k, "raw pipe() ping-pong" + l, unit::us_per_rt, n, n / 10,
          [w](long m) { return raw_pingpong(m, w, false); });
      add("raw_sp_" + k, "raw socketpair ping-pong (info)" + l, unit::us_per_rt, n, n / 10,
          [w](long m) { return raw_pingpong(m, w, true); });
      add("raw_fx_" + k, "raw shm futex ping-pong (info)" + l, unit::us_per_rt, n, n / 10,
          [w](long m) { return raw_futex_pingpong(m, w); });
      add("raw_fxs_" + k, "raw shm spin-then-futex ping-pong (info)" + l, unit::us_per_rt, n,
          n / 10, [w](long m) { return raw_spin_futex_pingpong(m, w); });
      add("rt_" + k, "isola request<int> round trip" + l, unit::us_per_rt, n, n / 10,
          [&is, w](long m) { return isola_round_trip(is, m, w); });
      if (cs)
        add("caf_rt_" + k, "CAF remote request/receive" + l, unit::us_per_rt, cn, cn / 10,
            [&cs, w](long m) { return caf_round_trip(*cs, m, w); });
    }
    for (placement w : {placement::split, placement::same}) {
      std::string k = key_of(w), l = std::string(", ") + to_string(w);
      add("tp_" + k, "isola A -> B one-way" + l, unit::m_msgs_per_s, tp_n, tp_n / 10,
          [&is, w](long m) { return isola_throughput(is, m, w); });
      if (cs)
        add("caf_tp_" + k, "CAF A -> remote B one-way" + l, unit::m_msgs_per_s, caf_tp_n,
            caf_tp_n / 10, [&cs, w](long m) { return caf_throughput(*cs, m, w); });
    }
    add("raw_spawn", "raw posix_spawn(self, --exit-immediately) + waitpid", unit::us_each, spawns,
        2, [argv0](long) { return raw_spawn_once(argv0); }, true);
    add("spawn_fs", "isola::spawn + first reply (forkserver, default)", unit::us_each, spawns, 2,
        [](long) { return isola_spawn_once(isola::start_method::forkserver); }, true);
    add("spawn_sp", "isola::spawn + first reply (spawn)", unit::us_each, spawns, 2,
        [](long) { return isola_spawn_once(isola::start_method::spawn); }, true);

    // ---- warm-up, then rounds
    for (auto& c : cases) {
      if (c.per_item_samples)
        for (long i = 0; i < c.warm_n; ++i) c.once(1);
      else
        c.once(std::max(1L, c.warm_n));
    }
    auto run_rounds = [&](int from, int to) {
      for (int r = from; r < to; ++r)
        for (auto& c : cases) {
          if (c.per_item_samples)
            for (long i = 0; i < c.n; ++i) c.samples.push_back(c.once(1));
          else
            c.samples.push_back(c.once(c.n));
        }
    };
    run_rounds(0, repeats / 2);

    // ---- Python
    std::map<std::string, double> py;
    std::string py_version;
    if (python) {
      py = run_python("actors.py", {std::to_string(repeats), std::to_string(py_same), std::to_string(py_split)},
                      "pp_split_median", py_version);
    }

    run_rounds(repeats / 2, repeats);

    // ---- report
    if (verbose)
      for (auto& c : cases) {
        std::printf("samples %-12s", c.key.c_str());
        for (double v : c.samples)
          std::printf(" %.3g", c.u == unit::m_msgs_per_s ? 1e-6 / v : v * 1e6);
        std::printf("\n");
      }
    std::map<std::string, stats> st;
    for (auto& c : cases) st[c.key] = summarize(c.samples);
    if (!py.empty())
      for (const char* k : {"pp_same", "pp_split"})
        st[std::string("py_") + k] = stats{py[std::string(k) + "_median"],
                                           py[std::string(k) + "_p90"],
                                           static_cast<std::size_t>(repeats)};
    auto shown = [](unit u, double spi) -> double {
      switch (u) {
        case unit::us_per_rt:
        case unit::us_each:
          return spi * 1e6;
        case unit::m_msgs_per_s:
          return 1e-6 / spi;
      }
      return NAN;
    };
    auto row = [&](const std::string& label, unit u, const stats& s, const std::string& count) {
      std::printf("%-58s %10s %10s %5zu  %s\n", label.c_str(), fmt(shown(u, s.median), 2).c_str(),
                  fmt(shown(u, s.p90), 2).c_str(), s.n, count.c_str());
    };
    auto section = [&](unit u, const char* title) {
      const char* h = u == unit::us_per_rt ? "median us" : u == unit::us_each ? "median us"
                                                                             : "M msgs/s";
      std::printf("\n%s\n%-58s %10s %10s %5s  %s\n", title, "case", h, "p90", "n",
                  u == unit::us_each ? "samples are single spawns" : "per sample");
    };
    auto by_key = [&](const std::string& k) -> bench_case* {
      for (auto& c : cases)
        if (c.key == k) return &c;
      return nullptr;
    };
    auto cpp_row = [&](const std::string& k) {
      if (auto* c = by_key(k)) row(c->label, c->u, st[k], std::to_string(c->n));
    };

    section(unit::us_per_rt, "request round trip of a small int, root -> other process -> reply "
                             "(p90: slow end)");
    for (placement w : {placement::same, placement::split}) {
      std::string k = key_of(w);
      for (auto pre : {"raw_pp_", "raw_sp_", "raw_fx_", "raw_fxs_", "rt_", "caf_rt_"})
        cpp_row(pre + k);
      if (!py.empty())
        row("python " + py_version + " Pipe send/recv, " + to_string(w), unit::us_per_rt,
            st["py_pp_" + k], std::to_string(w == placement::same ? py_same : py_split));
    }
    section(unit::m_msgs_per_s,
            "one-way throughput, actor A -> actor B in another process (p90: slow end)");
    for (auto k : {"tp_split", "caf_tp_split", "tp_same", "caf_tp_same"}) cpp_row(k);
    section(unit::us_each, "spawn to first reply");
    for (auto k : {"raw_spawn", "spawn_fs", "spawn_sp"}) cpp_row(k);

    std::printf("\nidle actor memory, MB        (VmRSS counts pages shared with other processes; "
                "Private is what the process adds)\n");
    std::printf("%-58s %10s %10s %10s\n", "process", "VmRSS", "Pss", "Private");
    auto mem_row = [](const std::string& label, const mem_kb& m) {
      std::printf("%-58s %10s %10s %10s\n", label.c_str(), mb(m.rss).c_str(), mb(m.pss).c_str(),
                  mb(m.priv).c_str());
    };
    mem_row("isola actor (forkserver, default), after one request", m_fs);
    mem_row("isola actor (spawn), after one request", m_sp);
    mem_row("raw forked child of this benchmark (info)", m_raw);
    if (cs) mem_row("CAF server process, one published actor (info)", m_caf);
    if (!py.empty()) {
      auto k = [&](const char* f) {
        auto it = py.find(std::string("mem_") + f);
        return it == py.end() ? -1L : static_cast<long>(it->second);
      };
      mem_row("python " + py_version + " fork child, after one Pipe reply (info)",
              mem_kb{k("rss_kb"), k("pss_kb"), k("private_kb")});
    }

    // ---- ratios (each of medians taken in this run)
    std::vector<ratio_row> ratios;
    auto med = [&](const std::string& k) { return st.count(k) ? st[k].median : NAN; };
    auto x = [](double v) { return std::isnan(v) ? std::string("n/a") : fmt(v, v < 1 ? 3 : 2) + "x"; };
    auto le = [&](std::string label, double v, double target, int prec = 1) {
      ratios.push_back({std::move(label), v, x(v), "<= " + fmt(target, prec) + "x", v <= target});
    };
    auto ge = [&](std::string label, double v, double target) {
      ratios.push_back({std::move(label), v, x(v), ">= " + fmt(target, 1) + "x", v >= target});
    };
    auto info = [&](std::string label, double v) {
      ratios.push_back({std::move(label), v, x(v), "", true});
    };
    for (placement w : {placement::same, placement::split}) {
      std::string k = key_of(w), l = std::string(", ") + to_string(w);
      le("isola request / raw pipe ping-pong" + l, med("rt_" + k) / med("raw_pp_" + k), 1.5);
      if (cs) le("isola request / CAF remote request" + l, med("rt_" + k) / med("caf_rt_" + k),
                 1.0 / 3.0, 3);
      info("isola request / raw socketpair ping-pong" + l, med("rt_" + k) / med("raw_sp_" + k));
      info("isola request / raw shm futex ping-pong" + l, med("rt_" + k) / med("raw_fx_" + k));
      info("isola request / raw shm spin-then-futex ping-pong" + l,
           med("rt_" + k) / med("raw_fxs_" + k));
      if (!py.empty()) info("python Pipe round trip / isola request" + l,
                            med("py_pp_" + k) / med("rt_" + k));
    }
    // The throughput targets are for two processes running side by side
    // (split CPUs); on one CPU the figure is the sum of both sides' costs.
    for (placement w : {placement::split, placement::same}) {
      std::string k = key_of(w), l = std::string(", ") + to_string(w);
      double mps = shown(unit::m_msgs_per_s, med("tp_" + k));
      bool target = w == placement::split;
      ratios.push_back({"isola one-way throughput" + l, mps, fmt(mps, 2) + " M/s",
                        target ? ">= 5.0 M/s" : "", mps >= 5.0});
      if (!cs) continue;
      if (target)
        ge("isola one-way / CAF remote one-way" + l, med("caf_tp_" + k) / med("tp_" + k), 25);
      else
        info("isola one-way / CAF remote one-way" + l, med("caf_tp_" + k) / med("tp_" + k));
    }
    le("isola spawn + first reply (forkserver) / raw posix_spawn",
       med("spawn_fs") / med("raw_spawn"), 2.0);
    le("isola spawn + first reply (spawn) / raw posix_spawn", med("spawn_sp") / med("raw_spawn"),
       2.0);
    for (auto [label, m] : {std::pair{"idle actor VmRSS (forkserver, default)", &m_fs},
                            std::pair{"idle actor VmRSS (spawn)", &m_sp}}) {
      double v = m->rss < 0 ? NAN : static_cast<double>(m->rss) / 1024.0;
      ratios.push_back({label, v, fmt(v, 2) + " MB", "<= 3.0 MB", v <= 3.0});
    }

    std::printf("\n%-58s %14s %12s %6s\n", "ratio of medians (or figure)", "value", "target", "");
    for (auto& r : ratios)
      std::printf("%-58s %14s %12s %6s\n", r.label.c_str(), r.shown.c_str(),
                  r.target.empty() ? "(info)" : r.target.c_str(),
                  std::isnan(r.value) ? "n/a"
                  : r.target.empty()  ? ""
                  : r.pass            ? "PASS"
                                      : "MISS");
    std::printf("\n(PASS/MISS are informational; this benchmark exits 0 whatever the speed)\n");
    std::fflush(stdout);

    cs.reset();
    for (auto* a : {&is.echo, &is.sender, &is.counter}) stop_and_wait(*a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "actors: %s\n", e.what());
    rc = 1;
  }
  return rc;
}
