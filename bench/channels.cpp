// bench/channels — how fast processes hand each other messages: isola's pipe
// (connection) and queues, against Python's multiprocessing and raw-OS
// baselines written here, all in one run.
//
//   channels [--quick] [--repeats R] [--no-python] [--only KEY,KEY...]
//
// --only runs just the C++ cases with those keys (and no Python): for
// working on one case; a full run is what the performance notes quote.
//
// Cases (every process is a fork of this one; Python uses the fork context):
// - round trip of a small int, parent <-> child ping-pong: isola::pipe()
//   (the default, duplex: a socketpair) and two isola::pipe(false) (simplex:
//   real pipes), send<int>/recv<int>, vs raw blocking pipe() ping-pong (two
//   pipes, 4-byte write/read) vs Python Pipe send/recv; for information also
//   a raw AF_UNIX stream socketpair ping-pong, the transport under a duplex
//   connection.
//   Three placements: "same CPU" (both pinned to one CPU: the per-message cost
//   of the channel), "split CPUs" (one pinned per CPU: dominated by waking a
//   sleeping CPU), "free" (the scheduler decides; on 2 CPUs it lands on one
//   or the other from run to run, so it is informational only).
// - queue throughput of small ints, producer and consumer child processes:
//   1 -> 1: isola::queue<int> vs a raw shared-memory SPSC ring (mmap
//   MAP_SHARED|MAP_ANONYMOUS before fork, atomic head/tail, each item
//   published on its own, a short spin then futex wait, a futex wake only
//   when the other side sleeps) vs Python Queue;
//   2 -> 2: isola::queue<int> vs Python Queue;
//   joinable: the parent puts n items then join()s, one consumer child
//   get()s and task_done()s each: isola::joinable_queue<int> vs Python
//   JoinableQueue.
// - bulk: 64 MiB messages from a child to the parent. Through a queue
//   (isola::queue<std::vector<std::byte>> put and get (a new vector each) or
//   get_into (a reused one), Python Queue put/get of bytes, raw: the SPSC
//   ring above in 256 KiB chunks into a reused buffer) and through a pipe
//   (isola send_bytes and recv_bytes (a new vector each) or recv_bytes_into
//   (a reused buffer), over pipe() and over pipe(false); Python
//   send_bytes/recv_bytes; raw: pipe() with 1 MiB writes and reads into a
//   reused buffer, and the same over a socketpair, each with the kernel
//   buffer isola sets for large messages).
//
// Method:
// - A sample is one run of a case over n items; what it records is time per
//   item (per round trip, per int, per 64 MiB message). Every case is warmed
//   up with a small run first. The C++ cases are interleaved round-robin (one
//   sample of each per round), half of the rounds before the Python run and
//   half after, so machine noise hits every case alike and the ratios hold.
// - Throughput cases start their children first; each child signals ready on
//   a pipe, then the parent takes t0 and lets the producers go; t1 is when
//   every consumer has signalled done (process start and exit are not timed).
//   Ping-pong children are started, warmed up (200 round trips), then timed.
// - Python runs once, in a child `python3` process, with bench/python/channels.py
//   doing the same workloads with the same shapes and placements (counts
//   smaller where Python is slow), its samples interleaved the same way; its
//   medians come back as JSON on stdout.
// - Reported: median and p90 of the samples (p90 is the slow end: for a rate,
//   the rate of the sample at the 90th percentile of time per item).
//
// The PASS/MISS markers are informational: a benchmark never fails on speed,
// so the exit status is 0 unless something could not run.
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
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
#include <cstddef>
#include <cstdint>
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

#include <isola/connection.hpp>
#include <isola/process.hpp>
#include <isola/runtime.hpp>
#include <isola/start_method.hpp>
#include "support.hpp"

#if __has_include(<isola/queue.hpp>) && __has_include(<isola/joinable_queue.hpp>)
#include <isola/joinable_queue.hpp>
#include <isola/queue.hpp>
#define CHANNELS_HAVE_QUEUE 1
#else
#define CHANNELS_HAVE_QUEUE 0
#endif

using namespace isola_bench;

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

// ---------------------------------------------------------------- helpers

// Where the two processes of a ping-pong run. free: wherever the scheduler
// puts them (on a 2-CPU machine it moves between "same" and "split" from one
// run to the next, so it is bimodal); same: both pinned to one CPU; split:
// one per CPU (parent on the first CPU, child on the second).
enum class placement { free, same, split };

const char* to_string(placement p) {
  return p == placement::free ? "free" : p == placement::same ? "same CPU" : "split CPUs";
}

// Construct before starting the child (which inherits the CPU mask set here),
// call child_started() right after; the destructor restores the old mask.
class placer {
 public:
  explicit placer(placement p) : p_(p) {
    if (p_ == placement::free) return;
    if (::sched_getaffinity(0, sizeof old_, &old_) != 0) die("sched_getaffinity");
    int cpus[2] = {-1, -1}, k = 0;
    for (int c = 0; c < CPU_SETSIZE && k < 2; ++c)
      if (CPU_ISSET(c, &old_)) cpus[k++] = c;
    first_ = cpus[0];
    second_ = cpus[1] < 0 ? cpus[0] : cpus[1];
    pin(p_ == placement::same ? first_ : second_);
  }
  void child_started() {
    if (p_ == placement::split) pin(first_);
  }
  ~placer() {
    if (p_ != placement::free) ::sched_setaffinity(0, sizeof old_, &old_);
  }
  placer(const placer&) = delete;
  placer& operator=(const placer&) = delete;

