// The manager's semaphore and bounded_semaphore between real processes,
// ported from CPython's _TestSemaphore (run through a manager): counting,
// a bounded one refusing one release too many, timed and non-blocking
// acquires; children under every start method; a SIGSTOPped holder does not
// keep other clients past their deadlines; a client killed while waiting
// leaves no waiter behind.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <isola/manager.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>

#include <chrono>
#include <cstdint>
#include <utility>
#include <thread>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

void take_and_report(isola::managed::semaphore s, isola::queue<int> out) {
  s.acquire();
  out.put(1);
  for (;;) ::pause();
}

void release_n(isola::managed::semaphore s, int n) {
  for (int i = 0; i < n; ++i) s.release();
}

void wait_forever(isola::managed::semaphore s) { s.acquire(); }

void hold_rlock_twice(isola::managed::rlock l, isola::queue<int> out) {
  l.acquire();
  l.acquire();
  out.put(1);
  for (;;) ::pause();
}

void set_attributes(isola::managed::namespace_proxy n) {
  n.set("name", std::string("Bob"));
  n.set("job", std::string("Builder"));
  n.set("age", 42);
  n.del("gone");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_manager_semaphore)

// CPython: _TestSemaphore.test_semaphore / _test_semaphore.
BOOST_AUTO_TEST_CASE(a_semaphore_counts_down_to_zero_and_up_again, *utf::timeout(30)) {
  isola::manager m;
  auto s = m.semaphore(2);
  BOOST_TEST(s.get_value() == 2u);
  BOOST_TEST(s.try_acquire());
  BOOST_TEST(s.get_value() == 1u);
  BOOST_TEST(s.try_acquire());
  BOOST_TEST(s.get_value() == 0u);
  BOOST_TEST(!s.try_acquire());
  s.release();
  BOOST_TEST(s.get_value() == 1u);
  s.release();
  s.release();  // an unbounded one may go past its initial value
  BOOST_TEST(s.get_value() == 3u);
  BOOST_CHECK_THROW(m.semaphore(-1), isola::value_error);
}

// CPython: _TestSemaphore.test_bounded_semaphore.
BOOST_AUTO_TEST_CASE(a_bounded_semaphore_refuses_a_release_past_its_initial_value,
                     *utf::timeout(30)) {
  isola::manager m;
  auto s = m.bounded_semaphore(2);
  BOOST_CHECK_THROW(s.release(), isola::value_error);
  BOOST_TEST(s.get_value() == 2u);
  s.acquire();
  s.release();
  BOOST_CHECK_THROW(s.release(), isola::value_error);
  BOOST_TEST(s.get_value() == 2u);
}

// CPython: _TestSemaphore.test_timeout.
BOOST_AUTO_TEST_CASE(an_empty_semaphore_times_out_after_the_timeout_and_not_before,
                     *utf::timeout(30)) {
  isola::manager m;
  auto s = m.semaphore(0);
  auto t0 = clk::now();
  BOOST_TEST(!s.acquire(0ms));
  BOOST_TEST(seconds_since(t0) < 1.0);
  t0 = clk::now();
  BOOST_TEST(!s.acquire(200ms));
  double waited = seconds_since(t0);
  BOOST_TEST(waited >= 0.19);
  BOOST_TEST(waited < 5.0);
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 0; }));
}

BOOST_AUTO_TEST_CASE(a_waiter_is_woken_by_a_release_from_a_child_under_every_start_method,
                     *utf::timeout(120)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;
      auto s = m.semaphore(0);
      isola::process c(isola::process_options{.method = method}, release_n, s, 3);
      c.start();
      for (int i = 0; i < 3; ++i) BOOST_TEST(s.acquire(60s));
      c.join();
      BOOST_TEST(!s.try_acquire());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_stopped_holder_does_not_keep_others_past_their_deadlines,
                     *utf::timeout(60)) {
  isola::manager m;
  auto s = m.bounded_semaphore(1);
  isola::queue<int> out;
  isola::process c(take_and_report, s, out);
  c.start();
  BOOST_TEST(out.get(60s) == 1);
  BOOST_REQUIRE(::kill(c.pid(), SIGSTOP) == 0);
  auto t0 = clk::now();
  BOOST_TEST(!s.acquire(200ms));
  BOOST_TEST(seconds_since(t0) < 5.0);
  // No owner (as in Python): another process may release what it took.
  s.release();
  BOOST_TEST(s.try_acquire());
  ::kill(c.pid(), SIGCONT);
  c.kill();
  c.join();
}

