// The shared-memory ring (isola/detail/shm_ring.hpp) against a process that
// shares it and writes over it, and against a producer stopped in the middle
// of a message:
// - positions written over by a sharer (unaligned, a tail more than the ring
//   ahead of head) and record headers written over (a huge length, a length
//   that changes while it is read) make put and get raise queue_corrupt, in
//   every process, waiters included: never a crash, never an access past the
//   ring, never a hang;
// - every process's mapping of a ring (creator, fork child, spawn and
//   forkserver children that received the memfd) is followed by a PROT_NONE
//   guard page;
// - a producer SIGSTOPped mid-message holds neither another producer's timed
//   put nor a consumer's timed get past its deadline; killed, the ring
//   recovers; continued, its message is dropped and nothing else is harmed.
//
// The sharer is a forked child writing through its own mapping of the memfd
// (mapped before the fork, as a process that received the descriptor would),
// at the offsets shm_ring::layout() gives. The victims run in forked children
// too where the old code crashed or hung, and report through exit codes.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <isola/detail/deadline.hpp>
#include <isola/detail/shm_ring.hpp>
#include <isola/error.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using clk = std::chrono::steady_clock;
using isola::detail::deadline;
using isola::detail::ring_config;
using isola::detail::shm_ring;
using bytes = std::vector<std::byte>;

namespace {

bytes make_bytes(std::uint64_t seed, std::size_t n) {
  bytes v(n);
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + n + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v[i] = static_cast<std::byte>(x);
  }
  return v;
}

bool put_bytes(shm_ring& r, const bytes& m, deadline d) {
  std::span<const std::byte> all(m);
  return r.put(all, {}, d);
}

// Collects one message; counts the chunked ones (begins, ends, resets) apart
// from the whole ones.
class sink final : public isola::detail::ring_sink {
 public:
  void whole(std::span<const std::byte> a, std::span<const std::byte> b) override {
    ++wholes;
    data.assign(a.begin(), a.end());
    data.insert(data.end(), b.begin(), b.end());
  }
  void begin(std::uint64_t total) override {
    ++begins;
    data.clear();
    data.reserve(total);
  }
  void append(std::span<const std::byte> piece) override {
    data.insert(data.end(), piece.begin(), piece.end());
  }
  void end() override { ++ends; }
  void reset() noexcept override {
    ++resets;
    data.clear();
  }
  std::optional<bytes> get(shm_ring& r, deadline d) {
    data.clear();
    if (!r.get(*this, d)) return std::nullopt;
    return data;
  }
  bytes data;
  int wholes = 0, begins = 0, ends = 0, resets = 0;
};

std::shared_ptr<shm_ring> make_ring(std::size_t ring_bytes, std::size_t maxsize = 0) {
  ring_config cfg;
  cfg.ring_bytes = ring_bytes;
  cfg.maxsize = maxsize;
  return shm_ring::create(cfg);
}

