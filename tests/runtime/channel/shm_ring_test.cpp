// The shared-memory ring itself (isola/detail/shm_ring.hpp), below queue<T>:
// whole and chunked messages, blocking, non-blocking and timed put and get,
// the wrap-around of positions and counters, a sink that throws, producers
// and consumers in other processes, a producer SIGKILLed in the middle of a
// multi-record message, single-consumer rings and max_message_size.
//
// Messages are raw bytes; the sink below records what the ring called on it,
// so each case checks both the bytes and the path they took (whole() for one
// record; begin/append.../end for a chunked message; reset for an aborted
// one). Children are forked with isola::process (fork shares the mapping);
// every blocking call has a deadline or runs under the case's timeout.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <isola/detail/deadline.hpp>
#include <isola/detail/shm_ring.hpp>
#include <isola/error.hpp>
#include <isola/process.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
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

// --- messages ---------------------------------------------------------------------

// n bytes, a function of (seed, n): any torn, shifted or mixed-up message differs.
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

std::uint64_t checksum(std::span<const std::byte> v) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (auto b : v) h = (h ^ static_cast<std::uint8_t>(b)) * 0x100000001b3ull;
  return h;
}

// A message that carries its own check: [u64 seq][u64 length][u64 checksum][data].
bytes make_checked(std::uint64_t seq, std::size_t data_len) {
  bytes data = make_bytes(seq, data_len);
  bytes m(24 + data_len);
  std::uint64_t len = data_len, sum = checksum(data);
  std::memcpy(m.data(), &seq, 8);
  std::memcpy(m.data() + 8, &len, 8);
  std::memcpy(m.data() + 16, &sum, 8);
  if (data_len) std::memcpy(m.data() + 24, data.data(), data_len);
  return m;
}

// The seq of an intact checked message, or ~0 if it is not one.
std::uint64_t check_message(const bytes& m) {
  if (m.size() < 24) return ~std::uint64_t{0};
  std::uint64_t seq, len, sum;
  std::memcpy(&seq, m.data(), 8);
  std::memcpy(&len, m.data() + 8, 8);
  std::memcpy(&sum, m.data() + 16, 8);
  if (len != m.size() - 24) return ~std::uint64_t{0};
  if (sum != checksum(std::span(m).subspan(24))) return ~std::uint64_t{0};
  return seq;
}

bool put_bytes(shm_ring& r, const bytes& m, deadline d, std::size_t split = SIZE_MAX) {
  std::span<const std::byte> all(m);
  split = std::min(split, m.size());
  return r.put(all.first(split), all.subspan(split), d);
}

// --- the sink -----------------------------------------------------------------------

// Records what the ring called and what arrived. on_append, if set, runs
// before each append (to throw, or to pause a consumer mid-message).
class test_sink final : public isola::detail::ring_sink {
 public:
  void whole(std::span<const std::byte> a, std::span<const std::byte> b) override {
    ++wholes;
    if (throw_in_whole) throw std::runtime_error("sink refused the whole message");
    data.assign(a.begin(), a.end());
    data.insert(data.end(), b.begin(), b.end());
    complete = true;
  }
  void begin(std::uint64_t total) override {
    ++begins;
    announced = total;
    data.clear();
    complete = false;
  }
  void append(std::span<const std::byte> piece) override {
    ++appends;
    if (on_append) on_append(data.size());
    data.insert(data.end(), piece.begin(), piece.end());
  }
  void end() override {
    ++ends;
    complete = data.size() == announced;
  }
  void reset() noexcept override {
    ++resets;
    data.clear();
    complete = false;
  }

  // Gets one message; the bytes if one arrived.
  std::optional<bytes> get(shm_ring& r, deadline d) {
    complete = false;
    if (!r.get(*this, d)) return std::nullopt;
    BOOST_TEST(complete);
    return data;
  }

  bytes data;
  std::uint64_t announced = 0;
  bool complete = false;
  bool throw_in_whole = false;
  std::function<void(std::size_t)> on_append;
  std::atomic<int> wholes{0}, begins{0}, appends{0}, ends{0}, resets{0};
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

isola::process_options forked() { return {.method = isola::start_method::fork}; }

// True while pid is asleep in the kernel (state S): a producer past its last
// report that sleeps is waiting in put for room. Its sleeps are capped, so it
// is polled, not looked at once.
bool asleep(int pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  std::string st(buf, static_cast<std::size_t>(n));
  auto p = st.rfind(')');
  return p != std::string::npos && p + 2 < st.size() && st[p + 2] == 'S';
}

}  // namespace

