// isola::queue, simple_queue and joinable_queue between real processes: order,
// exact sizes, blocking and its timeouts, close, message sizes from one byte
// to 256 MiB (far larger than the ring), get_into a reused buffer,
// heterogeneous messages, many
// producers and consumers, task accounting, isola::wait, and memory that has
// no name anywhere. Queues go to children as process arguments under every
// start method.
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <unistd.h>

#include <isola/joinable_queue.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>
#include <isola/simple_queue.hpp>
#include <isola/wait.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola::start_method;
using clk = std::chrono::steady_clock;

namespace {

struct record {
  int id = 0;
  std::string name;
  std::vector<double> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, name, values);
  }
  friend bool operator==(const record&, const record&) = default;
};

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

// A cheap 64-bit checksum over bytes.
std::uint64_t checksum(const void* data, std::size_t n) {
  auto p = static_cast<const unsigned char*>(data);
  std::uint64_t h = 1469598103934665603ull ^ n;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::vector<char> pattern(std::size_t n, unsigned seed) {
  std::vector<char> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    v[i] = static_cast<char>(x >> 24);
  }
  return v;
}

// --- children ------------------------------------------------------------------

void take_one_and_report(isola::queue<int> q, isola::queue<int> out) { out.put(q.get()); }

void put_range(isola::queue<int> q, int from, int n) {
  for (int i = 0; i < n; ++i) q.put(from + i);
}

void put_after_a_while(isola::queue<int> q, isola::queue<int> go, int v) {
  go.get();  // the parent says when it is waiting
  q.put(v);
}

void report_sizes_and_checksums(isola::queue<std::vector<char>> q,
                                isola::queue<std::vector<std::uint64_t>> out, int n) {
  for (int i = 0; i < n; ++i) {
    auto v = q.get();
    out.put({v.size(), checksum(v.data(), v.size())});
  }
}

void report_records(isola::queue<record> q, isola::queue<std::vector<std::uint64_t>> out, int n) {
  for (int i = 0; i < n; ++i) {
    auto r = q.get();
    out.put({static_cast<std::uint64_t>(r.id), r.name.size(), r.values.size(),
             checksum(r.values.data(), r.values.size() * sizeof(double)),
             checksum(r.name.data(), r.name.size())});
  }
}

void report_messages(isola::queue<> q, isola::queue<std::string> out, int n) {
  for (int i = 0; i < n; ++i) {
    auto m = q.get();
    out.put(m.match([](int v) { return "int " + std::to_string(v); },
                    [](const std::string& s) {
                      return "string " + std::to_string(s.size()) + " " +
                             std::to_string(checksum(s.data(), s.size()));
                    },
                    [](const record& r) { return "record " + r.name; },
                    [](const isola::message& other) { return "other " + other.type_name(); }));
  }
}

constexpr std::uint64_t stop_marker = ~std::uint64_t{0};

void mp_producer(isola::queue<std::uint64_t> q, std::uint64_t id, std::uint64_t n) {
  for (std::uint64_t s = 0; s < n; ++s) q.put(id << 32 | s);
}

void mp_consumer(isola::queue<std::uint64_t> q, isola::queue<std::vector<std::uint64_t>> out) {
  std::vector<std::uint64_t> got;
  for (;;) {
    auto v = q.get(30s);
    if (v == stop_marker) break;
    got.push_back(v);
  }
  out.put(got);
}

void simple_echo(isola::simple_queue<std::string> in, isola::simple_queue<std::string> out) {
  for (;;) {
    auto s = in.get();
    out.put("echo " + s);
    if (s == "bye") break;
  }
}

void do_tasks(isola::joinable_queue<int> q, int n) {
  for (int i = 0; i < n; ++i) {
    q.get();
    q.task_done();
  }
}

void get_one_after_closed_in_parent(isola::queue<int> q, isola::queue<int> out) {
  out.put(q.get(10s) + 1);
}

// Child: puts n vectors of growing sizes (up to several rings), each the
// pattern of its index.
void put_patterns(isola::queue<std::vector<char>> q, std::vector<std::size_t> sizes) {
  for (std::size_t i = 0; i < sizes.size(); ++i) q.put(pattern(sizes[i], static_cast<unsigned>(i)));
}

std::set<std::string> dev_shm_entries() {
  std::set<std::string> out;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.insert(n);
    }
    ::closedir(d);
  }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Child: says whether it maps a queue's memory as a memfd and nothing under /dev/shm.
