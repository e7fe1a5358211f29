// isola::condition between real processes: notify, notify(n), notify_all,
// predicates, timed waits, a waiter killed while it waits, every bad input.
// Objects go to children as process arguments under every start method.
// Nothing sleeps to "let things settle": the parent waits on events, counts
// and exit codes, each with a deadline.
#include <boost/test/unit_test.hpp>

#include <isola/condition.hpp>
#include <isola/lock.hpp>
#include <isola/process.hpp>
#include <isola/value.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola_sync_test::clk;
using isola_sync_test::join_all;
using isola_sync_test::seconds_since;
using isola_sync_test::with;
using isola_test::wait_until;

namespace {

// Condition: waits for a notify (with the lock held around it), then counts.
int wait_for_notify(isola::condition cv, isola::value<int> woken) {
  std::unique_lock g(cv);
  if (!cv.wait(60s)) return 5;
  if (!cv.try_lock()) return 6;  // an rlock: held, so recursive try succeeds
  cv.unlock();
  woken.fetch_add(1);
  return 0;
}

void wait_for_flag(isola::condition cv, isola::value<int> flag, isola::value<int> seen) {
  std::unique_lock g(cv);
  cv.wait_for([&] { return flag.load() != 0; });
  seen.store(flag.load());
}

void set_flag_and_notify(isola::condition cv, isola::value<int> flag) {
  std::scoped_lock g(cv);
  flag.store(42);
  cv.notify_all();
}

void wait_on_condition_forever(isola::condition cv) {
  std::unique_lock g(cv);
  cv.wait();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(condition_suite)

BOOST_AUTO_TEST_CASE(notify_wakes_one_waiter_and_notify_all_wakes_the_rest, *utf::timeout(240)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::condition cv;
      isola::value<int> woken(0);
      std::vector<isola::process> ps;
      for (int i = 0; i < 3; ++i) ps.emplace_back(with(m), wait_for_notify, cv, woken);
      for (auto& p : ps) p.start();
      BOOST_TEST_REQUIRE(wait_until([&] { return cv.n_waiting() == 3; }, 30s));
      {
        std::scoped_lock g(cv);
        cv.notify();
      }
      BOOST_TEST(wait_until([&] { return woken.load() == 1; }, 30s));
      // The other two are still in the table: nobody else was woken.
      BOOST_TEST(wait_until([&] { return cv.n_waiting() == 2; }, 30s));
      BOOST_TEST(woken.load() == 1);
      {
        std::scoped_lock g(cv);
        cv.notify_all();
      }
      BOOST_TEST(wait_until([&] { return woken.load() == 3; }, 30s));
      join_all(ps);
      for (auto& p : ps) BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(cv.n_waiting() == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(notify_with_n_wakes_n_waiters, *utf::timeout(120)) {
  isola::condition cv;
  isola::value<int> woken(0);
  std::vector<isola::process> ps;
  for (int i = 0; i < 4; ++i) ps.emplace_back(wait_for_notify, cv, woken);
  for (auto& p : ps) p.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return cv.n_waiting() == 4; }, 30s));
  {
    std::scoped_lock g(cv);
    cv.notify(3);
  }
  BOOST_TEST(wait_until([&] { return woken.load() == 3 && cv.n_waiting() == 1; }, 30s));
  {
    std::scoped_lock g(cv);
    cv.notify(5);  // more than wait: wakes the one left
  }
  BOOST_TEST(wait_until([&] { return woken.load() == 4; }, 30s));
  join_all(ps);
}

BOOST_AUTO_TEST_CASE(wait_for_a_predicate_across_processes, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::lock l;
      isola::condition cv(l);  // on a plain lock
      isola::value<int> flag(0), seen(0);
      isola::process waiter(with(m), wait_for_flag, cv, flag, seen);
      waiter.start();
      BOOST_TEST_REQUIRE(wait_until([&] { return cv.n_waiting() == 1; }, 30s));
      isola::process setter(with(m), set_flag_and_notify, cv, flag);
      setter.start();
      BOOST_TEST(waiter.join(30s));
      BOOST_TEST(setter.join(30s));
      BOOST_TEST(waiter.exitcode() == 0);
      BOOST_TEST(seen.load() == 42);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_timed_wait_returns_false_with_the_lock_held_again, *utf::timeout(30)) {
  isola::rlock r;
  isola::condition cv(r);
  std::scoped_lock g(r, r);  // held twice
  auto t0 = clk::now();
  BOOST_TEST(!cv.wait(100ms));
  BOOST_TEST(seconds_since(t0) >= 0.09);
  BOOST_TEST(r.depth() == 2u);  // back to the same depth
  BOOST_TEST(!cv.wait_for([] { return false; }, 50ms));
  BOOST_TEST(cv.wait_for([] { return true; }, 0s));
  BOOST_TEST(cv.n_waiting() == 0u);
}

BOOST_AUTO_TEST_CASE(a_waiter_releases_an_rlock_held_twice_while_it_waits, *utf::timeout(60)) {
  isola::condition cv;
  std::atomic<int> stage{0};
  std::thread t([&] {
    std::unique_lock g1(cv);
    std::unique_lock g2(cv);  // the condition's own rlock, twice
    stage = 1;
    bool notified = cv.wait(30s);
    stage = notified ? 2 : 3;
  });
  BOOST_TEST_REQUIRE(wait_until([&] { return cv.n_waiting() == 1; }));
  {
    std::scoped_lock g(cv);  // possible only if the waiter released both levels
    cv.notify();
  }
  t.join();
  BOOST_TEST(stage == 2);
}

BOOST_AUTO_TEST_CASE(waiting_or_notifying_without_the_lock_is_a_value_error, *utf::timeout(30)) {
  isola::condition cv;
  BOOST_CHECK_THROW(cv.wait(), isola::value_error);
  BOOST_CHECK_THROW(cv.wait(10ms), isola::value_error);
  BOOST_CHECK_THROW(cv.wait_for([] { return false; }), isola::value_error);
  BOOST_CHECK_THROW(cv.notify(), isola::value_error);
  BOOST_CHECK_THROW(cv.notify_all(), isola::value_error);
  isola::lock l;
  isola::condition on_lock(l);
  BOOST_CHECK_THROW(on_lock.wait(1ms), isola::value_error);
  std::scoped_lock g(l);
  BOOST_TEST(!on_lock.wait(1ms));  // fine with the lock held
}

BOOST_AUTO_TEST_CASE(a_notify_is_never_spent_on_a_waiter_that_was_killed, *utf::timeout(60)) {
  isola::condition cv;
  isola::value<int> woken(0);
  isola::process doomed(wait_on_condition_forever, cv);
  doomed.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return cv.n_waiting() == 1; }, 30s));
  doomed.kill();
  BOOST_TEST(doomed.join(30s));
  isola::process p(wait_for_notify, cv, woken);
  p.start();
  BOOST_TEST_REQUIRE(
      wait_until([&] { return cv.n_waiting() == 2; }, 30s));  // the dead one still counts
  {
    std::scoped_lock g(cv);
    cv.notify();  // the dead waiter is older, but skipped
  }
  BOOST_TEST(wait_until([&] { return woken.load() == 1; }, 30s));
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode() == 0);
  BOOST_TEST(cv.n_waiting() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