double ms_since(clk::time_point t0) {
  return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

isola::process_options forked() { return {.method = isola::start_method::fork}; }

// A few words in an anonymous shared mapping, for what forked children report.
struct shared_words {
  std::atomic<std::uint64_t> w[8];
};
shared_words* make_shared_words() {
  void* p = ::mmap(nullptr, sizeof(shared_words), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  BOOST_REQUIRE(p != MAP_FAILED);
  return new (p) shared_words{};
}

// --- the sharer --------------------------------------------------------------------

// A position word as the ring stores it: bits 0..33 position, 34..62 count,
// 63 "a message is open" (see shm_ring.cpp, POSITIONS AND COUNTS).
std::uint64_t word(std::uint64_t pos, std::uint64_t count = 0, bool in_msg = false) {
  return (pos & ((std::uint64_t{1} << 34) - 1)) | ((count & ((std::uint64_t{1} << 29) - 1)) << 34) |
         (in_msg ? std::uint64_t{1} << 63 : 0);
}

// The sharer's own mapping of the ring's memfd (no guard page: it is not the
// ring's code that maps it), made before the sharer is forked.
struct sharer_view {
  std::byte* base = nullptr;
  std::size_t bytes = 0;
  explicit sharer_view(const shm_ring& r) {
    bytes = shm_ring::layout().header_bytes + r.ring_bytes();
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r.mem_fd(), 0);
    BOOST_REQUIRE(p != MAP_FAILED);
    base = static_cast<std::byte*>(p);
  }
  ~sharer_view() { ::munmap(base, bytes); }
  sharer_view(const sharer_view&) = delete;
  sharer_view& operator=(const sharer_view&) = delete;
  std::atomic<std::uint64_t>& at(std::size_t offset) const {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(base + offset);
  }
  std::atomic<std::uint64_t>& ring_word(std::uint64_t pos) const {
    return at(shm_ring::layout().header_bytes + pos);
  }
};

// Runs `scribble` in a forked child (the sharer) and waits for it.
void in_sharer(const std::function<void()>& scribble) {
  isola::process p(forked(), [scribble] { scribble(); });
  p.start();
  BOOST_REQUIRE(p.join(30s));
  BOOST_REQUIRE(p.exitcode() == 0);
}

// A child still running when its case ends (a failed REQUIRE, a stopped
// child) is killed, so that the runtime's exit does not wait for it.
struct kill_at_exit {
  isola::process& p;
  ~kill_at_exit() {
    if (p.exitcode()) return;
    if (!p.join(std::chrono::duration<double>(0))) p.kill();
    p.join(10s);
  }
};

// How a victim child's call ended.
enum outcome : int {
  corrupt = 10,   // queue_corrupt: the answer wanted
  returned = 11,  // the call went on as if nothing were wrong
  decoded = 12,   // decode_error (the old answer to a bad record)
  other = 13,     // another exception
};

int outcome_of(const std::function<void()>& call) {
  try {
    call();
    return returned;
  } catch (const isola::queue_corrupt&) {
    return corrupt;
  } catch (const isola::decode_error&) {
    return decoded;
  } catch (...) {
    return other;
  }
}

// Runs call in a forked child; its outcome, or -N if a signal killed it.
std::optional<int> in_victim(const std::function<void()>& call) {
  isola::process p(forked(), [call] { return outcome_of(call); });
  p.start();
  if (!p.join(20s)) {
    p.kill();
    p.join(10s);
    return std::nullopt;  // hung
  }
  return p.exitcode();
}

// --- /proc ---------------------------------------------------------------------

struct maps_line {
  std::uintptr_t from = 0, to = 0;
  std::string perms;
  unsigned long inode = 0;
  std::string path;
};

std::vector<maps_line> read_maps() {
  std::ifstream f("/proc/self/maps");
  std::vector<maps_line> out;
  std::string line;
  while (std::getline(f, line)) {
    maps_line m;
    std::istringstream is(line);
    std::string range, offset, dev;
    is >> range >> m.perms >> offset >> dev >> m.inode;
    std::getline(is, m.path);
    auto dash = range.find('-');
    m.from = std::stoull(range.substr(0, dash), nullptr, 16);
    m.to = std::stoull(range.substr(dash + 1), nullptr, 16);
    out.push_back(m);
  }
  return out;
}

// How many mappings of the memfd with this inode (or, for 0, of any isola
// queue's memfd) there are, and how many of them are immediately followed
// by a PROT_NONE mapping of at least a page.
std::pair<int, int> guarded_mappings(unsigned long inode) {
  auto maps = read_maps();
  int found = 0, guarded = 0;
  for (std::size_t i = 0; i < maps.size(); ++i) {
    bool ours = inode != 0 ? maps[i].inode == inode
                           : maps[i].path.find("memfd:isola-queue") != std::string::npos;
    if (!ours) continue;
    ++found;
    if (i + 1 < maps.size() && maps[i + 1].from == maps[i].to &&
        maps[i + 1].perms.rfind("---", 0) == 0 && maps[i + 1].to - maps[i + 1].from >= 4096)
      ++guarded;
  }
  return {found, guarded};
}

unsigned long inode_of(int fd) {
  struct stat st {};
  BOOST_REQUIRE(::fstat(fd, &st) == 0);
  return static_cast<unsigned long>(st.st_ino);
}

// Target of the spawn and forkserver children: 0 if the queue received (the
// only one in this fresh process) is mapped, each time followed by its guard.
int queue_mappings_are_guarded(isola::queue<int> q) {
  q.put(1);  // it works
  auto [found, guarded] = guarded_mappings(0);
  return found >= 1 && guarded == found ? 0 : 20 + found * 2 + guarded;
}

// 'T' while pid is stopped, 'S' asleep...
char proc_state(int pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return '?';
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return '?';
  std::string st(buf, static_cast<std::size_t>(n));
  auto p = st.rfind(')');
  return p != std::string::npos && p + 2 < st.size() ? st[p + 2] : '?';
}

}  // namespace

