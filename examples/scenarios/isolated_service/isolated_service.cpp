// Scenario 1 of DESIGN.md as an application: a service that decodes
// untrusted blobs in a pool of supervised worker actors, each with its own
// memory and CPU limits.
//
// The format ("IRL1", a toy run-length codec with a dictionary) and its
// decoder are deliberately written like native codecs that shipped with
// bugs, one per poison:
//
//   magic "IRL1" | u32 size | ops...            (little endian)
//   0x00              end
//   0x01 n bytes[n]   n literal bytes
//   0x02 u32 n, b     n copies of byte b
//   0x03 d, u16 n     the first n bytes of preset dictionary d
//   0x04 k            padding: go on at this opcode + k (k >= 2)
//
// - size is trusted: the decoder allocates it up front (a header that lies,
//   "3 GiB", is an allocation the worker's RLIMIT_AS refuses -> bad_alloc ->
//   an "out of memory" error reply, and the worker lives on);
// - the output is checked against size only at the end, so a small blob of
//   huge runs (a "bomb") grows until RLIMIT_AS refuses -> "out of memory";
// - dictionaries 2 and 3 are declared but were never shipped (null): using
//   one dereferences a null pointer -> SIGSEGV;
// - a literal longer than what is left trips an internal CHECK -> abort();
// - padding with k = 0 never advances -> an endless loop, ended by the
//   request's deadline: the service kills the worker (or, with a short
//   --cpu, RLIMIT_CPU's SIGXCPU does);
// - anything else wrong (bad magic, unknown opcode, wrong size) is a clean
//   "malformed" error reply;
// - three "extensions" (0x05 include a file, 0x06 fetch from 127.0.0.1,
//   0x07 run a shell filter) are what the workers' sandbox is for: the
//   poisons passwd, connect and shell end their worker with exit reason
//   sandbox_violation (openat, socket, execve) and a restart.
//
// The service: a supervisor (one_for_one) of N decoder actors, each its own
// process in a sandbox (child_spec::sandbox, docs/sandbox.md): syscall_policy
// compute, RLIMIT_AS = what a worker has mapped + --memory MiB, RLIMIT_CPU =
// --cpu s, no core dumps; applied before make_behavior, not loosenable. A call takes a free worker, sends the
// request with a deadline (actor::request(msg, deadline)) and turns every
// outcome into an answer: the reply, or an error saying what happened to the
// worker (crashed with signal N / killed on the deadline / CPU limit), after
// which the supervisor has restarted it. (Actors have no kill(): the service
// SIGKILLs a stuck worker through a pidfd of its pid; see docs/decisions.md.
// RLIMIT_CPU is a budget for the worker's whole life, not per request.)
// Client threads send a mix of good and poisonous blobs; every request gets
// an answer, every good blob's answer is checked byte for byte, and the
// counts and latencies are printed.
//
//   isolated_service [--requests N] [--every K]
//                    [--kinds null,abort,hang,lie,bomb,garbage,passwd,connect,shell]
//                    [--workers N] [--clients N] [--deadline S] [--memory MiB] [--cpu S]
//
// Short mode (the ctest): isolated_service --requests 240 --every 8 --workers 4 --deadline 2
// Long mode: isolated_service --requests 100000 --every 50 --workers 8 --clients 16
// The CPU limit instead of the deadline:
//   isolated_service --requests 20 --every 10 --kinds hang --deadline 30 --cpu 1
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <iostream>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <isola/isola.hpp>

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
// Under ASan a failed allocation aborts the process unless told to return
// null (the decoder then throws bad_alloc, as it does without ASan), and a
// freed block stays mapped in the quarantine (256 MiB by default), which the
// worker's RLIMIT_AS would count.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1:quarantine_size_mb=8";
}
#endif