BOOST_AUTO_TEST_SUITE(shm_ring_suite)

BOOST_AUTO_TEST_CASE(a_message_put_is_got_whole_and_in_order, *utf::timeout(30)) {
  auto r = make_ring(64 * 1024);
  BOOST_TEST(r->ring_bytes() == 64u * 1024u);
  BOOST_TEST(r->empty());
  std::vector<bytes> sent;
  for (std::size_t i = 0; i < 40; ++i) {
    sent.push_back(make_bytes(i, (i * 37) % 700));  // includes the empty message
    // The two parts of a put are one message: split it anywhere.
    BOOST_REQUIRE(put_bytes(*r, sent.back(), deadline::now(), i % 5 == 0 ? 0 : i * 3));
    BOOST_TEST(r->qsize() == i + 1);
  }
  test_sink s;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    auto got = s.get(*r, deadline::now());
    BOOST_REQUIRE(got.has_value());
    BOOST_TEST((*got == sent[i]), "message " << i << " differs");
    BOOST_TEST(r->qsize() == sent.size() - i - 1);
  }
  BOOST_TEST(s.wholes == 40);  // each fit in one record
  BOOST_TEST(s.begins == 0);
  BOOST_TEST(r->empty());
  BOOST_TEST(!s.get(*r, deadline::now()).has_value());
}

BOOST_AUTO_TEST_CASE(a_message_larger_than_one_record_streams_in_chunks_and_arrives_whole,
                     *utf::timeout(60)) {
  auto r = make_ring(4096);  // records of at most 1 KiB
  // Larger than a record, smaller than the ring: it can be put with nobody reading.
  bytes mid = make_bytes(1, 2500);
  BOOST_REQUIRE(put_bytes(*r, mid, deadline::forever(), 1000));
  BOOST_TEST(r->qsize() == 1u);
  test_sink s;
  auto got = s.get(*r, deadline::now());
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((*got == mid));
  BOOST_TEST(s.wholes == 0);
  BOOST_TEST(s.begins == 1);
  BOOST_TEST(s.announced == 2500u);
  BOOST_TEST(s.appends >= 3);  // 2500 bytes in records of at most 1 KiB
  BOOST_TEST(s.ends == 1);
  BOOST_TEST(s.resets == 0);

  // A non-blocking put of a chunked message succeeds when all of it fits.
  BOOST_REQUIRE(put_bytes(*r, mid, deadline::now()));
  BOOST_REQUIRE(s.get(*r, deadline::now()).has_value());
  BOOST_TEST((s.data == mid));

  // Many times the ring: the consumer (another thread) streams it as it comes.
  bytes big = make_bytes(2, 300 * 1024 + 13);
  bytes after = make_bytes(3, 17);
  std::thread producer([&] {
    put_bytes(*r, big, deadline::forever(), 123457);
    put_bytes(*r, after, deadline::forever());
  });
  test_sink s2;
  auto g1 = s2.get(*r, deadline::after(30s));
  auto g2 = s2.get(*r, deadline::after(30s));
  producer.join();
  BOOST_REQUIRE(g1.has_value());
  BOOST_REQUIRE(g2.has_value());
  BOOST_TEST(g1->size() == big.size());
  BOOST_TEST((*g1 == big));
  BOOST_TEST((*g2 == after));
  BOOST_TEST(s2.begins == 1);
  BOOST_TEST(s2.ends == 1);
  BOOST_TEST(s2.appends >= 300);
  BOOST_TEST(s2.wholes == 1);
  BOOST_TEST(r->empty());
}

