// isola::wait, as Python's multiprocessing.connection.wait: the indices of the
// ready objects among connections, queues, processes and raw descriptors.
// The first cases port CPython's Lib/test/_test_multiprocessing.py, class
// TestWait (test_wait, test_wait_socket, test_wait_slow, test_wait_timeout,
// test_wait_integer, test_neg_timeout), with shorter delays; the rest pin
// down what isola adds: buffered messages, queues (whose notification
// descriptor can be stale) and closed handles.
//
// Delays are created by children that sleep; a child sends the monotonic time
// at which its delay started (CLOCK_MONOTONIC is one clock for every
// process), so "not before" is checked against the child's own clock reading.
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <isola/connection.hpp>
#include <isola/error.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>
#include <isola/wait.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using clk = std::chrono::steady_clock;
using indices = std::vector<std::size_t>;

namespace {

isola::process_options forked() { return {.method = isola::start_method::fork}; }

double ms_since(clk::time_point t0) {
  return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

std::int64_t stamp() { return clk::now().time_since_epoch().count(); }
clk::time_point from_stamp(std::int64_t s) { return clk::time_point(clk::duration(s)); }

// CPython's _child_test_wait: ten (i, pid) messages, optionally each after a
// random pause of up to 0.1 s, then the end closes (EOF for the reader).
void child_test_wait(isola::connection w, bool slow) {
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  for (std::int64_t i = 0; i < 10; ++i) {
    if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
    w.send(std::vector<std::int64_t>{i, ::getpid()});
  }
  w.close();
}

// CPython's _child_test_wait_socket: the same as raw bytes over a socket.
void child_test_wait_socket(isola::connection w) {
  for (int i = 0; i < 10; ++i) w.send_bytes(std::to_string(i) + ":" + std::to_string(::getpid()));
  w.close();
}

bool fd_readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Reads every message from readers until each has reached EOF, waiting with
// isola::wait on all those still open. recv(c) reads one message.
template <class Recv>
void drain_all(std::vector<isola::connection>& readers, Recv recv) {
  std::vector<isola::connection*> open;
  for (auto& r : readers) open.push_back(&r);
  while (!open.empty()) {
    std::vector<isola::waitable> ws;
    for (auto* c : open) ws.emplace_back(*c);
    auto ready = isola::wait(ws, 30s);
    BOOST_REQUIRE_MESSAGE(!ready.empty(), "nothing became ready in 30 s");
    BOOST_REQUIRE(std::is_sorted(ready.begin(), ready.end()));
    std::vector<isola::connection*> ended;
    for (auto i : ready) {
      BOOST_REQUIRE(i < open.size());
      try {
        recv(*open[i]);
      } catch (const isola::eof_error&) {
        ended.push_back(open[i]);
      }
    }
    for (auto* c : ended) {
      c->close();
      open.erase(std::find(open.begin(), open.end(), c));
    }
  }
}

void test_wait(bool slow) {
  std::vector<isola::connection> readers;
  std::vector<std::unique_ptr<isola::process>> procs;
  for (int i = 0; i < 4; ++i) {
    auto [r, w] = isola::pipe(false);
    procs.push_back(
        std::make_unique<isola::process>(forked(), child_test_wait, std::move(w), slow));
    procs.back()->daemon(true);
    procs.back()->start();  // drops the parent's copy of w
    readers.push_back(std::move(r));
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> messages, expected;
  drain_all(readers, [&](isola::connection& c) {
    auto m = c.recv<std::vector<std::int64_t>>();
    BOOST_REQUIRE(m.size() == 2u);
    messages.emplace_back(m[0], m[1]);
  });
  for (auto& p : procs) {
    BOOST_REQUIRE(p->join(30s));
    BOOST_TEST(p->exitcode() == std::optional<int>(0));
    for (std::int64_t i = 0; i < 10; ++i) expected.emplace_back(i, p->pid());
  }
  std::sort(messages.begin(), messages.end());
  std::sort(expected.begin(), expected.end());
  BOOST_TEST((messages == expected));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(wait_suite)

// test_wait: readers of four children, until each reaches EOF.
BOOST_AUTO_TEST_CASE(wait_collects_every_message_from_several_children_until_eof,
                     *utf::timeout(60)) {
  test_wait(false);
}

// test_wait_slow: the same with children that pause between messages.
BOOST_AUTO_TEST_CASE(wait_collects_every_message_from_slow_children, *utf::timeout(60)) {
  test_wait(true);
}

// test_wait_socket: socket ends (duplex connections) and raw bytes.
BOOST_AUTO_TEST_CASE(wait_works_on_socket_connections_with_raw_bytes, *utf::timeout(60)) {
  std::vector<isola::connection> readers;
  std::vector<std::unique_ptr<isola::process>> procs;
  for (int i = 0; i < 4; ++i) {
    auto [r, w] = isola::pipe(true);
    procs.push_back(
        std::make_unique<isola::process>(forked(), child_test_wait_socket, std::move(w)));
    procs.back()->start();
    readers.push_back(std::move(r));
  }
  std::vector<std::string> messages, expected;
  drain_all(readers, [&](isola::connection& c) {
    auto b = c.recv_bytes();
    messages.emplace_back(reinterpret_cast<const char*>(b.data()), b.size());
  });
  for (auto& p : procs) {
    BOOST_REQUIRE(p->join(30s));
    for (int i = 0; i < 10; ++i)
      expected.push_back(std::to_string(i) + ":" + std::to_string(p->pid()));
  }
  std::sort(messages.begin(), messages.end());
  std::sort(expected.begin(), expected.end());
  BOOST_TEST((messages == expected));
}

// test_wait_timeout: nothing ready returns [] after the timeout, not before;
// a message sent makes its reader ready at once.
BOOST_AUTO_TEST_CASE(nothing_ready_returns_empty_after_the_timeout_and_not_before,
                     *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  auto t0 = clk::now();
  auto res = isola::wait({a, b}, 500ms);
  double el = ms_since(t0);
  BOOST_TEST(res.empty());
  BOOST_TEST(el >= 500.0);
  BOOST_TEST(el < 1500.0);

  b.send(0);
  t0 = clk::now();
  res = isola::wait({a, b}, 20s);
  BOOST_TEST((res == indices{0}));
  BOOST_TEST(ms_since(t0) < 400.0);
  BOOST_TEST(a.recv<int>() == 0);

  // A fractional timeout is honoured too.
  t0 = clk::now();
  BOOST_TEST(isola::wait({a, b}, std::chrono::duration<double>(0.0505)).empty());
  el = ms_since(t0);
  BOOST_TEST(el >= 50.5);
  BOOST_TEST(el < 1000.0);
}

// test_wait_integer: a raw descriptor (a process's sentinel) among
// connections; readiness accumulates as each becomes ready.
BOOST_AUTO_TEST_CASE(a_raw_descriptor_and_connections_are_waited_on_together, *utf::timeout(60)) {
  const auto delay = 600ms;
  auto [sig_r, sig_w] = isola::pipe(false);
  isola::process p(
      forked(),
      [delay](isola::connection w) {
        w.send(stamp());  // "signal", then sleep: the exit comes delay later
        std::this_thread::sleep_for(delay);
      },
      std::move(sig_w));
  p.start();
  auto [a, b] = isola::pipe();
  BOOST_REQUIRE(sig_r.poll(20s));
  auto signalled = from_stamp(sig_r.recv<std::int64_t>());

  const int sentinel = p.sentinel();
  auto t0 = clk::now();
  auto res = isola::wait({a, isola::waitable(sentinel), b}, delay + 20s);
  auto returned = clk::now();
  BOOST_TEST((res == indices{1}));
  BOOST_TEST((returned - signalled >= delay));  // not before the child ended
  BOOST_TEST(ms_since(t0) < 600.0 + 2000.0);

  a.send(0);  // b becomes ready; the ended process stays ready
  t0 = clk::now();
  res = isola::wait({a, isola::waitable(sentinel), b}, 20s);
  BOOST_TEST((res == indices{1, 2}));
  BOOST_TEST(ms_since(t0) < 400.0);

  b.send(0);
  res = isola::wait({a, isola::waitable(sentinel), b}, 20s);
  BOOST_TEST((res == indices{0, 1, 2}));
  BOOST_TEST(p.join(10s));
}

// test_neg_timeout: a negative timeout is a poll, not an error or a hang.
BOOST_AUTO_TEST_CASE(a_negative_timeout_polls, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  auto t0 = clk::now();
  auto res = isola::wait({a}, -1s);
  BOOST_TEST(res.empty());
  BOOST_TEST(ms_since(t0) < 1000.0);
  b.send(1);
  BOOST_TEST((isola::wait({a}, -1s) == indices{0}));
}

BOOST_AUTO_TEST_CASE(a_timeout_of_zero_polls_and_reports_what_is_ready, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  isola::queue<int> q;
  isola::process p(forked(), [] { std::this_thread::sleep_for(60s); });
  p.start();
  auto t0 = clk::now();
  BOOST_TEST(isola::wait({a, b, q, p}, 0s).empty());
  BOOST_TEST(ms_since(t0) < 50.0);
  q.put(5);
  a.send(6);
  t0 = clk::now();
  BOOST_TEST((isola::wait({a, b, q, p}, 0s) == indices{1, 2}));
  BOOST_TEST(ms_since(t0) < 50.0);
  // Polling changes nothing: the same answer again, and the messages are there.
  BOOST_TEST((isola::wait({a, b, q, p}, 0s) == indices{1, 2}));
  BOOST_TEST(q.get(1s) == 5);
  BOOST_TEST(b.recv<int>() == 6);
  BOOST_TEST(isola::wait({a, b, q, p}, 0s).empty());
  p.kill();
  BOOST_REQUIRE(p.join(10s));
  BOOST_TEST((isola::wait({a, b, q, p}, 0s) == indices{3}));
}

// The connection already read a second message into its buffer: the
// descriptor shows nothing, yet the connection is ready at once.
BOOST_AUTO_TEST_CASE(a_message_already_buffered_makes_a_connection_ready_at_once,
                     *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  a.send(1);
  a.send(2);
  // Both frames are in the socket before the first recv, which reads ahead.
  BOOST_REQUIRE(isola_test::wait_until([&] { return fd_readable_now(b.fileno()); }, 10s));
  BOOST_TEST(b.recv<int>() == 1);
  BOOST_REQUIRE_MESSAGE(!fd_readable_now(b.fileno()),
                        "the second message should be in b's buffer, not in the socket");
  auto t0 = clk::now();
  BOOST_TEST((isola::wait({b}, 10s) == indices{0}));
  BOOST_TEST(ms_since(t0) < 100.0);
  BOOST_TEST((isola::wait({a, b}, 0s) == indices{1}));
  BOOST_TEST(b.recv<int>() == 2);
  BOOST_TEST(isola::wait({b}, 0s).empty());
}

// As in Python, a reader whose peer has closed is ready: recv() raises EOF.
BOOST_AUTO_TEST_CASE(a_closed_peer_counts_as_ready_and_recv_then_reports_eof, *utf::timeout(30)) {
  {
    auto [a, b] = isola::pipe();  // sockets
    BOOST_TEST(isola::wait({b}, 0s).empty());
    a.close();
    auto t0 = clk::now();
    BOOST_TEST((isola::wait({b}, 10s) == indices{0}));
    BOOST_TEST(ms_since(t0) < 100.0);
    BOOST_CHECK_THROW(b.recv<int>(), isola::eof_error);
  }
  {
    auto [r, w] = isola::pipe(false);  // a real pipe
    BOOST_TEST(isola::wait({r}, 0s).empty());
    w.send(7);
    w.close();  // a message, then EOF: the message first
    BOOST_TEST((isola::wait({r}, 10s) == indices{0}));
    BOOST_TEST(r.recv<int>() == 7);
    BOOST_TEST((isola::wait({r}, 10s) == indices{0}));
    BOOST_CHECK_THROW(r.recv<int>(), isola::eof_error);
  }
  {
    // A peer that dies (its end closed by the kernel) in a child.
    auto [a, b] = isola::pipe();
    isola::process p(
        forked(), [](isola::connection) { std::this_thread::sleep_for(200ms); }, std::move(a));
    p.start();
    auto res = isola::wait({b}, 20s);
    BOOST_TEST((res == indices{0}));
    BOOST_CHECK_THROW(b.recv<int>(), isola::eof_error);
    BOOST_TEST(p.join(10s));
  }
}

// A process's sentinel becomes ready when it ends, not before, and stays so.
BOOST_AUTO_TEST_CASE(a_process_that_exits_makes_its_sentinel_ready, *utf::timeout(30)) {
  const auto delay = 300ms;
  auto [sig_r, sig_w] = isola::pipe(false);
  auto [a, b] = isola::pipe();  // never ready
  isola::process p(
      forked(),
      [delay](isola::connection w) {
        w.send(stamp());
        std::this_thread::sleep_for(delay);
        std::_Exit(3);
      },
      std::move(sig_w));
  p.start();
  auto res = isola::wait({b, p}, 20s);
  auto returned = clk::now();
  BOOST_TEST((res == indices{1}));
  auto started = from_stamp(sig_r.recv<std::int64_t>());
  BOOST_TEST((returned - started >= delay));
  BOOST_TEST((isola::wait({b, p}, 0s) == indices{1}));  // stays ready
  BOOST_REQUIRE(p.join(10s));
  BOOST_TEST(p.exitcode() == std::optional<int>(3));
  BOOST_TEST((isola::wait({p}, 0s) == indices{0}));  // also once joined
}

// Several objects ready together are all reported, in the order given.
BOOST_AUTO_TEST_CASE(several_ready_objects_are_all_reported, *utf::timeout(30)) {
  auto [a1, b1] = isola::pipe();
  auto [a2, b2] = isola::pipe();
  auto [a3, b3] = isola::pipe(false);
  isola::queue<int> q1, q2;
  isola::process p(forked(), [] {});
  p.start();
  BOOST_REQUIRE(p.join(20s));
  a1.send(1);
  b3.close();  // EOF on a3
  q2.put(2);
  std::vector<isola::waitable> ws{b1, b2, a3, q1, q2, p};
  BOOST_TEST((isola::wait(ws, 10s) == indices{0, 2, 4, 5}));
  // A waitable made from a queue that is then closed in this process is
  // ready (get() would not block: it throws).
  isola::waitable w1 = q1;
  q1.close();
  BOOST_TEST((isola::wait(std::span<const isola::waitable>(&w1, 1), 5s) == indices{0}));
}

// An untimed wait blocks until something is ready: a message that a child
// sends after a delay wakes it, and not before.
BOOST_AUTO_TEST_CASE(an_untimed_wait_returns_when_a_child_sends, *utf::timeout(30)) {
  auto [a, b] = isola::pipe();
  auto [c, d] = isola::pipe();  // never ready
  isola::process p(
      forked(),
      [](isola::connection w) {
        std::this_thread::sleep_for(200ms);
        w.send(stamp());
      },
      std::move(a));
  p.start();
  auto res = isola::wait({d, b});
  auto returned = clk::now();
  BOOST_TEST((res == indices{1}));
  BOOST_TEST((returned >= from_stamp(b.recv<std::int64_t>())));
  BOOST_TEST(p.join(10s));
}

// A queue is ready when get() would not block. A put from another process
// wakes a waiter; an item someone else took leaves a stale notification on
// the queue's descriptor, which must not count.
BOOST_AUTO_TEST_CASE(a_queue_is_ready_exactly_when_it_holds_a_message, *utf::timeout(30)) {
  isola::queue<std::int64_t> q;
  auto t0 = clk::now();
  BOOST_TEST(isola::wait({q}, 300ms).empty());
  double el = ms_since(t0);
  BOOST_TEST(el >= 300.0);
  BOOST_TEST(el < 1300.0);

  isola::process p(forked(), [q]() mutable {
    std::this_thread::sleep_for(200ms);
    q.put(stamp());
  });
  p.start();
  auto res = isola::wait({q}, 20s);
  auto returned = clk::now();
  BOOST_TEST((res == indices{0}));
  BOOST_TEST((returned >= from_stamp(q.get(1s))));
  BOOST_TEST(p.join(10s));
  BOOST_TEST(isola::wait({q}, 0s).empty());

  // Armed by a wait that found nothing, the descriptor is written by the next
  // put; that item is taken before the next wait, which must time out.
  BOOST_TEST(isola::wait({q}, 0s).empty());
  q.put(1);
  BOOST_TEST(q.try_get() == std::optional<std::int64_t>(1));
  t0 = clk::now();
  BOOST_TEST(isola::wait({q}, 200ms).empty());
  el = ms_since(t0);
  BOOST_TEST(el >= 200.0);
  BOOST_TEST(el < 1200.0);
  // And it still works after that.
  q.put(2);
  BOOST_TEST((isola::wait({q}, 5s) == indices{0}));
  BOOST_TEST(q.get(1s) == 2);
}

// What a queue's waitable relies on, with a descriptor of our own: with
// confirm, a descriptor that fires while ready_now() says no (a notification
// for an item another consumer took) does not count, and the wait goes on to
// its deadline; without confirm, the same descriptor counts.
BOOST_AUTO_TEST_CASE(a_notification_that_ready_now_does_not_confirm_is_not_ready,
                     *utf::timeout(30)) {
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  BOOST_REQUIRE(efd >= 0);
  std::atomic<int> asked{0};
  auto not_ready = [&] {  // drains, as a confirm check must when it says no
    ++asked;
    std::uint64_t n;
    while (::read(efd, &n, sizeof n) > 0) {}
    return false;
  };
  auto notify = [efd] {
    std::uint64_t one = 1;
    [[maybe_unused]] auto w = ::write(efd, &one, sizeof one);
  };
  {
    // The notification comes while wait() sleeps in poll.
    std::thread t([&] {
      isola_test::wait_until([&] { return asked.load() > 0; }, 10s);
      notify();
    });
    auto t0 = clk::now();
    isola::waitable w(efd, not_ready, /*confirm=*/true);
    auto res = isola::wait(std::span<const isola::waitable>(&w, 1), 400ms);
    double el = ms_since(t0);
    t.join();
    BOOST_TEST(res.empty());
    BOOST_TEST(el >= 400.0);
    BOOST_TEST(el < 1400.0);
    BOOST_TEST(asked.load() >= 2);  // asked again when the descriptor fired
  }
  {
    // Without confirm, the descriptor alone makes it ready.
    notify();
    isola::waitable w(
        efd, [] { return false; }, /*confirm=*/false);
    BOOST_TEST((isola::wait(std::span<const isola::waitable>(&w, 1), 5s) == indices{0}));
  }
  ::close(efd);
}

BOOST_AUTO_TEST_SUITE_END()