namespace {

// ---------------------------------------------------------------- messages

struct decode_request {
  std::vector<std::uint8_t> blob;
  template <class A>
  void serialize(A& ar) {
    ar(blob);
  }
};

enum class status : std::uint8_t { ok, malformed, out_of_memory };

struct decode_reply {
  status st = status::ok;
  std::vector<std::uint8_t> data;
  std::string error;
  template <class A>
  void serialize(A& ar) {
    ar(st, data, error);
  }
};

struct worker_limits {
  std::uint64_t memory_bytes = 0;  // on top of what the worker has mapped at start
  std::uint32_t cpu_seconds = 0;
  template <class A>
  void serialize(A& ar) {
    ar(memory_bytes, cpu_seconds);
  }
};

// ---------------------------------------------------------------- the codec

struct malformed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define IRL_CHECK(cond)                                           \
  do {                                                            \
    if (!(cond)) {                                                \
      std::fprintf(stderr, "decoder: CHECK failed: %s\n", #cond); \
      std::abort();                                               \
    }                                                             \
  } while (0)

const std::uint8_t dict0[] = "the quick brown fox jumps over the lazy dog; ";
const std::uint8_t dict1[] = "isola: every actor is its own OS process. ";
struct dictionary {
  const std::uint8_t* data;
  std::size_t size;
};
// Dictionaries 2 and 3 are in the format but were never shipped.
const dictionary dictionaries[4] = {
    {dict0, sizeof dict0 - 1}, {dict1, sizeof dict1 - 1}, {nullptr, 4096}, {nullptr, 4096}};

// The output, grown with realloc as a C codec would; bad_alloc when refused.
class out_buffer {
 public:
  explicit out_buffer(std::size_t hint) { grow_to(hint); }
  ~out_buffer() { std::free(p_); }
  out_buffer(const out_buffer&) = delete;
  out_buffer& operator=(const out_buffer&) = delete;

  std::uint8_t* extend(std::size_t n) {
    if (n > cap_ - size_) grow_to(std::max(size_ + n, cap_ * 2));
    std::uint8_t* at = p_ + size_;
    size_ += n;
    return at;
  }
  std::size_t size() const { return size_; }
  const std::uint8_t* data() const { return p_; }

 private:
  void grow_to(std::size_t cap) {
    if (cap == 0) cap = 64;
    void* q = std::realloc(p_, cap);
    if (!q) throw std::bad_alloc();
    p_ = static_cast<std::uint8_t*>(q);
    cap_ = cap;
  }
  std::uint8_t* p_ = nullptr;
  std::size_t size_ = 0, cap_ = 0;
};

// The null dictionary's bytes are read for real: a SIGSEGV, not a report
// from a sanitizer.
__attribute__((no_sanitize("address", "undefined"))) void copy_bytes(std::uint8_t* to,
                                                                     const std::uint8_t* from,
                                                                     std::size_t n) {
  const volatile std::uint8_t* f = from;
  for (std::size_t i = 0; i < n; ++i) to[i] = f[i];
}

std::vector<std::uint8_t> decode_irl(const std::vector<std::uint8_t>& blob) {
  // volatile: the endless loop of a zero skip must stay a loop (a loop
  // without side effects may be assumed to end).
  const volatile std::uint8_t* in = blob.data();
  const std::size_t n = blob.size();
  auto u16 = [&](std::size_t at) { return static_cast<std::uint32_t>(in[at] | in[at + 1] << 8); };
  auto u32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(in[at]) | static_cast<std::uint32_t>(in[at + 1]) << 8 |
           static_cast<std::uint32_t>(in[at + 2]) << 16 |
           static_cast<std::uint32_t>(in[at + 3]) << 24;
  };
  if (n < 8 || in[0] != 'I' || in[1] != 'R' || in[2] != 'L' || in[3] != '1')
    throw malformed("not an IRL1 blob");
  const std::size_t size = u32(4);
  out_buffer out(size);  // trusts the header
  std::size_t pos = 8;
  for (;;) {
    if (pos >= n) throw malformed("no end marker");
    switch (in[pos]) {
      case 0x00:
        if (out.size() != size)
          throw malformed("the header says " + std::to_string(size) + " bytes, the data made " +
                          std::to_string(out.size()));
        return {out.data(), out.data() + out.size()};
      case 0x01: {
        if (pos + 2 > n) throw malformed("truncated literal");
        std::size_t len = in[pos + 1];
        IRL_CHECK(pos + 2 + len <= n);
        copy_bytes(out.extend(len), const_cast<const std::uint8_t*>(in) + pos + 2, len);
        pos += 2 + len;
        break;
      }
      case 0x02: {
        if (pos + 6 > n) throw malformed("truncated run");
        std::size_t len = u32(pos + 1);
        std::memset(out.extend(len), in[pos + 5], len);
        pos += 6;
        break;
      }
      case 0x03: {
        if (pos + 4 > n) throw malformed("truncated dictionary reference");
        std::size_t d = in[pos + 1], len = u16(pos + 2);
        if (d >= 4 || len > dictionaries[d].size) throw malformed("bad dictionary reference");
        copy_bytes(out.extend(len), dictionaries[d].data, len);
        pos += 4;
        break;
      }
      case 0x04:
        if (pos + 2 > n) throw malformed("truncated padding");
        pos += in[pos + 1];  // k = 0: stays here for ever
        break;
      // "Extensions" of the kind a plugin or a too-clever format grows; the
      // sandbox (syscall_policy::compute) ends the worker at the first call.
      case 0x05: {  // include the file named by the next n bytes
        if (pos + 2 > n || pos + 2 + in[pos + 1] > n) throw malformed("truncated include");
        std::string path(reinterpret_cast<const char*>(const_cast<const std::uint8_t*>(in)) + pos + 2,
                         in[pos + 1]);
        std::ifstream f(path);
        std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        std::memcpy(out.extend(s.size()), s.data(), s.size());
        pos += 2 + in[pos + 1];
        break;
      }
      case 0x06: {  // fetch from 127.0.0.1:port
        if (pos + 3 > n) throw malformed("truncated fetch");
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(u16(pos + 1)));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s >= 0) {
          (void)::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
          ::close(s);
        }
        pos += 3;
        break;
      }
      case 0x07: {  // post-process with a shell command
        char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                        const_cast<char*>("true"), nullptr};
        ::execve("/bin/sh", argv, environ);
        throw malformed("the filter did not run");
      }
      default:
        throw malformed("unknown opcode " + std::to_string(in[pos]) + " at offset " +
                        std::to_string(pos));
    }
  }
}