BOOST_AUTO_TEST_CASE(
    put_blocks_when_the_ring_is_full_nonblocking_fails_at_once_timed_at_its_deadline,
    *utf::timeout(60)) {
  auto r = make_ring(4096);
  const bytes m = make_bytes(7, 56);  // 64-byte records: 64 fill the ring
  int n = 0;
  while (put_bytes(*r, m, deadline::now())) ++n;
  BOOST_TEST(n == 64);
  BOOST_TEST(r->full());
  BOOST_TEST(r->qsize() == 64u);

  auto t0 = clk::now();
  BOOST_TEST(!put_bytes(*r, m, deadline::now()));
  BOOST_TEST(ms_since(t0) < 50.0);

  t0 = clk::now();
  BOOST_TEST(!put_bytes(*r, m, deadline::after(300ms)));
  double el = ms_since(t0);
  BOOST_TEST(el >= 300.0);  // not before its deadline
  BOOST_TEST(el < 800.0);   // and not far after
  BOOST_TEST(r->qsize() == 64u);

  // An untimed put waits until a get makes room, then completes.
  std::atomic<bool> done{false};
  std::thread t([&] {
    put_bytes(*r, make_bytes(8, 56), deadline::forever());
    done = true;
  });
  BOOST_TEST(!isola_test::wait_until([&] { return done.load(); }, 200ms));  // blocked
  test_sink s;
  BOOST_REQUIRE(s.get(*r, deadline::now()).has_value());
  BOOST_TEST(isola_test::wait_until([&] { return done.load(); }, 10s));
  t.join();
  BOOST_TEST(r->qsize() == 64u);
  for (int i = 0; i < 63; ++i) BOOST_REQUIRE((s.get(*r, deadline::now()) == m));
  BOOST_TEST((s.get(*r, deadline::now()) == make_bytes(8, 56)));  // last, in order
  BOOST_TEST(r->empty());

  // maxsize bounds the count of messages, whatever room the ring has.
  auto q = make_ring(64 * 1024, 3);
  for (int i = 0; i < 3; ++i) BOOST_TEST(put_bytes(*q, m, deadline::now()));
  BOOST_TEST(q->full());
  BOOST_TEST(!put_bytes(*q, make_bytes(9, 1), deadline::now()));
  t0 = clk::now();
  BOOST_TEST(!put_bytes(*q, make_bytes(9, 1), deadline::after(100ms)));
  el = ms_since(t0);
  BOOST_TEST(el >= 100.0);
  BOOST_TEST(el < 600.0);
  BOOST_REQUIRE(s.get(*q, deadline::now()).has_value());
  BOOST_TEST(!q->full());
  BOOST_TEST(put_bytes(*q, m, deadline::now()));
}

BOOST_AUTO_TEST_CASE(get_on_an_empty_ring_fails_at_once_without_waiting_and_at_its_deadline_timed,
                     *utf::timeout(30)) {
  auto r = make_ring(4096);
  test_sink s;
  auto t0 = clk::now();
  BOOST_TEST(!r->get(s, deadline::now()));
  BOOST_TEST(ms_since(t0) < 50.0);

  t0 = clk::now();
  BOOST_TEST(!r->get(s, deadline::after(300ms)));
  double el = ms_since(t0);
  BOOST_TEST(el >= 300.0);
  BOOST_TEST(el < 800.0);
  // The sink was never touched.
  BOOST_TEST(s.wholes + s.begins + s.appends + s.ends + s.resets == 0);

  // A timed get that a put satisfies returns as soon as it arrives.
  std::thread t([&] { put_bytes(*r, make_bytes(5, 5), deadline::forever()); });
  t0 = clk::now();
  auto got = s.get(*r, deadline::after(20s));
  t.join();
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((*got == make_bytes(5, 5)));
  BOOST_TEST(ms_since(t0) < 10000.0);
}