int maps_only_memfd(isola::queue<int> q) {
  q.put(1);
  auto maps = read_text("/proc/self/maps");
  if (maps.find("/memfd:isola-queue") == std::string::npos) return 2;
  if (maps.find("/dev/shm/") != std::string::npos) return 3;
  return 0;
}

// Shutdown helpers. Exit codes: 0 woken by queue_shut_down; 3 something else.
int get_until_shut_down(isola::queue<int> q, isola::queue<int> ready) {
  ready.put(1);
  try {
    q.get();
  } catch (const isola::queue_shut_down&) {
    return 0;
  }
  return 3;
}
int put_until_shut_down(isola::queue<int> q, isola::queue<int> ready) {
  ready.put(1);
  try {
    q.put(2);  // the queue is full (maxsize 1): blocks
  } catch (const isola::queue_shut_down&) {
    return 0;
  }
  return 3;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(queue_suite)

BOOST_AUTO_TEST_CASE(messages_of_one_producer_arrive_in_order, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::queue<int> q(0, {.ring_bytes = 4096});  // small ring: wraps many times
      isola::process p(isola::process_options{.method = m}, put_range, q, 0, 20000);
      p.start();
      bool in_order = true;
      for (int i = 0; i < 20000; ++i)
        if (q.get(10s) != i) in_order = false;
      BOOST_TEST(in_order);
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(q.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(records_that_wrap_around_the_ring_arrive_intact, *utf::timeout(60)) {
  isola::queue<std::string> q(0, {.ring_bytes = 4096});  // records up to 1 KiB, then chunks
  std::uint32_t x = 7;
  bool all_equal = true;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1664525u + 1013904223u;
    std::size_t n = (x >> 8) % 3000;  // whole records and chunked ones, at every offset
    std::string s(n, '\0');
    for (std::size_t k = 0; k < n; ++k) s[k] = static_cast<char>('a' + (k * 7 + i) % 26);
    std::string small(i % 5, 's');
    q.put(s);
    q.put(small);
    if (q.get_nowait() != s || q.get_nowait() != small) all_equal = false;
  }
  BOOST_TEST(all_equal);
  BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_CASE(positions_and_counts_wrap_around_without_losing_track, *utf::timeout(60)) {
  // The ring's 34-bit positions and 29-bit counters, started just short of
  // wrapping (a test-only knob), stay exact across the wrap.
  namespace d = isola::detail;
  d::ring_config cfg;
  cfg.ring_bytes = 4096;
  cfg.maxsize = 5;
  cfg.type_tag = isola::type_tag<std::string>();
  cfg.start_position = (std::uint64_t{1} << 34) - 1000;
  cfg.start_count = (1u << 29) - 3;
  auto ring = d::shm_ring::create(cfg);
  auto put = [&](const std::string& s) {
    auto parts = d::queue_encode(s);
    return ring->put(parts.head(), parts.body, d::deadline::now());
  };
  auto get = [&]() -> std::optional<std::string> {
    d::queue_sink<std::string> sink;
    if (!ring->get(sink, d::deadline::now())) return std::nullopt;
    return sink.value;
  };
  bool ok = true;
  for (int round = 0; round < 300; ++round) {
    std::vector<std::string> sent;
    for (int i = 0; i < 5; ++i) {
      std::string s((round * 37 + i * 101) % 700, static_cast<char>('a' + i));
      if (!put(s)) ok = false;
      sent.push_back(s);
    }
    if (put("one too many")) ok = false;  // maxsize
    if (ring->qsize() != 5 || !ring->full() || ring->unfinished_tasks() != 5) ok = false;
    for (auto& e : sent) {
      if (get() != e) ok = false;
      ring->task_done();
    }
    if (get() || ring->qsize() != 0 || ring->unfinished_tasks() != 0) ok = false;
    // One chunked message too.
    std::string big(3000, static_cast<char>('A' + round % 26));
    if (!put(big) || get() != big) ok = false;
    ring->task_done();
  }
  BOOST_TEST(ok);
  BOOST_CHECK_THROW(ring->task_done(), isola::value_error);
}

BOOST_AUTO_TEST_CASE(qsize_empty_and_full_are_exact, *utf::timeout(30)) {
  isola::queue<int> q(3);
  BOOST_TEST(q.maxsize() == 3u);
  BOOST_TEST(q.qsize() == 0u);
  BOOST_TEST(q.empty());
  BOOST_TEST(!q.full());
  for (int i = 1; i <= 3; ++i) {
    q.put(i);
    BOOST_TEST(q.qsize() == static_cast<std::size_t>(i));
    BOOST_TEST(!q.empty());
  }
  BOOST_TEST(q.full());
  BOOST_TEST(q.get() == 1);
  BOOST_TEST(q.qsize() == 2u);
  BOOST_TEST(!q.full());

  // Unbounded: full only when the ring has no room.
  isola::queue<std::int64_t> u(0, {.ring_bytes = 4096});
  int n = 0;
  while (u.try_put(n)) ++n;
  BOOST_TEST(n == 4096 / 16);  // a record of an int64 is 16 bytes
  BOOST_TEST(u.full());
  BOOST_TEST(u.qsize() == static_cast<std::size_t>(n));
}

BOOST_AUTO_TEST_CASE(put_blocks_while_full_and_resumes_when_a_child_gets, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::queue<int> q(2), out;
      q.put(1);
      q.put(2);
      BOOST_CHECK_THROW(q.put(3, 50ms), isola::queue_full);
      isola::process p(isola::process_options{.method = m}, take_one_and_report, q, out);
      p.start();
      q.put(3);  // blocks until the child has taken one
      BOOST_TEST(out.get(10s) == 1);
      BOOST_TEST(q.qsize() == 2u);
      BOOST_TEST(q.get() == 2);
      BOOST_TEST(q.get() == 3);
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_timed_put_throws_queue_full_after_about_the_timeout, *utf::timeout(30)) {
  isola::queue<int> q(1);
  q.put(0);
  auto t0 = clk::now();
  BOOST_CHECK_THROW(q.put(1, 200ms), isola::queue_full);
  double took = seconds_since(t0);
  BOOST_TEST(took >= 0.2);
  BOOST_TEST(took < 2.0);
  BOOST_CHECK_THROW(q.put(1, -1s), isola::value_error);
  BOOST_TEST(q.qsize() == 1u);
}

BOOST_AUTO_TEST_CASE(put_nowait_and_try_put_do_not_wait, *utf::timeout(30)) {
  isola::queue<int> q(2);
  BOOST_TEST(q.try_put(1));
  q.put_nowait(2);
  auto t0 = clk::now();
  BOOST_TEST(!q.try_put(3));
  BOOST_CHECK_THROW(q.put_nowait(3), isola::queue_full);
  BOOST_CHECK_THROW(q.put(3, 0s), isola::queue_full);
  BOOST_TEST(seconds_since(t0) < 1.0);
  BOOST_TEST(q.get() == 1);
  BOOST_TEST(q.try_put(3));
  BOOST_TEST(q.get() == 2);
  BOOST_TEST(q.get() == 3);
}

BOOST_AUTO_TEST_CASE(get_on_an_empty_queue_times_out_or_fails_at_once, *utf::timeout(30)) {
  isola::queue<int> q;
  auto t0 = clk::now();
  BOOST_CHECK_THROW(q.get(200ms), isola::queue_empty);
  double took = seconds_since(t0);
  BOOST_TEST(took >= 0.2);
  BOOST_TEST(took < 2.0);
  t0 = clk::now();
  BOOST_CHECK_THROW(q.get_nowait(), isola::queue_empty);
  BOOST_TEST(!q.try_get().has_value());
  BOOST_CHECK_THROW(q.get(0s), isola::queue_empty);
  BOOST_TEST(seconds_since(t0) < 1.0);
  BOOST_CHECK_THROW(q.get(-0.5s), isola::value_error);
  q.put(5);
  BOOST_TEST(q.try_get().value() == 5);
}

BOOST_AUTO_TEST_CASE(close_ends_the_handle_in_this_process_only, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::queue<int> q, out;
      isola::queue<int> copy = q;
      isola::process p(isola::process_options{.method = m}, get_one_after_closed_in_parent, q, out);
      p.start();
      q.put(41);
      q.close();
      BOOST_TEST(q.closed());
      BOOST_TEST(copy.closed());
      q.close();  // again: nothing
      try {
        q.put(1);
        BOOST_FAIL("put on a closed queue");
      } catch (const isola::value_error& e) {
        BOOST_TEST(std::string(e.what()) == "queue is closed");
      }
      BOOST_CHECK_THROW(copy.get(), isola::value_error);
      BOOST_CHECK_THROW(q.try_get(), isola::value_error);
      BOOST_CHECK_THROW(q.qsize(), isola::value_error);
      BOOST_CHECK_THROW(q.wait_handle(), isola::value_error);
      // The child, which has its own handle, still gets what was put.
      BOOST_TEST(out.get(10s) == 42);
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      // A closed handle cannot go to a child.
      if (m != start_method::fork) {
        isola::process p2(isola::process_options{.method = m}, take_one_and_report, q, out);
        BOOST_CHECK_THROW(p2.start(), isola::error);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(messages_from_one_byte_to_far_larger_than_the_ring_arrive_whole,
                     *utf::timeout(240)) {
  const std::size_t ring = 64 * 1024;
  const std::vector<std::size_t> sizes = {1,    7,        ring / 4 - 16, ring / 4, ring - 1,
                                          ring, ring + 1, 3 * ring + 5,  5 << 20,  256 << 20};
  isola::queue<std::vector<char>> q(0, {.ring_bytes = ring});
  isola::queue<std::vector<std::uint64_t>> out;
  isola::process p(report_sizes_and_checksums, q, out, static_cast<int>(sizes.size()));
  p.start();
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    BOOST_TEST_CONTEXT("size " << sizes[i]) {
      auto v = pattern(sizes[i], static_cast<unsigned>(i));
      q.put(v);  // streams through the 64 KiB ring while the child receives it
      auto r = out.get(120s);
      BOOST_TEST(r.size() == 2u);
      BOOST_TEST(r[0] == sizes[i]);
      BOOST_TEST(r[1] == checksum(v.data(), v.size()));
    }
  }
  p.join();
  BOOST_TEST(p.exitcode() == 0);
}

BOOST_AUTO_TEST_CASE(large_messages_travel_under_every_start_method_and_encoding,
                     *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      // A cereal-encoded type, chunked.
      isola::queue<record> q(0, {.ring_bytes = 16 * 1024});
      isola::queue<std::vector<std::uint64_t>> out;
      isola::process p(isola::process_options{.method = m}, report_records, q, out, 2);
      p.start();
      for (int i = 0; i < 2; ++i) {
        record r{i, std::string(100000 + i, 'n'), std::vector<double>(50000 + i)};
        for (std::size_t k = 0; k < r.values.size(); ++k) r.values[k] = k * 0.5 + i;
        q.put(r);
        auto got = out.get(60s);
        BOOST_TEST(got.size() == 5u);
        BOOST_TEST(got[0] == static_cast<std::uint64_t>(i));
        BOOST_TEST(got[1] == r.name.size());
        BOOST_TEST(got[2] == r.values.size());
        BOOST_TEST(got[3] == checksum(r.values.data(), r.values.size() * sizeof(double)));
        BOOST_TEST(got[4] == checksum(r.name.data(), r.name.size()));
      }
      p.join();
      BOOST_TEST(p.exitcode() == 0);

      // isola::message, chunked and not.
      isola::queue<> mq(0, {.ring_bytes = 16 * 1024});
      isola::queue<std::string> mout;
      isola::process p2(isola::process_options{.method = m}, report_messages, mq, mout, 4);
      p2.start();
      std::string big(300000, 'b');
      mq.put(7);
      mq.put(big);
      mq.put(record{1, "rec", {}});
      mq.put(2.5);
      BOOST_TEST(mout.get(60s) == "int 7");
      BOOST_TEST(mout.get(60s) ==
                 "string 300000 " + std::to_string(checksum(big.data(), big.size())));
      BOOST_TEST(mout.get(60s) == "record rec");
      BOOST_TEST(mout.get(60s) == "other float64");
      p2.join();
      BOOST_TEST(p2.exitcode() == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(get_into_reuses_the_callers_capacity_for_every_message_size,
                     *utf::timeout(120)) {
  const std::size_t ring = 64 * 1024;
  // Whole records and chunked messages (up to 16 rings), largest first so
  // that one buffer serves them all, then an empty one.
  const std::vector<std::size_t> sizes = {16 * ring + 3, 3 * ring, ring / 4 - 16, 100, 1, 0};
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::queue<std::vector<char>> q(0, {.ring_bytes = ring});
      isola::process p(isola::process_options{.method = m}, put_patterns, q, sizes);
      p.start();
      std::vector<char> into;
      into.reserve(sizes[0]);
      const char* buffer = into.data();
      const std::size_t capacity = into.capacity();
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        BOOST_TEST_CONTEXT("size " << sizes[i]) {
          q.get_into(into, 60s);
          BOOST_TEST((into == pattern(sizes[i], static_cast<unsigned>(i))));
          BOOST_TEST(static_cast<const void*>(into.data()) == static_cast<const void*>(buffer));
          BOOST_TEST(into.capacity() == capacity);
        }
      }
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
  // Too small a buffer grows once, then serves the next messages as they are.
  isola::queue<std::string> sq;  // 1 MiB ring: both fit without a consumer
  std::string s(10, 'x');
  sq.put(std::string(300000, 'a'));  // chunked
  sq.put(std::string(100000, 'b'));
  sq.get_into(s);
  BOOST_TEST(s == std::string(300000, 'a'));
  const char* grown = s.data();
  sq.get_into(s);
  BOOST_TEST(s == std::string(100000, 'b'));
  BOOST_TEST(static_cast<const void*>(s.data()) == static_cast<const void*>(grown));
}

BOOST_AUTO_TEST_CASE(get_into_has_untimed_timed_and_non_blocking_forms_for_every_encoding,
                     *utf::timeout(60)) {
  // Non-blocking and timed forms on an empty queue leave the target untouched.
  isola::queue<std::vector<std::uint32_t>> q;
  std::vector<std::uint32_t> v{1, 2, 3};
  BOOST_TEST(!q.try_get_into(v));
  auto t0 = clk::now();
  BOOST_CHECK_THROW(q.get_into(v, 50ms), isola::queue_empty);
  BOOST_TEST(seconds_since(t0) >= 0.05);
  BOOST_TEST((v == std::vector<std::uint32_t>{1, 2, 3}));
  BOOST_CHECK_THROW(q.get_into(v, -1s), isola::value_error);
  q.put({7, 8});
  BOOST_TEST(q.try_get_into(v));
  BOOST_TEST((v == std::vector<std::uint32_t>{7, 8}));
  q.put({});
  q.get_into(v);
  BOOST_TEST(v.empty());
  BOOST_TEST(v.capacity() >= 3u);

  // Raw values, cereal types (decoded in place) and messages.
  isola::queue<int> qi;
  int i = 0;
  qi.put(42);
  qi.get_into(i, 1s);
  BOOST_TEST(i == 42);
  isola::queue<record> qr;  // 1 MiB ring: records above 256 KiB are chunked
  record r{1, "old", std::vector<double>(100000, 1.0)};
  const double* values = r.values.data();
  record big{2, std::string(50000, 'n'), std::vector<double>(60000, 2.5)};  // chunked
  qr.put(big);
  qr.get_into(r);
  BOOST_TEST((r == big));
  BOOST_TEST(r.values.data() == values);  // the nested vector kept its buffer
  qr.put(record{3, "small", {0.5}});
  BOOST_TEST(qr.try_get_into(r));
  BOOST_TEST((r == record{3, "small", {0.5}}));
  isola::queue<> qm;
  isola::message msg(std::string("before"));
  qm.put(record{4, "rec", {}});
  qm.get_into(msg);
  BOOST_TEST(msg.get<record>().name == "rec");

  // simple_queue and joinable_queue have it too.
  isola::simple_queue<std::string> sq;
  std::string s;
  sq.put("simple");
  sq.get_into(s);
  BOOST_TEST(s == "simple");
  isola::joinable_queue<std::string> jq;
  jq.put("task");
  jq.get_into(s);
  BOOST_TEST(s == "task");
  BOOST_TEST(jq.unfinished_tasks() == 1u);
  jq.task_done();
  BOOST_TEST(jq.join(0s));
  q.close();
  BOOST_CHECK_THROW(q.get_into(v), isola::value_error);
}

BOOST_AUTO_TEST_CASE(a_queue_of_message_carries_values_of_mixed_types, *utf::timeout(30)) {
  isola::queue<> q;
  q.put(42);
  q.put(std::string("forty-two"));
  q.put(std::vector<double>{4.0, 2.0});
  q.put(record{42, "r", {1.5}});
  q.put(isola::message{});
  BOOST_TEST(q.qsize() == 5u);
  BOOST_TEST(q.get().get<int>() == 42);
  BOOST_TEST(q.get().get<std::string>() == "forty-two");
  BOOST_TEST((q.get().get<std::vector<double>>() == std::vector<double>{4.0, 2.0}));
  auto m = q.get();
  BOOST_CHECK_THROW(m.get<int>(), isola::type_error);
  BOOST_TEST((m.get<record>() == record{42, "r", {1.5}}));
  BOOST_TEST(q.get().empty());
}

BOOST_AUTO_TEST_CASE(an_oversize_message_is_refused_and_nothing_is_put, *utf::timeout(30)) {
  isola::queue<std::string> q(0, {.max_message_size = 1000});
  try {
    q.put(std::string(2000, 'x'));
    BOOST_FAIL("an oversize put succeeded");
  } catch (const isola::value_error& e) {
    BOOST_TEST(std::string(e.what()).find("max_message_size") != std::string::npos);
  }
  BOOST_TEST(q.empty());
  q.put("fits");
  BOOST_TEST(q.get() == "fits");
}

BOOST_AUTO_TEST_CASE(a_put_that_times_out_mid_message_leaves_no_trace, *utf::timeout(60)) {
  // A message four times the ring, with nobody reading: its first chunks go
  // in, then the put times out and aborts it; the queue stays consistent.
  isola::queue<std::vector<char>> q(0, {.ring_bytes = 64 * 1024});
  auto big = pattern(256 * 1024, 1);
  BOOST_CHECK_THROW(q.put(big, 100ms), isola::queue_full);
  BOOST_CHECK_THROW(q.put_nowait(big), isola::queue_full);  // can never fit at once
  BOOST_TEST(q.qsize() == 0u);
  auto small = pattern(100, 2);
  isola::queue<std::vector<std::uint64_t>> out;
  isola::process p(report_sizes_and_checksums, q, out, 2);
  p.start();
  q.put(small);
  q.put(big);
  auto r1 = out.get(30s);
  auto r2 = out.get(30s);
  BOOST_TEST(r1[0] == small.size());
  BOOST_TEST(r1[1] == checksum(small.data(), small.size()));
  BOOST_TEST(r2[0] == big.size());
  BOOST_TEST(r2[1] == checksum(big.data(), big.size()));
  p.join();
}

BOOST_AUTO_TEST_CASE(many_producers_and_consumers_deliver_every_message_exactly_once,
                     *utf::timeout(240)) {
  constexpr std::uint64_t per_producer = 20000;
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::queue<std::uint64_t> q(100, {.ring_bytes = 4096});  // bounded: producers block
      isola::queue<std::vector<std::uint64_t>> out;
      std::vector<isola::process> procs;
      for (std::uint64_t id = 0; id < 3; ++id)
        procs.emplace_back(isola::process_options{.method = m}, mp_producer, q, id, per_producer);
      for (int c = 0; c < 3; ++c)
        procs.emplace_back(isola::process_options{.method = m}, mp_consumer, q, out);
      for (auto& p : procs) p.start();
      for (int i = 0; i < 3; ++i) procs[i].join();
      for (int c = 0; c < 3; ++c) q.put(stop_marker);
      std::map<std::uint64_t, int> seen;
      bool ordered = true;
      for (int c = 0; c < 3; ++c) {
        auto got = out.get(120s);
        std::map<std::uint64_t, std::int64_t> last;  // producer -> last seq this consumer saw
        for (auto v : got) {
          ++seen[v];
          auto id = v >> 32;
          auto s = static_cast<std::int64_t>(v & 0xffffffffu);
          if (last.count(id) && s <= last[id]) ordered = false;
          last[id] = s;
        }
      }
      for (auto& p : procs) {
        p.join();
        BOOST_TEST(p.exitcode() == 0);
      }
      BOOST_TEST(ordered);
      BOOST_TEST(seen.size() == 3 * per_producer);
      BOOST_TEST(std::all_of(seen.begin(), seen.end(), [](auto& e) { return e.second == 1; }));
      BOOST_TEST(q.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(threads_of_one_process_share_a_queue_safely, *utf::timeout(120)) {
  // The same locks and commit words order threads as they order processes
  // (and give ThreadSanitizer something to check).
  isola::queue<std::uint64_t> q(64, {.ring_bytes = 4096});
  constexpr std::uint64_t per_thread = 20000;
  std::vector<std::vector<std::uint64_t>> got(2);
  std::vector<std::thread> threads;
  for (std::uint64_t id = 0; id < 2; ++id)
    threads.emplace_back([&q, id] {
      for (std::uint64_t s = 0; s < per_thread; ++s) q.put(id << 32 | s);
    });
  for (int c = 0; c < 2; ++c)
    threads.emplace_back([&q, &got, c] {
      for (;;) {
        auto v = q.get(30s);
        if (v == stop_marker) break;
        got[c].push_back(v);
      }
    });
  for (int i = 0; i < 2; ++i) threads[i].join();
  q.put(stop_marker);
  q.put(stop_marker);
  for (int i = 2; i < 4; ++i) threads[i].join();
  std::set<std::uint64_t> all;
  bool ordered = true;
  for (auto& g : got) {
    std::map<std::uint64_t, std::uint64_t> next;
    for (auto v : g) {
      all.insert(v);
      auto id = v >> 32, s = v & 0xffffffffu;
      if (s < next[id]) ordered = false;
      next[id] = s + 1;
    }
  }
  BOOST_TEST(ordered);
  BOOST_TEST(all.size() == 2 * per_thread);
  BOOST_TEST(got[0].size() + got[1].size() == 2 * per_thread);
}

BOOST_AUTO_TEST_CASE(simple_queue_puts_gets_and_closes, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::simple_queue<std::string> in, out;
      BOOST_TEST(in.empty());
      isola::process p(isola::process_options{.method = m}, simple_echo, in, out);
      p.start();
      in.put("hello");
      in.put("bye");
      BOOST_TEST(out.get() == "echo hello");
      BOOST_TEST(out.get() == "echo bye");
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(in.empty());
      in.close();
      BOOST_CHECK_THROW(in.put("x"), isola::value_error);
      BOOST_CHECK_THROW(in.get(), isola::value_error);
    }
  }
}

BOOST_AUTO_TEST_CASE(joinable_queue_counts_tasks_until_each_is_done, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::joinable_queue<int> q;
      BOOST_TEST(q.join(0s));  // nothing put: nothing to wait for
      for (int i = 0; i < 5; ++i) q.put(i);
      BOOST_TEST(q.unfinished_tasks() == 5u);
      auto t0 = clk::now();
      BOOST_TEST(!q.join(100ms));
      BOOST_TEST(seconds_since(t0) >= 0.1);
      isola::process p(isola::process_options{.method = m}, do_tasks, q, 5);
      p.start();
      q.join();
      BOOST_TEST(q.unfinished_tasks() == 0u);
      BOOST_TEST(q.empty());
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      try {
        q.task_done();
        BOOST_FAIL("task_done with no unfinished task");
      } catch (const isola::value_error& e) {
        BOOST_TEST(std::string(e.what()) == "task_done() called too many times");
      }
      // Taken but not done still counts; done without taking is allowed
      // (as in Python) up to the number put.
      q.put(1);
      q.put(2);
      BOOST_TEST(q.get() == 1);
      BOOST_TEST(!q.join(10ms));
      q.task_done();
      q.task_done();
      BOOST_TEST(q.join(0s));
      BOOST_CHECK_THROW(q.task_done(), isola::value_error);
      BOOST_TEST(q.get() == 2);  // still in the queue
    }
  }
}

BOOST_AUTO_TEST_CASE(wait_reports_a_queue_ready_only_when_it_holds_a_message, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::queue<int> q, go;
      auto t0 = clk::now();
      BOOST_TEST(isola::wait({q}, 100ms).empty());
      BOOST_TEST(seconds_since(t0) >= 0.1);

      isola::process p(isola::process_options{.method = m}, put_after_a_while, q, go, 7);
      p.start();
      go.put(1);
      auto ready = isola::wait({q}, 30s);  // woken by the child's put
      BOOST_TEST(ready == std::vector<std::size_t>{0});
      BOOST_TEST(q.get_nowait() == 7);
      p.join();
      // The eventfd may still be signalled; the queue is empty, so not ready.
      BOOST_TEST(isola::wait({q}, 50ms).empty());
      // Ready at once when it already holds something, next to one that does not.
      q.put(8);
      isola::queue<int> idle;
      BOOST_TEST(isola::wait({idle, q}, 0s) == std::vector<std::size_t>{1});
      BOOST_TEST(q.get() == 8);

      isola::simple_queue<int> sq;
      sq.put(1);
      BOOST_TEST(isola::wait({sq}, 0s) == std::vector<std::size_t>{0});
    }
  }
}

BOOST_AUTO_TEST_CASE(queue_memory_has_no_name_in_dev_shm, *utf::timeout(60)) {
  auto before = dev_shm_entries();
  std::vector<isola::queue<int>> qs;
  for (int i = 0; i < 5; ++i) qs.emplace_back();
  isola::joinable_queue<int> jq;
  isola::simple_queue<int> sq;
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::process p(isola::process_options{.method = m}, maps_only_memfd, qs[0]);
      p.start();
      BOOST_TEST(qs[0].get(30s) == 1);
      p.join();
      BOOST_TEST(p.exitcode() == 0);
    }
  }
  auto maps = read_text("/proc/self/maps");
  BOOST_TEST(maps.find("/memfd:isola-queue") != std::string::npos);
  // Whatever else appeared in /dev/shm meanwhile (other programs) is not ours.
  for (auto& name : dev_shm_entries()) {
    if (before.count(name)) continue;
    BOOST_TEST_CONTEXT("new /dev/shm entry " << name) {
      BOOST_TEST(maps.find("/dev/shm/" + name) == std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_queue_handle_cannot_be_sent_as_a_message, *utf::timeout(30)) {
  isola::queue<int> q;
  BOOST_CHECK_THROW(isola::encode(q), isola::value_error);
}

// CPython 3.13's test_queue shutdown cases (test_shutdown_empty,
// test_shutdown_nonempty, test_shutdown_immediate): after shutdown() put
// raises ShutDown; get drains what is left, then raises; immediate drops
// what is left (task_done for each) and get raises at once.
BOOST_AUTO_TEST_CASE(shutdown_refuses_puts_and_lets_gets_drain_then_refuses_them,
                     *utf::timeout(30)) {
  isola::queue<int> q;
  q.put(1);
  q.put(2);
  BOOST_TEST(!q.is_shut_down());
  q.shutdown();
  BOOST_TEST(q.is_shut_down());
  BOOST_CHECK_THROW(q.put(3), isola::queue_shut_down);
  BOOST_CHECK_THROW(q.put_nowait(3), isola::queue_shut_down);
  BOOST_CHECK_THROW(q.put(3, 1s), isola::queue_shut_down);
  BOOST_TEST(q.get() == 1);
  BOOST_TEST(q.get_nowait() == 2);
  auto t0 = clk::now();
  BOOST_CHECK_THROW(q.get(), isola::queue_shut_down);  // empty: at once, not a hang
  BOOST_CHECK_THROW(q.get(5s), isola::queue_shut_down);
  BOOST_CHECK_THROW(q.get_nowait(), isola::queue_shut_down);
  BOOST_TEST((clk::now() - t0 < 2s));
  q.shutdown();  // again: no change
  BOOST_CHECK_THROW(q.get(), isola::queue_shut_down);
}

BOOST_AUTO_TEST_CASE(shutdown_immediate_drops_what_is_left_and_join_returns, *utf::timeout(30)) {
  isola::joinable_queue<int> q;
  for (int i = 0; i < 5; ++i) q.put(i);
  BOOST_TEST(q.unfinished_tasks() == 5u);
  q.shutdown(true);
  BOOST_CHECK_THROW(q.get(), isola::queue_shut_down);
  BOOST_CHECK_THROW(q.put(9), isola::queue_shut_down);
  BOOST_TEST(q.qsize() == 0u);
  BOOST_TEST(q.unfinished_tasks() == 0u);
  BOOST_TEST(q.join(5s));
  // A plain queue too, and a shutdown after a shutdown(false).
  isola::queue<int> r;
  r.put(1);
  r.shutdown(false);
  r.shutdown(true);
  BOOST_CHECK_THROW(r.get(), isola::queue_shut_down);
}

// Blocked getters and putters in other processes are woken, under every
// start method; wait() then reports the queue ready.
BOOST_AUTO_TEST_CASE(shutdown_wakes_getters_and_putters_blocked_in_other_processes,
                     *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT(m) {
      isola::queue<int> empty_q, full_q(1), ready;
      full_q.put(1);
      std::vector<isola::process> ps;
      for (int k = 0; k < 2; ++k)
        ps.emplace_back(isola::process_options{.method = m}, get_until_shut_down, empty_q, ready);
      for (int k = 0; k < 2; ++k)
        ps.emplace_back(isola::process_options{.method = m}, put_until_shut_down, full_q, ready);
      for (auto& p : ps) p.start();
      for (std::size_t k = 0; k < ps.size(); ++k) BOOST_REQUIRE_NO_THROW(ready.get(30s));
      // They said they are about to block; a blocked one does not end.
      for (auto& p : ps) BOOST_TEST(!p.join(100ms));
      empty_q.shutdown();
      full_q.shutdown();
      for (auto& p : ps) {
        BOOST_TEST(p.join(30s));
        BOOST_TEST(p.exitcode().value_or(-1) == 0);
      }
      BOOST_TEST(isola::wait({empty_q}, 1s).size() == 1u);
      BOOST_TEST(full_q.get() == 1);  // what was in it still comes out
      BOOST_CHECK_THROW(full_q.get(), isola::queue_shut_down);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