// ---------------------------------------------------------------- the worker

// The worker's limits are its sandbox (decode_service): set by the runtime
// before this runs, and not loosenable from here.
isola::behavior decoder(worker_limits) {
  return {[](const decode_request& r) -> decode_reply {
    decode_reply reply;
    try {
      reply.data = decode_irl(r.blob);
    } catch (const malformed& e) {
      reply.st = status::malformed;
      reply.error = std::string("malformed input: ") + e.what();
    } catch (const std::bad_alloc&) {
      reply.data = {};
      reply.st = status::out_of_memory;
      reply.error = "out of memory: the worker's memory limit refused an allocation";
    }
    return reply;
  }};
}

// ---------------------------------------------------------------- the service

enum class outcome_kind {
  ok,
  malformed,
  out_of_memory,
  crashed,
  timed_out,
  cpu_limit,
  failed,
  violation
};
const char* const kind_names[] = {"ok",        "malformed", "out of memory", "crashed",
                                  "timed out", "cpu limit", "failed",        "sandbox violation"};

struct outcome {
  outcome_kind kind = outcome_kind::failed;
  std::vector<std::uint8_t> data;
  std::string error;
};

class decode_service {
 public:
  decode_service(std::size_t workers, worker_limits lim, isola::duration deadline)
      : deadline_(deadline) {
    // Each worker's sandbox: it may compute and nothing else (no files, no
    // sockets, no processes), no cores, RLIMIT_CPU, and RLIMIT_AS = what a
    // worker has mapped once it serves (measured on a probe worker: code,
    // the runtime's rings, a sanitizer's shadow) + the budget.
    isola::sandbox box;
    box.syscalls = isola::syscall_policy::compute;
    if (lim.cpu_seconds) box.cpu = std::chrono::seconds(lim.cpu_seconds);
    if (lim.memory_bytes) box.address_space = mapped_by_a_worker() + lim.memory_bytes;
    std::vector<isola::child_spec> specs;
    for (std::size_t i = 0; i < workers; ++i)
      specs.push_back(isola::child_spec::actor(name(i), decoder, lim).sandbox(box).shutdown(1s));
    sup_.emplace(isola::supervisor_options{.strategy = isola::strategy::one_for_one,
                                           .intensity = 1000,
                                           .period = 10s,
                                           .name = "decoders"},
                 std::move(specs));
    for (std::size_t i = 0; i < workers; ++i) free_.push_back(i);
    actors_.resize(workers);
  }