// The ring's words keep positions modulo 2^34 and counts modulo 2^29; start
// both just short of the wrap and push thousands of messages across it.
BOOST_AUTO_TEST_CASE(positions_and_counters_wrap_around_without_losing_a_byte, *utf::timeout(120)) {
  ring_config cfg;
  cfg.ring_bytes = 4096;
  cfg.start_position = (std::uint64_t{1} << 34) - 5000;
  cfg.start_count = (std::uint32_t{1} << 29) - 700;
  auto r = shm_ring::create(cfg);
  BOOST_TEST(r->qsize() == 0u);
  BOOST_TEST(r->empty());
  BOOST_TEST(r->unfinished_tasks() == 0u);

  // One thread: whole records only, filling the ring and draining it, with
  // qsize and the task count checked after every step.
  std::mt19937_64 rng(99);
  test_sink s;
  std::uint64_t seq = 0, next = 0;
  std::size_t in_ring = 0;
  for (int round = 0; round < 1500; ++round) {
    std::size_t want = 1 + rng() % 40;
    for (std::size_t k = 0; k < want; ++k) {
      bytes m = make_checked(seq, rng() % 900);  // record <= 1 KiB: whole
      if (!put_bytes(*r, m, deadline::now(), rng() % (m.size() + 1))) break;
      ++seq;
      ++in_ring;
      BOOST_REQUIRE(r->qsize() == in_ring);
      BOOST_REQUIRE(r->unfinished_tasks() == in_ring);
    }
    std::size_t take = 1 + rng() % (in_ring + 1);
    for (std::size_t k = 0; k < take && in_ring > 0; ++k) {
      auto got = s.get(*r, deadline::now());
      BOOST_REQUIRE(got.has_value());
      BOOST_REQUIRE(check_message(*got) == next);
      ++next;
      --in_ring;
      r->task_done();
      BOOST_REQUIRE(r->qsize() == in_ring);
      BOOST_REQUIRE(r->unfinished_tasks() == in_ring);
    }
  }
  while (in_ring > 0) {
    auto got = s.get(*r, deadline::now());
    BOOST_REQUIRE(got.has_value());
    BOOST_REQUIRE(check_message(*got) == next);
    ++next;
    --in_ring;
    r->task_done();
  }
  BOOST_TEST(next == seq);
  BOOST_TEST(seq > 1500u);  // well past the count's wrap (700) and many rings of bytes
  BOOST_TEST(r->empty());
  BOOST_TEST(r->join(deadline::now()));
  BOOST_CHECK_THROW(r->task_done(), isola::value_error);

  // Then a producer thread, with chunked messages (up to three rings long),
  // across the wrap again.
  ring_config cfg2 = cfg;
  cfg2.start_position = (std::uint64_t{1} << 34) - 100000;
  cfg2.start_count = (std::uint32_t{1} << 29) - 1000;
  auto r2 = shm_ring::create(cfg2);
  const std::uint64_t n = 3000;
  std::thread producer([&] {
    std::mt19937_64 pr(7);
    for (std::uint64_t i = 0; i < n; ++i) {
      std::size_t len = pr() % 10 == 0 ? 1000 + pr() % 12000 : pr() % 600;
      bytes m = make_checked(i, len);
      put_bytes(*r2, m, deadline::forever(), pr() % (m.size() + 1));
    }
  });
  std::uint64_t good = 0, in_order = 0;
  test_sink s2;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto got = s2.get(*r2, deadline::after(30s));
    if (!got) break;
    auto q = check_message(*got);
    good += q != ~std::uint64_t{0};
    in_order += q == i;
  }
  producer.join();
  BOOST_TEST(good == n);
  BOOST_TEST(in_order == n);
  BOOST_TEST(s2.begins > 0);  // some were chunked
  BOOST_TEST(s2.resets == 0);
  BOOST_TEST(r2->empty());
  BOOST_TEST(r2->unfinished_tasks() == n);
}

BOOST_AUTO_TEST_CASE(a_sink_that_throws_loses_that_message_and_the_next_one_arrives,
                     *utf::timeout(30)) {
  auto r = make_ring(4096);
  bytes m1 = make_bytes(1, 10), m2 = make_bytes(2, 20), m3 = make_bytes(3, 30);
  for (auto* m : {&m1, &m2, &m3}) BOOST_REQUIRE(put_bytes(*r, *m, deadline::now()));
  test_sink s;
  BOOST_TEST((s.get(*r, deadline::now()) == m1));
  s.throw_in_whole = true;
  BOOST_CHECK_THROW(r->get(s, deadline::now()), std::runtime_error);
  s.throw_in_whole = false;
  BOOST_TEST(r->qsize() == 1u);  // m2 was consumed and dropped
  BOOST_TEST((s.get(*r, deadline::now()) == m3));
  BOOST_TEST(r->empty());

  // The same in the middle of a chunked message: the rest of it is consumed.
  bytes big = make_bytes(4, 2500), m5 = make_bytes(5, 50);
  BOOST_REQUIRE(put_bytes(*r, big, deadline::now()));
  BOOST_REQUIRE(put_bytes(*r, m5, deadline::now()));
  BOOST_TEST(r->qsize() == 2u);
  int appends = 0;
  s.on_append = [&](std::size_t) {
    if (++appends == 2) throw std::length_error("sink full");
  };
  BOOST_CHECK_THROW(r->get(s, deadline::now()), std::length_error);
  s.on_append = nullptr;
  BOOST_TEST(appends == 2);  // nothing more was handed to a sink that failed
  BOOST_TEST(r->qsize() == 1u);
  auto got = s.get(*r, deadline::now());
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((*got == m5));
  BOOST_TEST(r->empty());
  // And the ring is whole: a chunked message still goes through.
  BOOST_REQUIRE(put_bytes(*r, big, deadline::now()));
  BOOST_TEST((s.get(*r, deadline::now()) == big));
}

