// isola::semaphore and bounded_semaphore between real processes: at most n
// inside at once, timeouts, a release in one process waking a waiter in
// another, over-release of a bounded one.
// Objects go to children as process arguments under every start method.
// Nothing sleeps to "let things settle": the parent waits on events, counts
// and exit codes, each with a deadline.
#include <boost/test/unit_test.hpp>

#include <isola/event.hpp>
#include <isola/process.hpp>
#include <isola/semaphore.hpp>
#include <isola/value.hpp>

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

// Semaphore: counts who is inside at once, records the most.
void inside_semaphore(isola::semaphore s, isola::value<int> inside, isola::value<int> most,
                      isola::value<int> done) {
  for (int round = 0; round < 20; ++round) {
    std::scoped_lock g(s);
    int now = inside.fetch_add(1) + 1;
    int m = most.load();
    while (now > m && !most.compare_exchange(m, now)) {}
    std::this_thread::sleep_for(200us);
    inside.fetch_sub(1);
  }
  done.fetch_add(1);
}

void take_one_permit(isola::semaphore s, isola::event took) {
  s.acquire();
  took.set();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(semaphore_suite)

BOOST_AUTO_TEST_CASE(a_semaphore_of_two_lets_at_most_two_processes_in_at_once, *utf::timeout(240)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::semaphore s(2);
      isola::value<int> inside(0), most(0), done(0);
      std::vector<isola::process> ps;
      for (int i = 0; i < 5; ++i) ps.emplace_back(with(m), inside_semaphore, s, inside, most, done);
      for (auto& p : ps) p.start();
      join_all(ps);
      for (auto& p : ps) BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(done.load() == 5);
      BOOST_TEST(most.load() <= 2);
      BOOST_TEST(most.load() >= 1);
      BOOST_TEST(s.get_value() == 2u);
    }
  }
}

BOOST_AUTO_TEST_CASE(semaphore_acquire_times_out_and_try_acquire_never_waits, *utf::timeout(30)) {
  isola::semaphore s(1);
  BOOST_TEST(s.try_acquire());
  BOOST_TEST(s.get_value() == 0u);
  BOOST_TEST(!s.try_acquire());
  auto t0 = clk::now();
  BOOST_TEST(!s.acquire(100ms));
  BOOST_TEST(seconds_since(t0) >= 0.09);
  BOOST_TEST(!s.try_lock_for(10ms));
  BOOST_CHECK_THROW(s.acquire(-1s), isola::value_error);
  s.release(3);  // an unbounded semaphore may grow
  BOOST_TEST(s.get_value() == 3u);
  BOOST_TEST(s.acquire(1s));
  BOOST_TEST(s.get_value() == 2u);
  BOOST_CHECK_THROW(isola::semaphore(isola::semaphore::max_value + 1u), isola::value_error);
}

BOOST_AUTO_TEST_CASE(a_release_in_another_process_wakes_a_waiter, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::semaphore s(0);
      isola::event took;
      isola::process p(with(m), take_one_permit, s, took);
      p.start();
      BOOST_TEST(!took.wait(50ms));  // no permit yet: still waiting
      s.release();                   // any process may release
      BOOST_TEST(took.wait(30s));
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(s.get_value() == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(over_releasing_a_bounded_semaphore_is_a_value_error_and_changes_nothing,
                     *utf::timeout(30)) {
  isola::bounded_semaphore b(2);
  BOOST_TEST(b.bound() == 2u);
  BOOST_CHECK_THROW(b.release(), isola::value_error);
  BOOST_TEST(b.get_value() == 2u);
  b.acquire();
  b.acquire();
  BOOST_CHECK_THROW(b.release(3), isola::value_error);
  BOOST_TEST(b.get_value() == 0u);
  b.release(2);
  BOOST_TEST(b.get_value() == 2u);
  {
    std::scoped_lock g(b);
    BOOST_TEST(b.get_value() == 1u);
  }
  BOOST_TEST(b.get_value() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