  // Decodes blob on a free worker; never throws for anything the worker does.
  outcome call(const std::vector<std::uint8_t>& blob) {
    std::size_t i = acquire();
    outcome o;
    try {
      o = call_on(i, blob);
    } catch (const std::exception& e) {
      o = {outcome_kind::failed, {}, e.what()};
      actors_[i] = {};  // ask the supervisor again next time
    }
    release(i);
    return o;
  }

  std::size_t restarts() const { return sup_->restarts(); }
  bool running() const { return sup_->running(); }

 private:
  static std::string name(std::size_t i) { return "decoder-" + std::to_string(i); }

  // Bytes of address space a worker has mapped once it has served a request.
  static std::size_t mapped_by_a_worker() {
    isola::sandbox box;
    box.syscalls = isola::syscall_policy::compute;
    auto probe = isola::spawn({.name = "decoder-probe", .sandbox = box}, decoder, worker_limits{});
    (void)probe.request<decode_reply>(decode_request{{'I', 'R', 'L', '1', 0, 0, 0, 0, 0}}).get(10s);
    std::ifstream statm("/proc/" + std::to_string(probe.pid()) + "/statm");
    unsigned long long pages = 0;
    statm >> pages;
    auto mon = probe.monitor();
    probe.stop();
    (void)mon.get(10s);
    if (!pages) throw std::runtime_error("cannot read the probe worker's statm");
    return static_cast<std::size_t>(pages) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  }

  outcome call_on(std::size_t i, const std::vector<std::uint8_t>& blob) {
    if (!actors_[i]) actors_[i] = current(i, {});
    isola::actor w = actors_[i];
    try {
      decode_reply r = w.request<decode_reply>(decode_request{blob}, deadline_).get();
      switch (r.st) {
        case status::ok: return {outcome_kind::ok, std::move(r.data), {}};
        case status::malformed: return {outcome_kind::malformed, {}, r.error};
        case status::out_of_memory: return {outcome_kind::out_of_memory, {}, r.error};
      }
      return {outcome_kind::failed, {}, "unknown status"};
    } catch (const isola::timeout_error&) {
      // Stuck: kill it; its supervisor starts a fresh one.
      kill(w);
      auto d = w.monitor().get(10s);
      current(i, w);
      char what[160];
      std::snprintf(what, sizeof what,
                    "no answer within %.1f s: %s (pid %d) killed (%s) and restarted",
                    deadline_.count(), w.name().c_str(), w.pid(), d.reason.to_string().c_str());
      return {outcome_kind::timed_out, {}, what};
    } catch (const isola::actor_exited& e) {
      current(i, w);
      bool cpu = e.reason() == "limit: cpu";
      bool violation = e.reason().starts_with("sandbox_violation");
      return {cpu         ? outcome_kind::cpu_limit
              : violation ? outcome_kind::violation
                          : outcome_kind::crashed,
              {},
              w.name() + " (pid " + std::to_string(w.pid()) +
                  ") died on this input: " + e.reason() + "; restarted"};
    } catch (const isola::remote_error& e) {
      // The handler threw (it catches what the decoder throws, so this is a
      // bug of ours): the actor ends with it; wait for the next one.
      w.monitor().get(10s);
      current(i, w);
      return {outcome_kind::failed, {}, e.what()};
    }
  }