BOOST_AUTO_TEST_CASE(a_forked_producer_and_a_forked_consumer_move_every_message_intact,
                     *utf::timeout(120)) {
  auto r = make_ring(16 * 1024);
  auto* rep = make_shared_words();
  const std::uint64_t n = 5000;
  isola::process producer(forked(), [r, n] {
    std::mt19937_64 pr(3);
    for (std::uint64_t i = 0; i < n; ++i) {
      // Mostly small, some chunked, some several rings long.
      auto k = pr() % 100;
      std::size_t len = k < 85 ? pr() % 500 : k < 97 ? 4000 + pr() % 4000 : 40000 + pr() % 20000;
      bytes m = make_checked(i, len);
      if (!put_bytes(*r, m, deadline::after(30s), pr() % (m.size() + 1))) ::_exit(3);
    }
  });
  isola::process consumer(forked(), [r, n, rep] {
    test_sink s;
    for (std::uint64_t i = 0; i < n; ++i) {
      s.complete = false;
      if (!r->get(s, deadline::after(30s))) ::_exit(3);
      auto q = check_message(s.data);
      if (s.complete && q != ~std::uint64_t{0}) rep->w[0].fetch_add(1);
      if (q == i) rep->w[1].fetch_add(1);
      rep->w[2].fetch_add(s.data.size());
    }
    rep->w[3] = static_cast<std::uint64_t>(s.begins.load());
  });
  consumer.start();
  producer.start();
  BOOST_REQUIRE(producer.join(60s));
  BOOST_REQUIRE(consumer.join(60s));
  BOOST_TEST(producer.exitcode() == std::optional<int>(0));
  BOOST_TEST(consumer.exitcode() == std::optional<int>(0));
  BOOST_TEST(rep->w[0].load() == n);  // intact
  BOOST_TEST(rep->w[1].load() == n);  // in order
  BOOST_TEST(rep->w[3].load() > 0u);  // some were chunked
  BOOST_TEST(rep->w[2].load() > 10u * r->ring_bytes());
  BOOST_TEST(r->empty());
}

// The producer streams a message far larger than the ring; nobody reads, so
// it blocks in put, holding put_lock, with FIRST and MIDDLE records in the
// ring. SIGKILL it: the next get repairs the lock (an ABORT), drops the
// partial message (reset, never end) and the ring works on.
BOOST_AUTO_TEST_CASE(a_producer_killed_inside_a_multi_record_message_leaves_it_dropped_once,
                     *utf::timeout(60)) {
  auto r = make_ring(4096);
  auto* st = make_shared_words();
  bytes before = make_bytes(10, 100), big = make_bytes(11, 200 * 1024), after = make_bytes(12, 30);
  isola::process p(forked(), [r, st, &before, &big] {
    put_bytes(*r, before, deadline::forever());
    st->w[0] = 1;  // inside the large put
    put_bytes(*r, big, deadline::forever());
    st->w[0] = 2;
  });
  p.start();
  // Stuck mid-message: the large put has begun and sleeps, waiting for room.
  // (full() stays false: a chunked put leaves room for its ABORT.)
  BOOST_REQUIRE(isola_test::wait_until([&] { return st->w[0] == 1 && asleep(p.pid()); }, 20s));
  BOOST_TEST(r->qsize() == 1u);                        // only the complete message counts
  BOOST_TEST(!put_bytes(*r, after, deadline::now()));  // its put_lock is held
  p.kill();
  BOOST_REQUIRE(p.join(30s));
  BOOST_TEST(st->w[0].load() == 1u);  // it never finished

  test_sink s;
  BOOST_TEST((s.get(*r, deadline::now()) == before));
  auto t0 = clk::now();
  BOOST_TEST(!r->get(s, deadline::now()));  // the remains are dropped, nothing delivered
  BOOST_TEST(ms_since(t0) < 1000.0);
  BOOST_TEST(s.begins == 1);
  BOOST_TEST(s.ends == 0);
  BOOST_TEST(s.resets == 1);
  BOOST_TEST(r->empty());
  BOOST_TEST(!r->full());
  BOOST_TEST(!r->get(s, deadline::after(50ms)));
  BOOST_TEST(s.resets == 1);  // dropped once

  // Usable both ways, chunked messages included.
  BOOST_REQUIRE(put_bytes(*r, after, deadline::now()));
  BOOST_TEST((s.get(*r, deadline::now()) == after));
  BOOST_REQUIRE(put_bytes(*r, make_bytes(13, 3000), deadline::now()));
  BOOST_TEST((s.get(*r, deadline::now()) == make_bytes(13, 3000)));
  BOOST_TEST(s.resets == 1);
}