BOOST_AUTO_TEST_SUITE(shm_ring_hostile_suite)

// The finding: positions 4 bytes short of the ring's end made the next put
// write its record header 4 bytes past the mapping, and the next get read
// there. Now both are checked before use and the call raises queue_corrupt.
BOOST_AUTO_TEST_CASE(
    an_unaligned_tail_makes_the_next_put_raise_queue_corrupt_not_write_past_the_ring,
    *utf::timeout(60)) {
  auto r = make_ring(4096);
  const auto L = shm_ring::layout();
  const std::uint64_t size = r->ring_bytes();
  sharer_view v(*r);
  in_sharer([&] {
    for (auto off : {L.tail, L.head, L.head_cache, L.tail_cache}) v.at(off) = word(size - 4);
  });
  auto got = in_victim([&] { put_bytes(*r, make_bytes(1, 16), deadline::now()); });
  BOOST_TEST(got == std::optional<int>(corrupt));
  // Closed for everybody, this process included.
  BOOST_CHECK_THROW(put_bytes(*r, make_bytes(2, 16), deadline::now()), isola::queue_corrupt);
  sink s;
  BOOST_CHECK_THROW(s.get(*r, deadline::now()), isola::queue_corrupt);
  BOOST_CHECK_THROW(r->qsize(), isola::queue_corrupt);
}

BOOST_AUTO_TEST_CASE(
    an_unaligned_head_makes_the_next_get_raise_queue_corrupt_not_read_past_the_ring,
    *utf::timeout(60)) {
  auto r = make_ring(4096);
  const auto L = shm_ring::layout();
  const std::uint64_t size = r->ring_bytes();
  BOOST_REQUIRE(put_bytes(*r, make_bytes(3, 40), deadline::now()));
  sharer_view v(*r);
  // head 4 bytes before the end, tail 16 bytes after it: the record header
  // at head would straddle the end of the ring.
  in_sharer([&] {
    v.at(L.head) = word(size - 4);
    v.at(L.tail) = v.at(L.tail_cache) = word(size + 12, 1);
  });
  auto got = in_victim([&] {
    sink s;
    s.get(*r, deadline::now());
  });
  BOOST_TEST(got == std::optional<int>(corrupt));
  BOOST_CHECK_THROW(put_bytes(*r, make_bytes(4, 16), deadline::now()), isola::queue_corrupt);
}