  // The running incarnation of worker i that is not `dead` (and remembers it:
  // asking the supervisor goes through its queue, which waits while it
  // restarts a worker).
  isola::actor current(std::size_t i, const isola::actor& dead) {
    auto until = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      if (auto a = sup_->find(name(i)); a && *a != dead) return actors_[i] = *a;
      if (std::chrono::steady_clock::now() > until)
        throw std::runtime_error(name(i) + " was not restarted within 10 s");
      std::this_thread::sleep_for(1ms);
    }
  }

  // SIGKILL through a pidfd. The pid cannot have been reused before the
  // root reaped the actor, and the root marks it dead right after reaping:
  // checking alive() after opening the pidfd makes the pidfd the actor's.
  static void kill(const isola::actor& w) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, w.pid(), 0));
    if (fd < 0) return;  // already gone
    if (w.alive()) ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
    ::close(fd);
  }

  std::size_t acquire() {
    std::unique_lock lk(m_);
    cv_.wait(lk, [&] { return !free_.empty(); });
    std::size_t i = free_.back();
    free_.pop_back();
    return i;
  }
  void release(std::size_t i) {
    {
      std::lock_guard lk(m_);
      free_.push_back(i);
    }
    cv_.notify_one();
  }

  isola::duration deadline_;
  std::optional<isola::supervisor> sup_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::size_t> free_;
  std::vector<isola::actor> actors_;  // worker i's current incarnation (used by its holder only)
};

// ---------------------------------------------------------------- the client

struct encoder {
  std::vector<std::uint8_t> b;
  explicit encoder(std::uint32_t size) {
    b = {'I', 'R', 'L', '1'};
    u32(size);
  }
  void u8(unsigned v) { b.push_back(static_cast<std::uint8_t>(v)); }
  void u16(unsigned v) {
    u8(v & 0xff);
    u8(v >> 8 & 0xff);
  }
  void u32(std::uint32_t v) {
    for (int s = 0; s < 32; s += 8) u8(v >> s & 0xff);
  }
  void set_size(std::uint32_t size) {
    for (int k = 0; k < 4; ++k) b[4 + k] = static_cast<std::uint8_t>(size >> (8 * k));
  }
};

struct test_case {
  std::string kind;  // "good" or the poison's name
  std::vector<std::uint8_t> blob;
  std::vector<std::uint8_t> expected;  // good ones
  outcome_kind expect = outcome_kind::ok;
};

test_case make_good(std::mt19937& rng) {
  test_case t{"good", {}, {}, outcome_kind::ok};
  encoder e(0);
  std::uniform_int_distribution<int> pick(0, 3), len(1, 255), letter('a', 'z');
  int pieces = 1 + static_cast<int>(rng() % 24);
  for (int p = 0; p < pieces; ++p) {
    switch (pick(rng)) {
      case 0: {  // literal
        int n = len(rng);
        e.u8(1);
        e.u8(static_cast<unsigned>(n));
        for (int k = 0; k < n; ++k) {
          auto c = static_cast<std::uint8_t>(letter(rng));
          e.u8(c);
          t.expected.push_back(c);
        }
        break;
      }
      case 1: {  // run
        std::uint32_t n = 1 + rng() % 2000;
        auto c = static_cast<std::uint8_t>(letter(rng));
        e.u8(2);
        e.u32(n);
        e.u8(c);
        t.expected.insert(t.expected.end(), n, c);
        break;
      }
      default: {  // dictionary 0 or 1
        unsigned d = rng() % 2;
        unsigned n = 1 + static_cast<unsigned>(rng() % dictionaries[d].size);
        e.u8(3);
        e.u8(d);
        e.u16(n);
        t.expected.insert(t.expected.end(), dictionaries[d].data, dictionaries[d].data + n);
        if (rng() % 4 == 0) {  // some padding
          e.u8(4);
          e.u8(3);
          e.u8(0xAA);
        }
        break;
      }
    }
  }
  e.u8(0);
  e.set_size(static_cast<std::uint32_t>(t.expected.size()));
  t.blob = std::move(e.b);
  return t;
}