BOOST_AUTO_TEST_CASE(a_client_killed_while_waiting_leaves_no_waiter_and_takes_no_count,
                     *utf::timeout(60)) {
  isola::manager m;
  auto s = m.semaphore(0);
  isola::process c(wait_forever, s);
  c.start();
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }));
  c.kill();
  c.join();
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 0; }));
  s.release();
  // The dead waiter must not have been handed the count.
  BOOST_TEST(s.get_value() == 1u);
  BOOST_TEST(s.try_acquire());
}

BOOST_AUTO_TEST_CASE(forged_op_numbers_on_a_semaphore_are_refused_and_the_manager_goes_on,
                     *utf::timeout(30)) {
  isola::manager m;
  auto s = m.semaphore(1);
  auto l = m.lock();
  auto b = isola::encode(s);
  auto [addr, id] = isola::decode<std::pair<isola::detail::manager_address, std::uint64_t>>(b);
  using isola::detail::mgr_op;
  using isola::detail::mgr_status;
  // Unused numbers in the semaphore's block and past every block.
  for (int op : {115, 127, 200, 255}) {
    BOOST_TEST_CONTEXT("op " << op) {
      mgr_status st{};
      isola::detail::manager_call(addr, static_cast<mgr_op>(op), id, -1, {}, {}, st);
      BOOST_TEST((st == mgr_status::value_error || st == mgr_status::type_error));
    }
  }
  // A semaphore op on a lock, and a lock op on the semaphore.
  mgr_status st{};
  isola::detail::manager_call(addr, mgr_op::semaphore_release, l.id(), -1, {}, {}, st);
  BOOST_TEST((st == mgr_status::type_error || st == mgr_status::value_error));
  isola::detail::manager_call(addr, mgr_op::lock_acquire, id, -1, {}, {}, st);
  BOOST_TEST((st == mgr_status::type_error || st == mgr_status::value_error));
  BOOST_TEST(s.get_value() == 1u);  // untouched, and the manager still answers
  BOOST_TEST(s.try_acquire());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_manager_namespace)

// CPython: _TestNamespace.test_namespace, with the attributes set by a child.
BOOST_AUTO_TEST_CASE(attributes_set_by_a_child_are_read_typed_and_deleted, *utf::timeout(120)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;
      auto n = m.namespace_();
      n.set("gone", 1);
      isola::process c(isola::process_options{.method = method}, set_attributes, n);
      c.start();
      c.join();
      BOOST_TEST(n.get<std::string>("name") == "Bob");
      BOOST_TEST(n.get<int>("age") == 42);
      BOOST_TEST(!n.has("gone"));
      n.del("job");
      BOOST_TEST(!n.has("job"));
      BOOST_CHECK_THROW((void)n.get<std::string>("job"), isola::key_error);
      BOOST_CHECK_THROW(n.del("job"), isola::key_error);
      // Read as another type: refused, not misread.
      BOOST_CHECK_THROW((void)n.get<double>("age"), isola::type_error);
      BOOST_CHECK_THROW((void)n.get<std::string>("age"), isola::type_error);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_manager_rlock)

// CPython: _TestLock.test_rlock, through a manager.
BOOST_AUTO_TEST_CASE(an_rlock_is_reentrant_for_its_holder_and_refuses_others, *utf::timeout(30)) {
  isola::manager m;
  auto l = m.rlock();
  l.acquire();
  l.acquire();
  BOOST_TEST(l.try_acquire());
  bool other = true, refused = false;
  std::thread([&, l]() mutable {  // another thread: its own connection
    other = l.acquire(100ms);
    try {
      l.release();
    } catch (const isola::value_error&) {
      refused = true;
    }
  }).join();
  BOOST_TEST(!other);
  BOOST_TEST(refused);
  l.release();
  l.release();
  l.release();
  BOOST_CHECK_THROW(l.release(), isola::value_error);
  std::thread([&, l]() mutable {
    other = l.try_acquire();
    if (other) l.release();
  }).join();
  BOOST_TEST(other);
}

BOOST_AUTO_TEST_CASE(a_client_killed_holding_an_rlock_twice_hands_it_on_and_the_next_is_told,
                     *utf::timeout(120)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;
      auto l = m.rlock();
      isola::queue<int> out;
      isola::process c(isola::process_options{.method = method}, hold_rlock_twice, l, out);
      c.start();
      BOOST_TEST(out.get(60s) == 1);
      BOOST_REQUIRE(::kill(c.pid(), SIGSTOP) == 0);
      auto t0 = clk::now();
      BOOST_TEST(!l.acquire(200ms));  // a stopped holder: a clean timeout
      BOOST_TEST(seconds_since(t0) < 5.0);
      c.kill();
      c.join();
      bool told = false;
      try {
        l.acquire();
      } catch (const isola::lock_owner_died&) {
        told = true;
      }
      BOOST_TEST(told);
      BOOST_TEST(m.stats().owner_deaths == 1u);
      l.release();
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