// tail more than the ring ahead of head: a put would see room that is not
// there (the old code's free space underflowed) and overwrite unread
// records; a get would believe more bytes than the ring holds.
BOOST_AUTO_TEST_CASE(a_tail_more_than_the_ring_ahead_of_head_is_corruption_on_both_sides,
                     *utf::timeout(60)) {
  for (bool producer : {true, false}) {
    BOOST_TEST_CONTEXT("victim: " << (producer ? "a producer" : "a consumer")) {
      auto r = make_ring(4096);
      const auto L = shm_ring::layout();
      const std::uint64_t size = r->ring_bytes();
      BOOST_REQUIRE(put_bytes(*r, make_bytes(5, 100), deadline::now()));
      sharer_view v(*r);
      in_sharer([&] {
        std::uint64_t head = v.at(L.head).load();
        v.at(L.tail) = v.at(L.tail_cache) = word((head & 0xffff'ffff) + size + 64, 1);
      });
      auto got = in_victim([&] {
        if (producer) {
          put_bytes(*r, make_bytes(6, 100), deadline::now());
        } else {
          sink s;
          s.get(*r, deadline::now());
        }
      });
      BOOST_TEST(got == std::optional<int>(corrupt));
    }
  }
}

// A record length far beyond the ring: the get that finds it raises
// queue_corrupt, and a producer blocked (untimed) in another process, waiting
// for room in the full queue, wakes and raises it too; so does every later
// call, and isola::wait sees the queue ready (a get would not block).
BOOST_AUTO_TEST_CASE(a_huge_record_length_closes_the_queue_for_every_process_waiters_included,
                     *utf::timeout(60)) {
  auto r = make_ring(4096, /*maxsize=*/1);
  const auto L = shm_ring::layout();
  BOOST_REQUIRE(put_bytes(*r, make_bytes(7, 64), deadline::now()));
  auto* st = make_shared_words();
  isola::process blocked(forked(), [r, st] {
    st->w[0] = 1;
    return outcome_of([&] { put_bytes(*r, make_bytes(8, 64), deadline::forever()); });
  });
  blocked.start();
  kill_at_exit reap{blocked};
  BOOST_REQUIRE(isola_test::wait_until([&] { return st->w[0] == 1u; }, 20s));
  sharer_view v(*r);
  in_sharer([&] {
    std::uint64_t head = v.at(L.head).load() & ((std::uint64_t{1} << 34) - 1);
    auto& rec = v.ring_word(head & (r->ring_bytes() - 1));
    std::uint64_t w = rec.load();
    rec = (w & 0xffff'ffff'0000'0000ull) | 0xffff'fff0u;  // {len, kind}: the length
  });
  sink s;
  BOOST_CHECK_THROW(s.get(*r, deadline::now()), isola::queue_corrupt);
  auto t0 = clk::now();
  BOOST_TEST(blocked.join(10s));
  BOOST_TEST(ms_since(t0) < 2000.0);
  BOOST_TEST(blocked.exitcode() == std::optional<int>(corrupt));
  BOOST_CHECK_THROW(s.get(*r, deadline::after(1s)), isola::queue_corrupt);
  BOOST_CHECK_THROW(put_bytes(*r, make_bytes(9, 8), deadline::now()), isola::queue_corrupt);
  BOOST_CHECK_THROW(r->full(), isola::queue_corrupt);
  BOOST_TEST(r->ready_for_wait());
}

// A sharer flips a record's length between its true value and one far beyond
// the ring while consumers read it: each get either delivers the message
// intact (it read the true length once and used only that) or raises
// queue_corrupt; never a message of another length, never a crash. (The old
// code also read the header once, into a copy; this guards that property.)
BOOST_AUTO_TEST_CASE(a_record_length_changing_while_it_is_read_is_used_as_read_once,
                     *utf::timeout(120)) {
  constexpr int rings = 48;
  std::vector<std::shared_ptr<shm_ring>> rs;
  std::vector<std::unique_ptr<sharer_view>> views;
  const bytes msg = make_bytes(10, 200);
  for (int i = 0; i < rings; ++i) {
    rs.push_back(make_ring(4096));
    BOOST_REQUIRE(put_bytes(*rs.back(), msg, deadline::now()));
    views.push_back(std::make_unique<sharer_view>(*rs.back()));
  }
  auto* st = make_shared_words();
  isola::process flipper(forked(), [&views, st] {
    const std::uint64_t good = views[0]->ring_word(0).load();  // the record at position 0
    const std::uint64_t bad = (good & 0xffff'ffff'0000'0000ull) | 0x7fff'fff8u;
    st->w[0] = 1;
    while (st->w[1] == 0) {
      for (auto& v : views) v->ring_word(0).store(bad, std::memory_order_relaxed);
      for (auto& v : views) v->ring_word(0).store(good, std::memory_order_relaxed);
    }
  });
  flipper.start();
  struct stop_flipper {
    shared_words* st;
    isola::process& p;
    ~stop_flipper() {
      st->w[1] = 1;
      if (!p.join(10s)) p.kill();
    }
  } stop{st, flipper};
  BOOST_REQUIRE(isola_test::wait_until([&] { return st->w[0] == 1u; }, 20s));
  int intact = 0, corrupted = 0, wrong = 0;
  for (auto& r : rs) {
    sink s;
    try {
      auto m = s.get(*r, deadline::now());
      (m && *m == msg ? intact : wrong) += 1;
    } catch (const isola::queue_corrupt&) {
      ++corrupted;
    }
  }
  st->w[1] = 1;
  BOOST_TEST(flipper.join(10s));
  BOOST_TEST(flipper.exitcode() == std::optional<int>(0));
  BOOST_TEST(wrong == 0);
  BOOST_TEST(intact + corrupted == rings);
  BOOST_TEST_MESSAGE("intact " << intact << ", corrupt " << corrupted);
}

// The ring's mapping in the creating process is followed by a PROT_NONE page,
// touching it kills a forked child with SIGSEGV, and spawn and forkserver
// children, which map the memfd they received themselves, have it too.
BOOST_AUTO_TEST_CASE(every_mapping_of_a_ring_is_followed_by_a_guard_page, *utf::timeout(120)) {
  auto r = make_ring(8192);
  auto [found, guarded] = guarded_mappings(inode_of(r->mem_fd()));
  BOOST_TEST(found == 1);
  BOOST_TEST(guarded == 1);

  std::uintptr_t end = 0;
  for (auto& m : read_maps())
    if (m.inode == inode_of(r->mem_fd())) end = m.to;
  BOOST_REQUIRE(end != 0);
  isola::process toucher(forked(), [end] {
    auto* p = reinterpret_cast<volatile const unsigned char*>(end);
    return static_cast<int>(*p);  // the byte right after the ring
  });
  toucher.start();
  BOOST_REQUIRE(toucher.join(30s));
  BOOST_TEST(toucher.exitcode() == std::optional<int>(-SIGSEGV));

  for (auto method : {isola::start_method::spawn, isola::start_method::forkserver}) {
    BOOST_TEST_CONTEXT("method " << static_cast<int>(method)) {
      isola::queue<int> q;
      isola::process p(isola::process_options{.method = method}, queue_mappings_are_guarded, q);
      p.start();
      BOOST_REQUIRE(p.join(60s));
      BOOST_TEST(p.exitcode() == std::optional<int>(0));
      BOOST_TEST(q.get(10s) == 1);
    }
  }
}

// A producer stopped (SIGSTOP) in the middle of a message larger than the
// ring holds put_lock, and the consumer receiving the message waits for its
// next chunk. Neither holds anybody past their deadline: a consumer's
// get(200 ms) (which had begun receiving it) and another producer's
// put(x, 200 ms) return on time. Killed, the stopped producer's lock is
// repaired and the ring works on, chunked messages included.
BOOST_AUTO_TEST_CASE(a_producer_stopped_mid_message_holds_nobody_past_their_deadline,
                     *utf::timeout(120)) {
  auto r = make_ring(4096);
  auto* st = make_shared_words();
  const bytes big = make_bytes(11, 200 * 1024), small = make_bytes(12, 30);
  isola::process producer(forked(), [r, st, &big] {
    st->w[0] = 1;
    put_bytes(*r, big, deadline::forever());
    st->w[0] = 2;
  });
  producer.start();
  kill_at_exit reap{producer};
  // Mid-message (FIRST and MIDDLE records in the ring, put_lock held), asleep
  // waiting for room: stop it there.
  BOOST_REQUIRE(isola_test::wait_until(
      [&] { return st->w[0] == 1u && proc_state(producer.pid()) == 'S'; }, 20s));
  BOOST_REQUIRE(::kill(producer.pid(), SIGSTOP) == 0);
  BOOST_REQUIRE(isola_test::wait_until([&] { return proc_state(producer.pid()) == 'T'; }, 20s));

  // The consumer: takes the chunks there are, then waits for the rest.
  isola::process consumer(forked(), [r, st] {
    sink s;
    auto t0 = clk::now();
    bool got = r->get(s, deadline::after(0.2s));
    st->w[2] = static_cast<std::uint64_t>(ms_since(t0));
    st->w[3] = static_cast<std::uint64_t>(s.begins);
    return got ? 1 : 0;
  });
  consumer.start();
  kill_at_exit reap_consumer{consumer};
  bool consumer_done = consumer.join(10s);
  BOOST_TEST(consumer_done);  // the old ring waited for the stopped producer for ever
  if (!consumer_done) {
    consumer.kill();
    consumer.join(10s);
  } else {
    BOOST_TEST(consumer.exitcode() == std::optional<int>(0));  // nothing delivered
    BOOST_TEST(st->w[3].load() == 1u);                         // it had begun the message
    BOOST_TEST(st->w[2].load() >= 190u);
    BOOST_TEST(st->w[2].load() < 700u);
  }

  // Another producer and another consumer, timed: on time.
  auto t0 = clk::now();
  BOOST_TEST(!put_bytes(*r, small, deadline::after(0.2s)));
  BOOST_TEST(ms_since(t0) >= 190.0);
  BOOST_TEST(ms_since(t0) < 700.0);
  sink s;
  t0 = clk::now();
  BOOST_TEST(!s.get(*r, deadline::after(0.2s)));
  BOOST_TEST(ms_since(t0) < 700.0);
  BOOST_TEST(!put_bytes(*r, small, deadline::now()));

  // Killed: the next put repairs its lock (an ABORT), and all works on.
  producer.kill();
  BOOST_REQUIRE(producer.join(30s));
  BOOST_TEST(st->w[0].load() == 1u);
  BOOST_REQUIRE(put_bytes(*r, small, deadline::after(5s)));
  auto m = s.get(*r, deadline::after(5s));
  BOOST_TEST((m && *m == small));
  BOOST_TEST(r->empty());
  const bytes chunked = make_bytes(13, 3000);
  BOOST_REQUIRE(put_bytes(*r, chunked, deadline::now()));
  m = s.get(*r, deadline::now());
  BOOST_TEST((m && *m == chunked));
  BOOST_TEST(s.ends == 1);
  BOOST_TEST(r->empty());
}

// As above, but the stopped producer is continued after the consumer gave up:
// the rest of its message is dropped as it comes (the consumer that took its
// start is gone), its put returns, the counts stay exact and the next
// message arrives intact.
BOOST_AUTO_TEST_CASE(a_stopped_producer_continued_after_its_consumer_gave_up_harms_nothing_else,
                     *utf::timeout(120)) {
  auto r = make_ring(4096);
  auto* st = make_shared_words();
  const bytes big = make_bytes(14, 100 * 1024), after = make_bytes(15, 500);
  isola::process producer(forked(), [r, st, &big, &after] {
    st->w[0] = 1;
    put_bytes(*r, big, deadline::forever());
    st->w[0] = 2;
    put_bytes(*r, after, deadline::forever());
    st->w[0] = 3;
  });
  producer.start();
  kill_at_exit reap{producer};
  BOOST_REQUIRE(isola_test::wait_until(
      [&] { return st->w[0] == 1u && proc_state(producer.pid()) == 'S'; }, 20s));
  BOOST_REQUIRE(::kill(producer.pid(), SIGSTOP) == 0);
  BOOST_REQUIRE(isola_test::wait_until([&] { return proc_state(producer.pid()) == 'T'; }, 20s));
  sink s;
  auto t0 = clk::now();
  BOOST_TEST(!s.get(*r, deadline::after(0.2s)));  // began the message, gave up
  BOOST_TEST(ms_since(t0) < 700.0);
  BOOST_TEST(s.begins == 1);
  BOOST_TEST(s.resets == 1);

  BOOST_REQUIRE(::kill(producer.pid(), SIGCONT) == 0);
  // Drain what is left of the big message: dropped, nothing delivered.
  std::optional<bytes> m;
  BOOST_REQUIRE(isola_test::wait_until(
      [&] {
        m = s.get(*r, deadline::after(0.05s));
        return m.has_value();
      },
      20s));
  BOOST_TEST((*m == after));
  BOOST_TEST(s.begins == 1);
  BOOST_TEST(s.ends == 0);
  BOOST_REQUIRE(producer.join(30s));
  BOOST_TEST(st->w[0].load() == 3u);
  BOOST_TEST(r->empty());
  BOOST_TEST(r->qsize() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
