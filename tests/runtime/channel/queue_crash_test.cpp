// Killing processes in the middle of put and get, hundreds of times: the queue
// stays usable, nothing torn or duplicated is ever delivered, at most one
// message is lost per killed consumer, and joinable_queue's task count stays
// exactly "messages committed minus task_done calls committed".
//
// Children are forked (the start method does not change what a SIGKILL does
// to shared memory) so they can report through an anonymous shared mapping
// and a raw pipe: the report channels are never the queue under test. Every
// get in the parent has a deadline, so a deadlock fails a check instead of
// hanging the suite. Kill moments are random: after the child has done a
// random number of operations, plus a random busy-wait of microseconds
// during which both sides keep working.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <isola/joinable_queue.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using clk = std::chrono::steady_clock;
using words = std::vector<std::uint64_t>;

namespace {

// --- messages: [producer, seq, payload words, checksum, payload...] -------------

std::uint64_t mix(std::uint64_t h, std::uint64_t w) {
  h = (h ^ w) * 0x100000001b3ull;
  return h ^ (h >> 31);
}

std::uint64_t checksum_of(const words& v) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (i != 3) h = mix(h, v[i]);
  return h;
}

// Mostly small messages, some a few records long, some chunked: between
// large_min and large_max words.
words make_message(std::uint64_t producer, std::uint64_t seq, std::mt19937_64& rng,
                   std::size_t large_min, std::size_t large_max, unsigned large_percent = 10) {
  std::size_t n;
  auto r = rng() % 100;
  if (r < 100 - 20 - large_percent)
    n = rng() % 24;
  else if (r < 100 - large_percent)
    n = 100 + rng() % 4000;
  else
    n = large_min + rng() % (large_max - large_min);
  words v(4 + n);
  v[0] = producer;
  v[1] = seq;
  v[2] = n;
  for (std::size_t i = 0; i < n; ++i) v[4 + i] = seq * 0x9e3779b97f4a7c15ull + i;
  v[3] = checksum_of(v);
  return v;
}

bool intact(const words& v) {
  return v.size() >= 4 && v[2] == v.size() - 4 && v[3] == checksum_of(v);
}

// --- what children report -------------------------------------------------------

struct shared_state {
  std::atomic<std::uint64_t> ops;       // puts or gets completed by the child
  std::atomic<std::uint32_t> in_op;     // 1 while the child is inside put or get
  std::atomic<std::uint64_t> op_words;  // size of the message being put
};