test_case make_poison(const std::string& kind, std::mt19937& rng) {
  test_case t{kind, {}, {}, outcome_kind::failed};
  encoder e(16);
  if (kind == "null") {  // a never-shipped dictionary: SIGSEGV
    e.u8(3);
    e.u8(2);
    e.u16(16);
    e.u8(0);
    t.expect = outcome_kind::crashed;
  } else if (kind == "abort") {  // a literal longer than the blob: CHECK -> abort
    e.u8(1);
    e.u8(200);
    e.u8('x');
    t.expect = outcome_kind::crashed;
  } else if (kind == "hang") {  // zero padding: an endless loop
    e.u8(4);
    e.u8(0);
    e.u8(0);
    t.expect = outcome_kind::timed_out;
  } else if (kind == "lie") {  // the header claims 3 GiB
    e.set_size(3u << 30);
    e.u8(0);
    t.expect = outcome_kind::out_of_memory;
  } else if (kind == "bomb") {  // 1.5 KiB that want 1 GiB
    for (int k = 0; k < 256; ++k) {
      e.u8(2);
      e.u32(4u << 20);
      e.u8('A');
    }
    e.u8(0);
    t.expect = outcome_kind::out_of_memory;
  } else if (kind == "garbage") {
    if (rng() % 2) {
      e.u8(0x7f);  // an unknown opcode
    } else {
      e.b[0] = 'X';  // not even the magic
    }
    t.expect = outcome_kind::malformed;
  } else if (kind == "passwd") {  // include /etc/passwd: openat
    const char path[] = "/etc/passwd";
    e.u8(5);
    e.u8(sizeof path - 1);
    for (char c : std::string(path)) e.u8(static_cast<unsigned char>(c));
    e.u8(0);
    t.expect = outcome_kind::violation;
  } else if (kind == "connect") {  // fetch from 127.0.0.1: socket
    e.u8(6);
    e.u16(80);
    e.u8(0);
    t.expect = outcome_kind::violation;
  } else if (kind == "shell") {  // a shell filter: execve
    e.u8(7);
    e.u8(0);
    t.expect = outcome_kind::violation;
  } else {
    throw std::invalid_argument("unknown poison kind '" + kind + "'");
  }
  t.blob = std::move(e.b);
  return t;
}

struct options {
  std::size_t requests = 240, every = 8, workers = 4, clients = 0;
  std::vector<std::string> kinds{"null", "abort", "hang", "lie", "bomb", "garbage"};
  double deadline = 2.0;
  std::uint64_t memory_mib = 64;
  std::uint32_t cpu = 60;  // a lifetime budget: a worker's CPU seconds add up
};