// As above, but a consumer is in the middle of receiving the message when its
// producer dies: the consumer, waiting for the rest, notices the dead holder
// of put_lock by itself, drops what it had and goes on to the next message.
BOOST_AUTO_TEST_CASE(a_consumer_mid_message_drops_it_when_its_producer_is_killed,
                     *utf::timeout(60)) {
  auto r = make_ring(4096);
  auto* st = make_shared_words();
  bytes big = make_bytes(21, 200 * 1024), next = make_bytes(22, 40);
  isola::process p(forked(), [r, st, &big] {
    st->w[0] = 1;
    put_bytes(*r, big, deadline::forever());
    st->w[0] = 2;
  });
  p.start();

  // The consumer pauses after 16 KiB of the message until the producer is dead.
  std::atomic<bool> paused{false}, resume{false};
  test_sink s;
  s.on_append = [&](std::size_t have) {
    if (have >= 16 * 1024 && !paused) {
      paused = true;
      while (!resume) std::this_thread::yield();
    }
  };
  std::optional<bytes> got;
  std::thread consumer([&] { got = s.get(*r, deadline::after(30s)); });
  struct join_guard {  // a failed REQUIRE must not leave the thread joinable
    std::thread& t;
    std::atomic<bool>& resume;
    ~join_guard() {
      resume = true;
      if (t.joinable()) t.join();
    }
  } guard{consumer, resume};
  BOOST_REQUIRE(isola_test::wait_until([&] { return paused.load(); }, 20s));
  // The producer refills the ring and sleeps again, mid-message.
  BOOST_REQUIRE(isola_test::wait_until([&] { return asleep(p.pid()); }, 20s));
  p.kill();
  BOOST_REQUIRE(p.join(30s));
  BOOST_TEST(st->w[0].load() == 1u);
  resume = true;
  // The get goes on waiting for a complete message; give it one.
  BOOST_TEST(isola_test::wait_until([&] { return s.resets.load() == 1; }, 10s));
  BOOST_REQUIRE(put_bytes(*r, next, deadline::after(10s)));
  BOOST_REQUIRE(isola_test::wait_until([&] { return s.wholes.load() == 1; }, 10s));
  consumer.join();
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((*got == next));
  BOOST_TEST(s.begins == 1);
  BOOST_TEST(s.ends == 0);
  BOOST_TEST(s.resets == 1);
  BOOST_TEST(s.wholes == 1);
  BOOST_TEST(r->empty());
}