shared_state* make_shared_state() {
  void* p = ::mmap(nullptr, sizeof(shared_state), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  BOOST_REQUIRE(p != MAP_FAILED);
  return new (p) shared_state{};
}

// A report in the pipe: 24 bytes, written with one write() (atomic for a pipe).
struct report {
  std::uint64_t kind;  // 1 got, 2 task done, 3 empty (a get timed out)
  std::uint64_t seq;
  std::uint64_t ok;
};

struct report_pipe {
  int r = -1, w = -1;
  report_pipe() {
    int fds[2];
    BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    r = fds[0];
    w = fds[1];
  }
  ~report_pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  void close_write() {
    ::close(w);
    w = -1;
  }
  // Everything written until every writer is gone.
  std::vector<report> read_all() {
    std::vector<report> out;
    report rep;
    std::size_t got = 0;
    for (;;) {
      ssize_t n = ::read(r, reinterpret_cast<char*>(&rep) + got, sizeof rep - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
      if (got == sizeof rep) {
        out.push_back(rep);
        got = 0;
      }
    }
    return out;
  }
  // One report, waiting at most timeout.
  std::optional<report> read_one(std::chrono::milliseconds timeout) {
    report rep;
    std::size_t got = 0;
    auto deadline = clk::now() + timeout;
    while (got < sizeof rep) {
      if (!isola_test::wait_until(
              [&] {
                pollfd p{r, POLLIN, 0};
                return ::poll(&p, 1, 0) > 0;
              },
              std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clk::now())))
        return std::nullopt;
      ssize_t n = ::read(r, reinterpret_cast<char*>(&rep) + got, sizeof rep - got);
      if (n <= 0) return std::nullopt;
      got += static_cast<std::size_t>(n);
    }
    return rep;
  }
};

void send_report(int fd, std::uint64_t kind, std::uint64_t seq, bool ok) {
  report rep{kind, seq, ok ? 1u : 0u};
  [[maybe_unused]] auto n = ::write(fd, &rep, sizeof rep);
}

void busy_wait_while(clk::time_point until, const std::function<void()>& work) {
  while (clk::now() < until) work();
}

void kill_and_reap(isola::process& p) {
  p.kill();
  BOOST_REQUIRE(p.join(30s));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(queue_crash_suite)

// A producer is killed anywhere in its loop, often inside put (sometimes in
// the middle of a message larger than the ring). Whatever it committed
// arrives, intact and in order; nothing of a message it did not finish does.
BOOST_AUTO_TEST_CASE(a_producer_killed_inside_put_leaves_only_whole_messages, *utf::timeout(120)) {
  const std::size_t ring = 256 * 1024;
  isola::joinable_queue<words> q(0, {.ring_bytes = ring});
  auto* st = make_shared_state();
  std::mt19937_64 rng(12345);
  int kills_in_put = 0, kills_in_chunked_put = 0;
  const int iterations = 250;
  for (int it = 0; it < iterations; ++it) {
    st->ops = 0;
    st->in_op = 0;
    std::uint64_t seed = rng();
    isola::process p([&q, st, it, seed, ring] {
      std::mt19937_64 r(seed);
      for (std::uint64_t seq = 0;; ++seq) {
        // Chunked ones from a quarter of the ring to 1.5 rings.
        auto m = make_message(static_cast<std::uint64_t>(it), seq, r, ring / 32, ring * 3 / 16);
        st->op_words = m.size();
        st->in_op = 1;
        q.put(m);
        st->in_op = 0;
        ++st->ops;
      }
    });
    p.start();

    std::uint64_t next = 0;  // the seq expected next from this producer
    bool all_intact = true, in_order = true;
    auto take = [&](const words& m) {
      if (!intact(m)) all_intact = false;
      if (m[0] != static_cast<std::uint64_t>(it) || m[1] != next) in_order = false;
      next = m[1] + 1;
      q.task_done();
    };
    auto consume_some = [&] {
      if (auto m = q.try_get()) take(*m);
    };
    std::uint64_t target = rng() % 20;
    BOOST_REQUIRE(isola_test::wait_until(
        [&] {
          consume_some();
          return st->ops >= target;
        },
        30s));
    busy_wait_while(clk::now() + std::chrono::microseconds(rng() % 400), consume_some);
    bool was_in_put = st->in_op != 0;
    bool was_chunked = st->op_words * 8 > ring / 4;
    kill_and_reap(p);
    kills_in_put += was_in_put;
    kills_in_chunked_put += was_in_put && was_chunked;

    std::uint64_t completed = st->ops;
    while (auto m = q.try_get()) take(*m);
    BOOST_TEST_CONTEXT("iteration " << it) {
      BOOST_TEST(all_intact);
      BOOST_TEST(in_order);
      // Every put that returned arrived; at most the one in progress besides.
      BOOST_TEST(next >= completed);
      BOOST_TEST(next <= completed + 1);
      BOOST_TEST(q.qsize() == 0u);
      BOOST_TEST(q.unfinished_tasks() == 0u);  // counted exactly the committed ones
      // Still works, both ways.
      words probe{999, 0, 0, 0};
      probe[3] = checksum_of(probe);
      q.put(probe);
      BOOST_TEST(q.get(10s) == probe);
      q.task_done();
    }
    if (it % 50 == 49) BOOST_TEST_MESSAGE("producer kills: " << it + 1);
  }
  BOOST_TEST_MESSAGE(iterations << " producer kills, " << kills_in_put << " inside put, "
                                << kills_in_chunked_put << " inside a chunked put");
  BOOST_TEST(kills_in_put > 0);
  BOOST_TEST(q.join(0s));
  BOOST_CHECK_THROW(q.task_done(), isola::value_error);
}

// A consumer is killed anywhere in its loop, often inside get (sometimes in
// the middle of receiving a chunked message). What it reported and what is
// left in the queue together are every message put, each once, except at
// most the one it had taken when it died.
namespace {

// The consumer-kill rounds, the consumer taking messages with get(), or (into)
// with get_into() a vector it reuses: every delivered message must also have
// landed in the vector's first buffer (ring / 16 words, more than any message
// here), i.e. without a reallocation.
void consumer_kill_rounds(bool into) {
  const std::size_t ring = 256 * 1024;
  isola::queue<words> q(0, {.ring_bytes = ring});
  auto* st = make_shared_state();
  std::mt19937_64 rng(777);
  std::uint64_t seq = 0;
  int kills_in_get = 0, lost_total = 0;  // kills inside a get with messages waiting
  const int iterations = 250;
  for (int it = 0; it < iterations; ++it) {
    st->ops = 0;
    st->in_op = 0;
    report_pipe rp;
    const std::uint64_t first = seq;
    // One in five chunked (two records), none above a third of the ring.
    auto make = [&] { return make_message(0, seq++, rng, ring / 32 + 16, ring / 24, 20); };
    std::optional<words> pending;
    auto produce_some = [&] {
      if (!pending) pending = make();
      if (q.try_put(*pending)) pending.reset();
    };
    while (!pending) produce_some();  // a full queue: the consumer has work
    int wfd = rp.w;
    isola::process c([&q, st, wfd, into, ring] {
      words m;
      m.reserve(ring / 16);
      const auto* buffer = m.data();
      for (;;) {
        st->in_op = 1;
        if (into)
          q.get_into(m);
        else
          m = q.get();
        st->in_op = 0;
        bool reused = !into || m.data() == buffer;
        send_report(wfd, 1, m.size() >= 2 ? m[1] : ~0ull, intact(m) && reused);
        ++st->ops;
      }
    });
    c.start();
    rp.close_write();
    std::uint64_t target = rng() % 30;
    BOOST_REQUIRE(isola_test::wait_until(
        [&] {
          produce_some();
          return st->ops >= target;
        },
        30s));
    busy_wait_while(clk::now() + std::chrono::microseconds(rng() % 400), produce_some);
    bool busy = st->in_op != 0 && q.qsize() > 0;
    kills_in_get += busy;
    kill_and_reap(c);
    const std::uint64_t end = seq;

    auto reports = rp.read_all();
    std::vector<std::uint64_t> delivered;
    bool reports_intact = true;
    for (auto& r : reports) {
      delivered.push_back(r.seq);
      if (!r.ok) reports_intact = false;
    }
    std::vector<std::uint64_t> drained;
    bool drained_intact = true;
    auto drain = [&] {
      while (auto m = q.try_get()) {
        if (!intact(*m)) drained_intact = false;
        drained.push_back((*m)[1]);
      }
    };
    drain();
    if (pending) {  // the message the parent had not managed to put yet
      q.put(*pending);
      drain();
    }
    BOOST_TEST_CONTEXT("iteration " << it) {
      BOOST_TEST(reports_intact);
      BOOST_TEST(drained_intact);
      // One consumer, FIFO: delivered = first.., then at most one lost, then
      // drained = the rest, each in order.
      bool ordered = true;
      for (std::size_t i = 0; i < delivered.size(); ++i)
        if (delivered[i] != first + i) ordered = false;
      std::uint64_t after = first + delivered.size();
      std::uint64_t lost = drained.empty() ? end - after : drained.front() - after;
      for (std::size_t i = 0; i < drained.size(); ++i)
        if (drained[i] != after + lost + i) ordered = false;
      BOOST_TEST(ordered);
      BOOST_TEST(lost <= 1u);
      BOOST_TEST(after + lost + drained.size() == end);
      lost_total += static_cast<int>(lost);
      BOOST_TEST(q.qsize() == 0u);
      words probe{0, seq, 0, 0};
      probe[3] = checksum_of(probe);
      q.put(probe);
      ++seq;
      BOOST_TEST(q.get(10s) == probe);
    }
  }
  BOOST_TEST_MESSAGE(iterations << " consumer kills, " << kills_in_get << " inside "
                                << (into ? "get_into, " : "get, ") << lost_total
                                << " messages lost with their consumer");
  BOOST_TEST(kills_in_get > 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_consumer_killed_inside_get_loses_at_most_that_message, *utf::timeout(120)) {
  consumer_kill_rounds(false);
}

// The same with get_into(): reusing the caller's vector changes nothing about
// what a kill can lose, tear or duplicate.
BOOST_AUTO_TEST_CASE(a_consumer_killed_inside_get_into_loses_at_most_that_message,
                     *utf::timeout(120)) {
  consumer_kill_rounds(true);
}

// joinable_queue accounting when consumers die. Invariant (I4 in
// shm_ring.cpp): unfinished_tasks() == messages committed by put - task_done
// calls committed. The consumer reports "got" after get and "done" after
// task_done, so for each kill the unfinished count left by the consumer must
// lie between the messages it lost (taken, never reported) and that plus the
// one it had reported getting but not finishing.
BOOST_AUTO_TEST_CASE(joinable_accounting_stays_exact_when_consumers_die, *utf::timeout(120)) {
  const std::size_t ring = 256 * 1024;
  isola::joinable_queue<words> q(0, {.ring_bytes = ring});
  auto* st = make_shared_state();
  std::mt19937_64 rng(4242);
  std::uint64_t seq = 0;
  int in_between = 0;
  const int iterations = 200;
  for (int it = 0; it < iterations; ++it) {
    st->ops = 0;
    st->in_op = 0;
    report_pipe rp;
    const std::uint64_t first = seq;
    auto make = [&] { return make_message(0, seq++, rng, ring / 32 + 16, ring / 24, 20); };
    std::optional<words> pending;
    auto produce_some = [&] {
      if (!pending) pending = make();
      if (q.try_put(*pending)) pending.reset();
    };
    while (!pending) produce_some();
    int wfd = rp.w;
    isola::process c([&q, st, wfd] {
      for (;;) {
        st->in_op = 1;
        auto m = q.get();
        send_report(wfd, 1, m[1], intact(m));
        q.task_done();
        send_report(wfd, 2, m[1], true);
        st->in_op = 0;
        ++st->ops;
      }
    });
    c.start();
    rp.close_write();
    std::uint64_t target = rng() % 30;
    BOOST_REQUIRE(isola_test::wait_until(
        [&] {
          produce_some();
          return st->ops >= target;
        },
        30s));
    busy_wait_while(clk::now() + std::chrono::microseconds(rng() % 400), produce_some);
    kill_and_reap(c);
    const std::uint64_t end = seq - (pending ? 1 : 0);  // messages committed this iteration

    std::size_t got = 0, done = 0;
    bool reports_intact = true;
    for (auto& r : rp.read_all()) {
      if (r.kind == 1) ++got;
      if (r.kind == 2) ++done;
      if (!r.ok) reports_intact = false;
    }
    std::size_t drained = 0;
    while (auto m = q.try_get()) {
      ++drained;
      q.task_done();
    }
    if (pending) {
      q.put(*pending);
      q.get(10s);
      q.task_done();
    }
    BOOST_TEST_CONTEXT("iteration " << it) {
      BOOST_TEST(reports_intact);
      BOOST_TEST(got >= done);
      BOOST_TEST(got - done <= 1u);
      const std::uint64_t lost = end - first - got - drained;  // taken, never reported
      BOOST_TEST(lost <= 1u);
      const std::size_t unfinished = q.unfinished_tasks();
      BOOST_TEST(unfinished >= lost);
      BOOST_TEST(unfinished <= lost + (got - done));
      in_between += unfinished > lost;
      // What the dead consumer left unfinished, a supervisor finishes.
      for (std::size_t i = 0; i < unfinished; ++i) q.task_done();
      BOOST_TEST(q.unfinished_tasks() == 0u);
      BOOST_TEST(q.join(0s));
      BOOST_CHECK_THROW(q.task_done(), isola::value_error);
    }
  }
  BOOST_TEST_MESSAGE(iterations << " consumer kills; " << in_between
                                << " between get and task_done");
}

// Messages four times the ring, killing either end at random: a consumer
// waiting in the middle of a message whose producer died drops it by itself
// (nobody else comes to repair), and a producer whose consumer died is
// unblocked by the next consumer, which skips the rest of that message.
namespace {

// Producers and consumers of messages four rings long, killed at random; the
// consumer takes them with get(t), or (into) get_into(m, t) a vector it
// reuses, which sees the aborted messages of killed producers half-received.
void large_message_kill_rounds(bool into) {
  const std::size_t ring = 64 * 1024;
  isola::queue<words> q(0, {.ring_bytes = ring});
  auto* st = make_shared_state();
  report_pipe rp;  // the parent keeps the write end: consumers come and go
  std::mt19937_64 rng(99);
  int wfd = rp.w;
  auto start_consumer = [&] {
    auto c = std::make_unique<isola::process>([&q, wfd, into] {
      words m;
      for (;;) {
        try {
          if (into)
            q.get_into(m, 100ms);
          else
            m = q.get(100ms);
          send_report(wfd, 1, m[0] << 32 | m[1], intact(m));
        } catch (const isola::queue_empty&) {
          send_report(wfd, 3, 0, true);
        }
      }
    });
    c->start();
    return c;
  };
  std::uint64_t producer_id = 0;
  auto start_producer = [&] {
    auto p = std::make_unique<isola::process>([&q, st, id = ++producer_id] {
      for (std::uint64_t seq = 0;; ++seq) {
        words v(4 + ring / 2);  // 4 rings
        v[0] = id;
        v[1] = seq;
        v[2] = v.size() - 4;
        for (std::size_t i = 4; i < v.size(); ++i) v[i] = seq * 31 + i;
        v[3] = checksum_of(v);
        st->in_op = 1;
        q.put(v);
        st->in_op = 0;
      }
    });
    p->start();
    return p;
  };
  std::map<std::uint64_t, std::uint64_t> last_seq;  // producer -> last seq delivered
  bool intact_all = true, ordered = true;
  // Next report of `kind`, checking the messages on the way.
  auto expect = [&](std::uint64_t kind) {
    auto deadline = clk::now() + 20s;
    while (clk::now() < deadline) {
      auto r =
          rp.read_one(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clk::now()));
      if (!r) break;
      if (r->kind == 1) {
        if (!r->ok) intact_all = false;
        auto id = r->seq >> 32, s = r->seq & 0xffffffffu;
        if (last_seq.count(id) && s <= last_seq[id]) ordered = false;
        last_seq[id] = s;
      }
      if (r->kind == kind) return true;
    }
    return false;
  };
  auto producer = start_producer();
  auto consumer = start_consumer();
  int producer_kills = 0, consumer_kills = 0;
  for (int it = 0; it < 40; ++it) {
    BOOST_TEST_CONTEXT("iteration " << it) {
      BOOST_REQUIRE(expect(1));  // traffic flows
      busy_wait_while(clk::now() + std::chrono::microseconds(rng() % 1500), [] {});
      if (rng() % 2) {
        kill_and_reap(*producer);
        ++producer_kills;
        BOOST_TEST(expect(3));  // the consumer noticed, dropped it, and timed out
        producer = start_producer();
      } else {
        kill_and_reap(*consumer);
        ++consumer_kills;
        consumer = start_consumer();
        BOOST_TEST(expect(1));  // the producer got unblocked
      }
    }
  }
  kill_and_reap(*producer);
  kill_and_reap(*consumer);
  BOOST_TEST(intact_all);
  BOOST_TEST(ordered);
  BOOST_TEST_MESSAGE(producer_kills << " producers and " << consumer_kills
                                    << " consumers killed mid-stream"
                                    << (into ? " (get_into)" : ""));
}

}  // namespace

BOOST_AUTO_TEST_CASE(killing_either_end_of_a_message_larger_than_the_ring_wedges_nothing,
                     *utf::timeout(120)) {
  large_message_kill_rounds(false);
}

BOOST_AUTO_TEST_CASE(get_into_survives_either_end_of_a_large_message_being_killed,
                     *utf::timeout(120)) {
  large_message_kill_rounds(true);
}

BOOST_AUTO_TEST_SUITE_END()