// The command line; --clients defaults to twice the workers.
void add_options(CLI::App& app, options& o) {
  app.add_option("--requests", o.requests, "how many requests");
  app.add_option("--every", o.every, "every K-th request is poisonous (0: none)");
  app.add_option("--kinds", o.kinds, "the poison kinds, in turn: null,abort,hang,lie,bomb,garbage,passwd,connect,shell")
      ->delimiter(',');
  app.add_option("--workers", o.workers, "decoder workers")->check(CLI::PositiveNumber);
  app.add_option("--clients", o.clients, "client threads (default: 2 per worker)");
  app.add_option("--deadline", o.deadline, "seconds a request may take")
      ->check(CLI::PositiveNumber);
  app.add_option("--memory", o.memory_mib, "each worker's memory limit, MiB");
  app.add_option("--cpu", o.cpu, "each worker's CPU limit, seconds over its life");
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

// The requests, made up front: every `every`-th is poisonous, the kinds in
// turn; counts the poisonous ones into `poisonous`.
std::vector<test_case> make_cases(const options& o, std::size_t& poisonous) {
  std::mt19937 rng(2024);
  std::vector<test_case> cases;
  poisonous = 0;
  for (std::size_t i = 0; i < o.requests; ++i) {
    if (o.every && i % o.every == o.every - 1)
      cases.push_back(make_poison(o.kinds[poisonous++ % o.kinds.size()], rng));
    else
      cases.push_back(make_good(rng));
  }

  // With a CPU limit well under the deadline, RLIMIT_CPU ends a hang first.
  if (o.cpu && o.cpu + 1 < o.deadline)
    for (auto& c : cases)
      if (c.expect == outcome_kind::timed_out) c.expect = outcome_kind::cpu_limit;
  return cases;
}

int run(const options& o) {
  std::size_t poisonous = 0;
  std::vector<test_case> cases = make_cases(o, poisonous);
  worker_limits lim{o.memory_mib << 20, o.cpu};
  std::printf(
      "isolated_service: %zu workers, %zu clients, %zu requests (%zu poisonous), deadline %.1f s, "
      "limits per worker: %llu MiB more address space, %u s CPU\n",
      o.workers, o.clients, o.requests, poisonous, o.deadline,
      static_cast<unsigned long long>(o.memory_mib), o.cpu);
  std::fflush(stdout);
  decode_service service(o.workers, lim, isola::duration(o.deadline));

  std::vector<outcome_kind> got(o.requests, outcome_kind::failed);
  std::vector<bool> right(o.requests, false);
  std::vector<double> latency_ms(o.requests, 0);
  std::map<std::string, std::string> sample;  // poison kind -> its first answer
  std::mutex sample_m;
  std::atomic<std::size_t> next{0};
  auto client = [&] {
    for (std::size_t i; (i = next++) < o.requests;) {
      auto t0 = std::chrono::steady_clock::now();
      outcome r = service.call(cases[i].blob);
      latency_ms[i] =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      got[i] = r.kind;
      right[i] =
          r.kind == cases[i].expect && (r.kind != outcome_kind::ok || r.data == cases[i].expected);
      if (cases[i].kind != "good") {
        std::lock_guard lk(sample_m);
        sample.emplace(cases[i].kind,
                       std::string(kind_names[static_cast<int>(r.kind)]) + ": " + r.error);
      }
    }
  };
  std::vector<std::thread> clients;
  for (std::size_t c = 0; c < o.clients; ++c) clients.emplace_back(client);
  for (auto& t : clients) t.join();

  std::size_t counts[8] = {};
  std::size_t wrong = 0, ok_right = 0;
  std::vector<double> ok_lat;
  for (std::size_t i = 0; i < o.requests; ++i) {
    ++counts[static_cast<int>(got[i])];
    if (!right[i]) ++wrong;
    if (got[i] == outcome_kind::ok) {
      ok_lat.push_back(latency_ms[i]);
      if (right[i]) ++ok_right;
    }
  }
  for (const auto& k : o.kinds)
    if (sample.count(k)) std::printf("poison %s -> %s\n", k.c_str(), sample[k].c_str());
  std::size_t answered = 0;
  for (std::size_t k = 0; k < 8; ++k)
    if (k != static_cast<std::size_t>(outcome_kind::failed)) answered += counts[k];
  std::printf("requests: %zu\n", o.requests);
  std::printf("answered: %zu\n", answered);
  std::printf("ok: %zu (%zu verified byte for byte)\n", counts[0], ok_right);
  std::printf("malformed (error reply): %zu\n", counts[1]);
  std::printf("out of memory (error reply, worker kept): %zu\n", counts[2]);
  std::printf("crashed (worker died, restarted): %zu\n", counts[3]);
  std::printf("timed out (worker killed, restarted): %zu\n", counts[4]);
  std::printf("cpu limit (SIGXCPU, restarted): %zu\n", counts[5]);
  std::printf("sandbox violation (worker died, restarted): %zu\n", counts[7]);
  std::printf("failed otherwise: %zu\n", counts[6]);
  std::printf("not as expected: %zu\n", wrong);
  std::printf("restarts: %zu\n", service.restarts());
  // As the clients see it: waiting for a free worker (others may be stuck
  // until their deadline, or restarting) is included.
  std::printf("latency ok: p50 %.2f ms, p99 %.2f ms\n", percentile(ok_lat, 0.5),
              percentile(ok_lat, 0.99));
  std::printf("latency all: p50 %.2f ms, p99 %.2f ms\n", percentile(latency_ms, 0.5),
              percentile(latency_ms, 0.99));
  std::printf("service running: %s\n", service.running() ? "yes" : "no");
  std::fflush(stdout);
  return answered == o.requests && wrong == 0 && service.running() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  options o;
  CLI::App app{
      "a decoding service whose poisonous inputs crash, hang or blow the memory limit of "
      "supervised workers; every request is answered"};
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  if (o.clients == 0) o.clients = 2 * o.workers;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "isolated_service: " << e.what() << std::endl;
    return 1;
  }
}