BOOST_AUTO_TEST_CASE(a_single_consumer_ring_delivers_and_reports_known_records, *utf::timeout(60)) {
  ring_config cfg;
  cfg.ring_bytes = 8192;
  cfg.single_consumer = true;
  auto r = shm_ring::create(cfg);
  BOOST_TEST(!r->known_records());
  test_sink s;
  for (int i = 0; i < 3; ++i) BOOST_REQUIRE(put_bytes(*r, make_bytes(i, 10 + i), deadline::now()));
  BOOST_TEST((s.get(*r, deadline::now()) == make_bytes(0, 10)));
  // The consumer's last look saw all three: two are known to be unread.
  BOOST_TEST(r->known_records());
  BOOST_TEST((s.get(*r, deadline::now()) == make_bytes(1, 11)));
  BOOST_TEST(r->known_records());
  BOOST_TEST((s.get(*r, deadline::now()) == make_bytes(2, 12)));
  BOOST_TEST(!r->known_records());
  BOOST_TEST(!r->get(s, deadline::now()));
  BOOST_TEST(!r->known_records());

  // A ring with a get lock never answers known_records.
  auto plain = make_ring(8192);
  BOOST_REQUIRE(put_bytes(*plain, make_bytes(1, 1), deadline::now()));
  BOOST_REQUIRE(put_bytes(*plain, make_bytes(1, 1), deadline::now()));
  BOOST_REQUIRE(s.get(*plain, deadline::now()).has_value());
  BOOST_TEST(!plain->known_records());

  // A mailbox: two forked producers, one consumer; each producer's messages
  // arrive intact and in its order, chunked ones included.
  const std::uint64_t n = 2000;
  std::vector<std::unique_ptr<isola::process>> producers;
  for (std::uint64_t id = 0; id < 2; ++id) {
    producers.push_back(std::make_unique<isola::process>(forked(), [r, id, n] {
      for (std::uint64_t i = 0; i < n; ++i) {
        bytes m = make_checked(id << 32 | i, i % 50 == 0 ? 3000 : i % 300);
        if (!put_bytes(*r, m, deadline::after(30s))) ::_exit(3);
      }
    }));
    producers.back()->start();
  }
  std::uint64_t next[2] = {0, 0};
  std::uint64_t bad = 0;
  for (std::uint64_t k = 0; k < 2 * n; ++k) {
    auto got = s.get(*r, deadline::after(30s));
    BOOST_REQUIRE(got.has_value());
    auto q = check_message(*got);
    std::uint64_t id = q >> 32, i = q & 0xffffffffu;
    if (q == ~std::uint64_t{0} || id > 1 || i != next[id])
      ++bad;
    else
      ++next[id];
    // Drain what is known without looking at the producers' word.
    while (k + 1 < 2 * n && r->known_records()) {
      BOOST_REQUIRE(s.get(*r, deadline::now()).has_value());
      ++k;
      q = check_message(s.data);
      id = q >> 32;
      i = q & 0xffffffffu;
      if (q == ~std::uint64_t{0} || id > 1 || i != next[id])
        ++bad;
      else
        ++next[id];
    }
  }
  for (auto& p : producers) {
    BOOST_REQUIRE(p->join(30s));
    BOOST_TEST(p->exitcode() == std::optional<int>(0));
  }
  BOOST_TEST(bad == 0u);
  BOOST_TEST(next[0] == n);
  BOOST_TEST(next[1] == n);
  BOOST_TEST(r->empty());
}

BOOST_AUTO_TEST_CASE(max_message_size_is_enforced_and_nothing_is_put, *utf::timeout(30)) {
  ring_config cfg;
  cfg.ring_bytes = 4096;
  cfg.max_message_size = 1000;
  auto r = shm_ring::create(cfg);
  BOOST_TEST(r->max_message_size() == 1000u);
  bytes ok = make_bytes(1, 1000), too_big = make_bytes(2, 1001);
  BOOST_CHECK_THROW(put_bytes(*r, too_big, deadline::now()), isola::value_error);
  BOOST_CHECK_THROW(put_bytes(*r, too_big, deadline::forever(), 600), isola::value_error);
  BOOST_TEST(r->empty());
  BOOST_TEST(put_bytes(*r, ok, deadline::now(), 400));
  test_sink s;
  BOOST_TEST((s.get(*r, deadline::now()) == ok));
  BOOST_TEST(s.wholes + s.begins == 1);

  // A large limit lets a chunked message through; one byte over does not.
  cfg.max_message_size = 50000;
  auto r2 = shm_ring::create(cfg);
  bytes fits = make_bytes(3, 50000), over = make_bytes(4, 50001);
  BOOST_CHECK_THROW(put_bytes(*r2, over, deadline::forever()), isola::value_error);
  BOOST_TEST(r2->empty());
  std::thread t([&] { put_bytes(*r2, fits, deadline::forever()); });
  auto got = s.get(*r2, deadline::after(30s));
  t.join();
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((*got == fits));

  // A closed handle refuses both ways.
  r2->close();
  BOOST_CHECK_THROW(put_bytes(*r2, ok, deadline::now()), isola::value_error);
  BOOST_CHECK_THROW(r2->get(s, deadline::now()), isola::value_error);
}

BOOST_AUTO_TEST_SUITE_END()