 private:
  static void pin(int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0) die("sched_setaffinity");
  }
  placement p_;
  cpu_set_t old_{};
  int first_ = 0, second_ = 0;
};

// A buffer whose pages are all touched, so no first-touch fault is timed.
std::vector<std::byte> touched_buffer(std::size_t n) {
  return std::vector<std::byte>(n, std::byte{1});
}

// ---------------------------------------------------------------- raw SPSC ring

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// The shared part: positions count bytes since the start and never wrap.
struct ring_shm {
  static constexpr std::size_t cap = MiB;          // a power of two
  alignas(64) std::atomic<std::uint64_t> head{0};  // next byte the consumer reads
  alignas(64) std::atomic<std::uint64_t> tail{0};  // next byte the producer writes
  alignas(64) std::atomic<std::uint32_t> consumer_sleeps{0};
  alignas(64) std::atomic<std::uint32_t> producer_sleeps{0};
  alignas(64) unsigned char data[cap];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

constexpr int ring_spin = 2000;  // pause iterations before sleeping (~30 µs here)

// Created before the fork, unmapped by whoever holds it at the end.
class raw_ring {
 public:
  raw_ring() {
    void* p = ::mmap(nullptr, sizeof(ring_shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (p == MAP_FAILED) die("mmap");
    std::memset(p, 0, sizeof(ring_shm));  // fault every page in before the fork
    s_ = new (p) ring_shm;
  }
  ~raw_ring() { ::munmap(s_, sizeof(ring_shm)); }
  raw_ring(const raw_ring&) = delete;
  raw_ring& operator=(const raw_ring&) = delete;

  // Producer side (one process). Writes n bytes, publishing at most `chunk`
  // at a time; blocks while the ring is full.
  void put(const void* src, std::size_t n, std::size_t chunk = ring_shm::cap) {
    auto* p = static_cast<const unsigned char*>(src);
    while (n > 0) {
      std::uint64_t t = s_->tail.load(std::memory_order_relaxed);
      std::size_t space = ring_shm::cap - static_cast<std::size_t>(t - head_cache_);
      if (space == 0) {
        head_cache_ = s_->head.load(std::memory_order_acquire);
        space = ring_shm::cap - static_cast<std::size_t>(t - head_cache_);
        if (space == 0) {
          wait_space(t);
          continue;
        }
      }
      std::size_t k = std::min({n, space, chunk});
      copy_in(t, p, k);
      // seq_cst: the store must be visible before we look at consumer_sleeps.
      s_->tail.store(t + k, std::memory_order_seq_cst);
      if (s_->consumer_sleeps.load(std::memory_order_seq_cst)) {
        s_->consumer_sleeps.store(0, std::memory_order_seq_cst);
        futex(&s_->consumer_sleeps, FUTEX_WAKE, 1);
      }
      p += k;
      n -= k;
    }
  }

  // Consumer side (one process). Reads exactly n bytes; blocks while empty.
  void get(void* dst, std::size_t n) {
    auto* p = static_cast<unsigned char*>(dst);
    while (n > 0) {
      std::uint64_t h = s_->head.load(std::memory_order_relaxed);
      std::size_t avail = static_cast<std::size_t>(tail_cache_ - h);
      if (avail == 0) {
        tail_cache_ = s_->tail.load(std::memory_order_acquire);
        avail = static_cast<std::size_t>(tail_cache_ - h);
        if (avail == 0) {
          wait_data(h);
          continue;
        }
      }
      std::size_t k = std::min(n, avail);
      copy_out(h, p, k);
      s_->head.store(h + k, std::memory_order_seq_cst);
      if (s_->producer_sleeps.load(std::memory_order_seq_cst)) {
        s_->producer_sleeps.store(0, std::memory_order_seq_cst);
        futex(&s_->producer_sleeps, FUTEX_WAKE, 1);
      }
      p += k;
      n -= k;
    }
  }

 private:
  void copy_in(std::uint64_t pos, const unsigned char* p, std::size_t k) {
    std::size_t off = static_cast<std::size_t>(pos & (ring_shm::cap - 1));
    std::size_t first = std::min(k, ring_shm::cap - off);
    std::memcpy(s_->data + off, p, first);
    if (first < k) std::memcpy(s_->data, p + first, k - first);
  }
  void copy_out(std::uint64_t pos, unsigned char* p, std::size_t k) {
    std::size_t off = static_cast<std::size_t>(pos & (ring_shm::cap - 1));
    std::size_t first = std::min(k, ring_shm::cap - off);
    std::memcpy(p, s_->data + off, first);
    if (first < k) std::memcpy(p + first, s_->data, k - first);
  }
  void wait_space(std::uint64_t t) {
    auto has_space = [&] {
      head_cache_ = s_->head.load(std::memory_order_acquire);
      return t - head_cache_ < ring_shm::cap;
    };
    for (int i = 0; i < ring_spin; ++i) {
      if (has_space()) return;
      cpu_relax();
    }
    for (;;) {
      s_->producer_sleeps.store(1, std::memory_order_seq_cst);
      if (has_space()) {
        s_->producer_sleeps.store(0, std::memory_order_relaxed);
        return;
      }
      futex(&s_->producer_sleeps, FUTEX_WAIT, 1);
    }
  }
  void wait_data(std::uint64_t h) {
    auto has_data = [&] {
      tail_cache_ = s_->tail.load(std::memory_order_acquire);
      return tail_cache_ != h;
    };
    for (int i = 0; i < ring_spin; ++i) {
      if (has_data()) return;
      cpu_relax();
    }
    for (;;) {
      s_->consumer_sleeps.store(1, std::memory_order_seq_cst);
      if (has_data()) {
        s_->consumer_sleeps.store(0, std::memory_order_relaxed);
        return;
      }
      futex(&s_->consumer_sleeps, FUTEX_WAIT, 1);
    }
  }

  ring_shm* s_ = nullptr;
  std::uint64_t head_cache_ = 0;  // producer's view of head
  std::uint64_t tail_cache_ = 0;  // consumer's view of tail
};

// ---------------------------------------------------------------- ping-pong

// Each returns seconds per round trip over n round trips (after a warm-up of
// its own), the child started before and joined after the timed part.
constexpr int pingpong_warm = 200;

// Over two pipe()s, or (socket) over one AF_UNIX stream socketpair, the
// transport isola's connection uses.
double raw_pingpong(long n, placement where, bool socket = false) {
  placer pl(where);
  int p2c[2], c2p[2];
  if (socket) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
    // parent writes and reads sv[0], the child sv[1]
    p2c[0] = sv[1];
    p2c[1] = sv[0];
    c2p[0] = ::dup(sv[0]);
    c2p[1] = ::dup(sv[1]);
  } else if (::pipe(p2c) != 0 || ::pipe(c2p) != 0) {
    die("pipe");
  }
  pid_t pid = fork_child([&] {
    ::close(p2c[1]);
    ::close(c2p[0]);
    for (;;) {
      std::int32_t v;
      if (!read_all(p2c[0], &v, 4) || v < 0) return;
      write_all(c2p[1], &v, 4);
    }
  });
  pl.child_started();
  ::close(p2c[0]);
  ::close(c2p[1]);
  auto rt = [&](std::int32_t i) {
    write_all(p2c[1], &i, 4);
    std::int32_t v;
    if (!read_all(c2p[0], &v, 4) || v != i) throw std::runtime_error("raw ping-pong: bad reply");
  };
  for (int i = 0; i < pingpong_warm; ++i) rt(i);
  auto t0 = clk::now();
  for (long i = 0; i < n; ++i) rt(static_cast<std::int32_t>(i));
  double s = seconds_since(t0);
  std::int32_t stop = -1;
  write_all(p2c[1], &stop, 4);
  ::close(p2c[1]);
  ::close(c2p[0]);
  check_exit(wait_pid(pid), "raw ping-pong");
  return s / static_cast<double>(n);
}

void isola_echo(isola::connection c) {
  for (;;) {
    int v = c.recv<int>();
    if (v < 0) return;
    c.send(v);
  }
}

void isola_echo_simplex(isola::connection in, isola::connection out) {
  for (;;) {
    int v = in.recv<int>();
    if (v < 0) return;
    out.send(v);
  }
}

// Over the default isola::pipe() (duplex: one socketpair), or (simplex) over
// two isola::pipe(false), one per direction, as the raw baseline uses two
// pipe()s.
double isola_pingpong(long n, placement where, bool simplex = false) {
  placer pl(where);
  isola::connection to_child, from_child;
  std::optional<isola::process> p;
  if (simplex) {
    auto [child_in, parent_out] = isola::pipe(false);
    auto [parent_in, child_out] = isola::pipe(false);
    to_child = std::move(parent_out);
    from_child = std::move(parent_in);
    p.emplace(forked(), isola_echo_simplex, std::move(child_in), std::move(child_out));
  } else {
    auto [a, b] = isola::pipe();
    to_child = std::move(a);
    p.emplace(forked(), isola_echo, std::move(b));
  }
  p->start();
  pl.child_started();
  isola::connection& in = simplex ? from_child : to_child;
  auto rt = [&](int i) {
    to_child.send(i);
    if (in.recv<int>() != i) throw std::runtime_error("isola ping-pong: bad reply");
  };
  for (int i = 0; i < pingpong_warm; ++i) rt(i);
  auto t0 = clk::now();
  for (long i = 0; i < n; ++i) rt(static_cast<int>(i));
  double s = seconds_since(t0);
  to_child.send(-1);
  join_ok(*p, "isola ping-pong");
  return s / static_cast<double>(n);
}

// ---------------------------------------------------------------- raw ring cases

// 1 producer child -> 1 consumer child, n ints; seconds per item.
double raw_ring_ints(long n) {
  raw_ring ring;
  gate g;
  pid_t cons = fork_child([&] {
    g.ready();
    long got = 0;
    for (;;) {
      std::int32_t v;
      ring.get(&v, 4);
      if (v < 0) break;
      if (v != static_cast<std::int32_t>(got)) throw std::runtime_error("raw ring: out of order");
      ++got;
    }
    if (got != n) throw std::runtime_error("raw ring: lost items");
    g.done();
  });
  pid_t prod = fork_child([&] {
    g.ready();
    g.wait_go();
    for (long i = 0; i < n; ++i) {
      auto v = static_cast<std::int32_t>(i);
      ring.put(&v, 4);
    }
    std::int32_t stop = -1;
    ring.put(&stop, 4);
  });
  g.wait_notes(2);
  auto t0 = clk::now();
  g.open(1);
  g.wait_notes(1);
  double s = seconds_since(t0);
  check_exit(wait_pid(prod), "raw ring producer");
  check_exit(wait_pid(cons), "raw ring consumer");
  return s / static_cast<double>(n);
}

constexpr std::size_t bulk_chunk = 256 * 1024;

// k messages of `size` bytes, producer child -> parent through the raw ring
// into a reused buffer; seconds per message.
double raw_ring_bulk(std::size_t size, long k) {
  raw_ring ring;
  gate g;
  pid_t prod = fork_child([&] {
    auto buf = touched_buffer(size);
    g.ready();
    g.wait_go();
    for (long i = 0; i < k; ++i) ring.put(buf.data(), size, bulk_chunk);
  });
  auto buf = touched_buffer(size);
  g.wait_notes(1);
  auto t0 = clk::now();
  g.open(1);
  for (long i = 0; i < k; ++i) ring.get(buf.data(), size);
  double s = seconds_since(t0);
  check_exit(wait_pid(prod), "raw ring bulk producer");
  return s / static_cast<double>(k);
}

// k messages of `size` bytes, child -> parent through a pipe (or an AF_UNIX
// stream socketpair), 1 MiB writes and reads into a reused buffer; seconds
// per message. The kernel buffer is sized as isola sizes it for large
// messages (a 1 MiB pipe; SO_SNDBUF asked for 1 MiB), so that both sides
// of a ratio move data through the same amount of buffer.
double raw_pipe_bulk(std::size_t size, long k, bool socket = false) {
  int data[2], ctl[2];
  if (socket ? ::socketpair(AF_UNIX, SOCK_STREAM, 0, data) != 0 : ::pipe(data) != 0) die("pipe");
  int buffer = static_cast<int>(MiB);
  if (socket)
    ::setsockopt(data[1], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  else
    ::fcntl(data[1], F_SETPIPE_SZ, buffer);
  if (::pipe(ctl) != 0) die("pipe");
  pid_t pid = fork_child([&] {
    ::close(data[0]);
    ::close(ctl[1]);
    auto buf = touched_buffer(size);
    write_all(data[1], "r", 1);
    char c;
    if (!read_all(ctl[0], &c, 1)) return;
    for (long i = 0; i < k; ++i)
      for (std::size_t off = 0; off < size; off += MiB)
        write_all(data[1], buf.data() + off, std::min(MiB, size - off));
  });
  ::close(data[1]);
  ::close(ctl[0]);
  auto buf = touched_buffer(size);
  char c;
  if (!read_all(data[0], &c, 1)) throw std::runtime_error("raw pipe bulk: no ready byte");
  auto t0 = clk::now();
  write_all(ctl[1], "g", 1);
  for (long i = 0; i < k; ++i)
    for (std::size_t off = 0; off < size;) {
      ssize_t r = ::read(data[0], buf.data() + off, std::min(MiB, size - off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw std::runtime_error("raw pipe bulk: short read");
      off += static_cast<std::size_t>(r);
    }
  double s = seconds_since(t0);
  ::close(data[0]);
  ::close(ctl[1]);
  check_exit(wait_pid(pid), "raw pipe bulk");
  return s / static_cast<double>(k);
}

// ---------------------------------------------------------------- isola bulk pipe

void isola_bulk_sender(isola::connection c, std::size_t size, long k) {
  auto buf = touched_buffer(size);
  c.send(1);            // ready
  (void)c.recv<int>();  // go
  for (long i = 0; i < k; ++i) c.send_bytes(std::span<const std::byte>(buf));
}

void isola_bulk_sender_simplex(isola::connection out, isola::connection ctl, std::size_t size,
                               long k) {
  auto buf = touched_buffer(size);
  out.send(1);            // ready
  (void)ctl.recv<int>();  // go
  for (long i = 0; i < k; ++i) out.send_bytes(std::span<const std::byte>(buf));
}

// k messages of `size` bytes, child -> parent, send_bytes and then recv_bytes
// (a new vector per message) or, with `into`, recv_bytes_into a buffer the
// receiver reuses, as the raw baselines do. Over the default duplex pipe or
// a simplex one (plus a second simplex pipe for the start signal). Seconds
// per message.
double isola_pipe_bulk(std::size_t size, long k, bool into, bool simplex) {
  isola::connection data, ctl;
  std::optional<isola::process> p;
  if (simplex) {
    auto [parent_in, child_out] = isola::pipe(false);
    auto [child_ctl, parent_ctl] = isola::pipe(false);
    data = std::move(parent_in);
    ctl = std::move(parent_ctl);
    p.emplace(forked(), isola_bulk_sender_simplex, std::move(child_out), std::move(child_ctl), size,
              k);
  } else {
    auto [a, b] = isola::pipe();
    data = std::move(a);
    p.emplace(forked(), isola_bulk_sender, std::move(b), size, k);
  }
  p->start();
  (void)data.recv<int>();
  std::vector<std::byte> buf;
  if (into) buf = touched_buffer(size);
  auto t0 = clk::now();
  (simplex ? ctl : data).send(1);
  for (long i = 0; i < k; ++i) {
    std::size_t n = into ? data.recv_bytes_into(buf) : data.recv_bytes().size();
    if (n != size) throw std::runtime_error("isola pipe bulk: wrong size");
  }
  double s = seconds_since(t0);
  join_ok(*p, "isola pipe bulk");
  return s / static_cast<double>(k);
}

// ---------------------------------------------------------------- isola queue cases

#if CHANNELS_HAVE_QUEUE

// P producer children put n/P ints each, then -1; C consumer children get
// until their first -1 (there are P of them, one per consumer when P == C).
// Seconds per item.
double isola_queue_ints(long n, int producers, int consumers) {
  isola::queue<int> q;
  gate g;
  std::vector<isola::process> ps;
  for (int c = 0; c < consumers; ++c)
    ps.emplace_back(
        forked(),
        [&g](isola::queue<int> q) {
          g.ready();
          for (;;)
            if (q.get() < 0) break;
          g.done();
        },
        q);
  long per = n / producers;
  for (int i = 0; i < producers; ++i)
    ps.emplace_back(
        forked(),
        [&g, per](isola::queue<int> q) {
          g.ready();
          g.wait_go();
          for (long j = 0; j < per; ++j) q.put(static_cast<int>(j));
          q.put(-1);
        },
        q);
  for (auto& p : ps) p.start();
  g.wait_notes(producers + consumers);
  auto t0 = clk::now();
  g.open(producers);
  g.wait_notes(consumers);
  double s = seconds_since(t0);
  for (auto& p : ps) join_ok(p, "isola queue");
  return s / static_cast<double>(per * producers);
}

// The parent puts n ints and join()s; one consumer child get()s and
// task_done()s each. Seconds per item.
double isola_joinable(long n) {
  isola::joinable_queue<int> q;
  gate g;
  isola::process c(
      forked(),
      [&g](isola::joinable_queue<int> q) {
        g.ready();
        for (;;) {
          int v = q.get();
          q.task_done();
          if (v < 0) break;
        }
      },
      q);
  c.start();
  g.wait_notes(1);
  auto t0 = clk::now();
  for (long i = 0; i < n; ++i) q.put(static_cast<int>(i));
  q.join();
  double s = seconds_since(t0);
  q.put(-1);
  join_ok(c, "isola joinable consumer");
  return s / static_cast<double>(n);
}

// k messages of `size` bytes, producer child -> parent, get() (a new vector
// per message) or, with reuse, get_into() a vector the parent reuses, as the
// raw ring does; seconds per message.
double isola_queue_bulk(std::size_t size, long k, bool reuse) {
  isola::queue<std::vector<std::byte>> q;
  gate g;
  isola::process p(
      forked(),
      [&g, size, k](isola::queue<std::vector<std::byte>> q) {
        auto buf = touched_buffer(size);
        g.ready();
        g.wait_go();
        for (long i = 0; i < k; ++i) q.put(buf);
      },
      q);
  p.start();
  std::vector<std::byte> into;
  if (reuse) into = touched_buffer(size);
  g.wait_notes(1);
  auto t0 = clk::now();
  g.open(1);
  for (long i = 0; i < k; ++i) {
    std::size_t n;
    if (reuse) {
      q.get_into(into);
      n = into.size();
    } else {
      n = q.get().size();
    }
    if (n != size) throw std::runtime_error("isola queue bulk: wrong size");
  }
  double s = seconds_since(t0);
  join_ok(p, "isola queue bulk");
  return s / static_cast<double>(k);
}

#endif

// ---------------------------------------------------------------- run

// How a case's seconds-per-unit are shown.
enum class unit { us_per_rt, m_items_per_s, gb_per_s };
using channel_case = bench_case<unit>;

// Counts per sample: each full-size case runs ~0.1-1 s on a 2-vCPU VM.
struct sizes {
  long pp_free, pp_same, pp_split;
  long q_ints, ring_ints;
  std::size_t bulk;
  long bulk_k, ring_bulk_k;
  long py_pp_free, py_pp_same, py_pp_split, py_q, py_qb_k, py_pb_k;
};

sizes sizes_for(bool quick) {
  return {.pp_free = quick ? 200 : 5000,
          .pp_same = quick ? 500 : 20000,
          .pp_split = quick ? 200 : 5000,
          .q_ints = quick ? 20000 : 2000000,
          .ring_ints = quick ? 100000 : 20000000,
          .bulk = quick ? 4 * MiB : 64 * MiB,
          .bulk_k = quick ? 2 : 8,
          .ring_bulk_k = quick ? 2 : 16,
          .py_pp_free = quick ? 200 : 5000,
          .py_pp_same = quick ? 500 : 10000,
          .py_pp_split = quick ? 200 : 5000,
          .py_q = quick ? 2000 : 200000,
          .py_qb_k = quick ? 1 : 2,
          .py_pb_k = quick ? 1 : 4};
}

const char* key_of(placement p) {
  return p == placement::free ? "free" : p == placement::same ? "same" : "split";
}

void add_pingpong_cases(std::vector<channel_case>& cases, const sizes& z) {
  for (auto [where, n] :
       {std::pair{placement::free, z.pp_free}, std::pair{placement::same, z.pp_same},
        std::pair{placement::split, z.pp_split}}) {
    std::string w = key_of(where);
    std::string label = std::string(", ") + to_string(where);
    long warm = std::min(n, 500L);
    cases.push_back({"raw_pp_" + w, "raw pipe() ping-pong" + label, unit::us_per_rt, n, warm,
                     [where](long k) { return raw_pingpong(k, where); }});
    cases.push_back({"raw_sp_" + w, "raw socketpair ping-pong" + label + " (info)", unit::us_per_rt,
                     n, warm, [where](long k) { return raw_pingpong(k, where, true); }});
    cases.push_back({"pp_" + w, "isola pipe() ping-pong (duplex, the default)" + label,
                     unit::us_per_rt, n, warm,
                     [where](long k) { return isola_pingpong(k, where); }});
    cases.push_back({"spp_" + w, "isola two pipe(false) ping-pong (simplex)" + label,
                     unit::us_per_rt, n, warm,
                     [where](long k) { return isola_pingpong(k, where, true); }});
  }
}

void add_queue_cases(std::vector<channel_case>& cases, const sizes& z) {
  cases.push_back({"raw_q11", "raw shm SPSC ring 1 -> 1", unit::m_items_per_s, z.ring_ints,
                   z.ring_ints / 20, raw_ring_ints});
#if CHANNELS_HAVE_QUEUE
  const long q = z.q_ints;
  cases.push_back({"q11", "isola queue<int> 1 -> 1", unit::m_items_per_s, q, q / 20,
                   [](long n) { return isola_queue_ints(n, 1, 1); }});
  cases.push_back({"q22", "isola queue<int> 2 -> 2", unit::m_items_per_s, q, q / 20,
                   [](long n) { return isola_queue_ints(n, 2, 2); }});
  cases.push_back({"jq", "isola joinable_queue<int> put + task_done + join", unit::m_items_per_s, q,
                   q / 20, isola_joinable});
#endif
}

void add_bulk_cases(std::vector<channel_case>& cases, const sizes& z) {
  const std::size_t bulk = z.bulk;
  const long k = z.bulk_k;
  cases.push_back({"raw_qbulk", "raw shm ring, 256 KiB chunks, reused buffer", unit::gb_per_s,
                   z.ring_bulk_k, 1, [bulk](long n) { return raw_ring_bulk(bulk, n); }});
#if CHANNELS_HAVE_QUEUE
  cases.push_back({"qbulk", "isola queue<vector<byte>> put / get", unit::gb_per_s, k, 1,
                   [bulk](long n) { return isola_queue_bulk(bulk, n, false); }});
  cases.push_back({"qbulk_into", "isola queue<vector<byte>> put / get_into, reused vector",
                   unit::gb_per_s, k, 1,
                   [bulk](long n) { return isola_queue_bulk(bulk, n, true); }});
#endif
  cases.push_back({"raw_pbulk", "raw pipe(), 1 MiB writes, reused buffer", unit::gb_per_s, k, 1,
                   [bulk](long n) { return raw_pipe_bulk(bulk, n); }});
  cases.push_back({"raw_sbulk", "raw socketpair, 1 MiB writes, reused buffer (info)",
                   unit::gb_per_s, k, 1, [bulk](long n) { return raw_pipe_bulk(bulk, n, true); }});
  cases.push_back({"pbulk", "isola pipe() send_bytes / recv_bytes", unit::gb_per_s, k, 1,
                   [bulk](long n) { return isola_pipe_bulk(bulk, n, false, false); }});
  cases.push_back({"pbulk_into", "isola pipe() send_bytes / recv_bytes_into, reused",
                   unit::gb_per_s, k, 1,
                   [bulk](long n) { return isola_pipe_bulk(bulk, n, true, false); }});
  cases.push_back({"spbulk", "isola pipe(false) send_bytes / recv_bytes", unit::gb_per_s, k, 1,
                   [bulk](long n) { return isola_pipe_bulk(bulk, n, false, true); }});
  cases.push_back({"spbulk_into", "isola pipe(false) send_bytes / recv_bytes_into, reused",
                   unit::gb_per_s, k, 1,
                   [bulk](long n) { return isola_pipe_bulk(bulk, n, true, true); }});
}

// Every case, or those named by --only.
std::vector<channel_case> make_cases(const sizes& z, const std::vector<std::string>& only) {
  std::vector<channel_case> cases;
  add_pingpong_cases(cases, z);
  add_queue_cases(cases, z);
  add_bulk_cases(cases, z);
  if (!only.empty())
    std::erase_if(cases, [&](const channel_case& c) {
      return std::find(only.begin(), only.end(), c.key) == only.end();
    });
  return cases;
}

python_result python_side(int repeats, const sizes& z) {
  std::vector<std::string> args;
  for (long v : {static_cast<long>(repeats), z.py_pp_free, z.py_pp_same, z.py_pp_split, z.py_q,
                 z.py_q, z.py_q, static_cast<long>(z.bulk), z.py_qb_k, z.py_pb_k})
    args.push_back(std::to_string(v));
  return run_python("channels.py", args, "pbulk_median");
}

// ---------------------------------------------------------------- report

// seconds per item -> display unit
double channels_shown(unit u, double spi, std::size_t bulk) {
  switch (u) {
    case unit::us_per_rt: return spi * 1e6;
    case unit::m_items_per_s: return 1e-6 / spi;
    case unit::gb_per_s: return static_cast<double>(bulk) / spi / 1e9;
  }
  return NAN;
}

const char* unit_head(unit u) {
  return u == unit::us_per_rt ? "median us" : u == unit::m_items_per_s ? "M items/s" : "GB/s";
}

// The tables of this run, C++ cases and Python's (py_KEY) alike.
struct report : case_report<unit> {
  const python_result& py;
  const sizes& z;

  report(const std::vector<channel_case>& c, const python_result& p, const sizes& sz, int repeats)
      : case_report(c, 56, [b = sz.bulk](unit u, double spi) { return channels_shown(u, spi, b); }),
        py(p),
        z(sz) {
    for (const char* k : {"pp_free", "pp_same", "pp_split", "q11", "q22", "jq", "qbulk", "pbulk"}) {
      std::string key = k;
      if (!st.count(key)) st[key] = stats{};
      if (!py.empty()) add_python(py, key, repeats);
    }
  }
  std::string py_label(const std::string& what) const {
    return "python " + py.version + " " + what;
  }
  void section(unit u, const std::string& title) const {
    case_report::section(title, unit_head(u));
  }

  void print_pingpong();
  void print_queues();
  void print_bulk();
  void print_ratios() const;
};

void report::print_pingpong() {
  section(unit::us_per_rt, "round trip of a small int, parent <-> forked child (p90: slow end)");
  for (auto [where, n] :
       {std::pair{placement::free, z.py_pp_free}, std::pair{placement::same, z.py_pp_same},
        std::pair{placement::split, z.py_pp_split}}) {
    std::string w = key_of(where);
    for (auto k : {"raw_pp_", "raw_sp_", "pp_", "spp_"}) cpp_row(k + w);
    if (!py.empty())
      row(py_label("Pipe send/recv, ") + to_string(where), unit::us_per_rt, "py_pp_" + w,
          std::to_string(n));
  }
}

void report::print_queues() {
  section(unit::m_items_per_s,
          "queue throughput, small ints, producer and consumer child processes (p90: slow end)");
  for (auto k : {"raw_q11", "q11", "q22", "jq"}) cpp_row(k);
  if (py.empty()) return;
  const std::string n = std::to_string(z.py_q);
  row(py_label("Queue 1 -> 1"), unit::m_items_per_s, "py_q11", n);
  row(py_label("Queue 2 -> 2"), unit::m_items_per_s, "py_q22", n);
  row(py_label("JoinableQueue put + task_done + join"), unit::m_items_per_s, "py_jq", n);
}

void report::print_bulk() {
  section(unit::gb_per_s, "bulk: " + std::to_string(z.bulk / MiB) +
                              " MiB messages, child -> parent (GB = 1e9 bytes; p90: slow end)");
  for (auto k : {"raw_qbulk", "qbulk", "qbulk_into"}) cpp_row(k);
  if (!py.empty())
    row(py_label("Queue put / get of bytes"), unit::gb_per_s, "py_qbulk",
        std::to_string(z.py_qb_k));
  for (auto k : {"raw_pbulk", "raw_sbulk", "pbulk", "pbulk_into", "spbulk", "spbulk_into"})
    cpp_row(k);
  if (!py.empty())
    row(py_label("Pipe send_bytes / recv_bytes"), unit::gb_per_s, "py_pbulk",
        std::to_string(z.py_pb_k));
}

// Each a ratio of medians taken in this run. Times per item: a speed-up of a
// over b is time(b) / time(a).
void report::print_ratios() const {
  ratio_table r;
  const std::string bulk_s = std::to_string(z.bulk / MiB) + " MiB";
  auto gbs_at_least = [&](std::string label, const std::string& key, double target) {
    double gbs = shown(unit::gb_per_s, med(key));
    r.figure(std::move(label), gbs, fmt(gbs, 2) + " GB/s", ">= " + fmt(target, 1) + " GB/s",
             gbs >= target);
  };
  // Free placement is bimodal on 2 CPUs (see placer): its ratio is informational.
  // The target applies to what a user gets from the default pipe() (duplex:
  // a socketpair) and from a pair of simplex pipe(false)s (real pipes).
  r.le("pipe() round trip / raw pipe, same CPU", med("pp_same") / med("raw_pp_same"), 1.3);
  r.le("pipe() round trip / raw pipe, split CPUs", med("pp_split") / med("raw_pp_split"), 1.3);
  r.le("pipe(false) pair round trip / raw pipe, same CPU", med("spp_same") / med("raw_pp_same"),
       1.3);
  r.le("pipe(false) pair round trip / raw pipe, split CPUs", med("spp_split") / med("raw_pp_split"),
       1.3);
  r.info("pipe() round trip / raw socketpair, same CPU", med("pp_same") / med("raw_sp_same"));
  r.info("pipe() round trip / raw socketpair, split CPUs", med("pp_split") / med("raw_sp_split"));
  r.info("raw socketpair / raw pipe round trip, same CPU", med("raw_sp_same") / med("raw_pp_same"));
  r.info("pipe() round trip / raw pipe, free", med("pp_free") / med("raw_pp_free"));
  r.info("pipe(false) pair round trip / raw pipe, free", med("spp_free") / med("raw_pp_free"));
  if (!py.empty()) {
    r.info("python Pipe round trip / pipe(), same CPU", med("py_pp_same") / med("pp_same"));
    r.info("python Pipe round trip / pipe(), split CPUs", med("py_pp_split") / med("pp_split"));
    r.info("python Pipe round trip / pipe(), free", med("py_pp_free") / med("pp_free"));
  }
#if CHANNELS_HAVE_QUEUE
  if (!py.empty()) r.ge("queue 1 -> 1 / python Queue", med("py_q11") / med("q11"), 50);
  r.ge("queue 1 -> 1 / raw SPSC ring", med("raw_q11") / med("q11"), 0.2);
  if (!py.empty()) {
    r.ge("queue 2 -> 2 / python Queue 2 -> 2", med("py_q22") / med("q22"), 30);
    r.ge("joinable_queue / python JoinableQueue", med("py_jq") / med("jq"), 30);
  }
  gbs_at_least("queue " + bulk_s + ", get (new vector)", "qbulk", 3.0);
  gbs_at_least("queue " + bulk_s + ", get_into (reused vector)", "qbulk_into", 3.0);
  if (!py.empty()) {
    r.ge("queue " + bulk_s + " get / python Queue", med("py_qbulk") / med("qbulk"), 8);
    r.ge("queue " + bulk_s + " get_into / python Queue", med("py_qbulk") / med("qbulk_into"), 8);
  }
  r.info("queue " + bulk_s + " get / raw shm ring", med("raw_qbulk") / med("qbulk"));
  r.info("queue " + bulk_s + " get_into / raw shm ring", med("raw_qbulk") / med("qbulk_into"));
#endif
  gbs_at_least("pipe() " + bulk_s + ", recv_bytes (new vector)", "pbulk", 2.0);
  gbs_at_least("pipe() " + bulk_s + ", recv_bytes_into (reused)", "pbulk_into", 2.0);
  gbs_at_least("pipe(false) " + bulk_s + ", recv_bytes (new vector)", "spbulk", 2.0);
  gbs_at_least("pipe(false) " + bulk_s + ", recv_bytes_into (reused)", "spbulk_into", 2.0);
  r.info("pipe() " + bulk_s + " recv_bytes_into / raw socketpair",
         med("raw_sbulk") / med("pbulk_into"));
  r.info("pipe(false) " + bulk_s + " recv_bytes_into / raw pipe",
         med("raw_pbulk") / med("spbulk_into"));
  if (!py.empty())
    r.info("pipe() " + bulk_s + " recv_bytes / python recv_bytes", med("py_pbulk") / med("pbulk"));
  r.print("ratio of medians (or figure)", 56, 14);
#if !CHANNELS_HAVE_QUEUE
  std::printf("(isola queue targets not measured: isola/queue.hpp not in this build)\n");
#endif
}

// The warm-up, the interleaved rounds around the Python run, the report.
void run(const common_args& args, const std::vector<std::string>& only) {
  const sizes z = sizes_for(args.quick);
  auto cases = make_cases(z, only);
  warm_up(cases);
  run_rounds(cases, 0, args.repeats / 2);
  python_result py;
  if (args.python) py = python_side(args.repeats, z);
  run_rounds(cases, args.repeats / 2, args.repeats);

  report rep(cases, py, z, args.repeats);
  rep.print_pingpong();
  rep.print_queues();
  rep.print_bulk();
  rep.print_ratios();
  std::printf("\n(PASS/MISS are informational; this benchmark exits 0 whatever the speed)\n");
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv, isola::runtime_options{.start_forkserver = false}};
  std::vector<std::string> only;
  auto args = parse_common_args(
      argc, argv, argv[0],
      [&](std::string_view a, char** v, int c, int& i) {
        if (a != "--only" || i + 1 >= c) return false;
        only = split_keys(v[++i]);
        return true;
      },
      "[--quick] [--repeats R] [--no-python] [--only KEY,...]");
  if (!args.ok) return 2;
  if (!only.empty()) args.python = false;

  print_banner("channels", args.quick, isola::cpu_count());
#if !CHANNELS_HAVE_QUEUE
  std::printf(
      "isola/queue.hpp or joinable_queue.hpp not found: the isola queue cases are skipped\n");
#endif
  try {
    run(args, only);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "channels: %s\n", e.what());
    return 1;
  }
  return 0;
}
