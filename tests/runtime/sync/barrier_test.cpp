// isola::barrier between real processes: rounds with distinct indices and
// one action, timeouts, a barrier broken by a dead participant, abort and
// reset, an action that throws, every bad input.
// Objects go to children as process arguments under every start method.
// Nothing sleeps to "let things settle": the parent waits on events, counts
// and exit codes, each with a deadline.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <isola/barrier.hpp>
#include <isola/process.hpp>
#include <isola/value.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
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

// Barrier: the action appends a line to a file named after the test process
// (an action has no arguments: the test's pid is what every child, under
// every start method, can find on its own).
std::string barrier_file_of(int root_pid) {
  return "/tmp/isola-test-barrier-" + std::to_string(root_pid);
}

void barrier_action() {
  auto parent = isola::parent_process();
  std::ofstream f(barrier_file_of(parent ? parent->pid : ::getpid()), std::ios::app);
  f << "action " << ::getpid() << "\n";
}

// Waits rounds times; reports each index into the array slot [round * 3 + k].
int barrier_rounds(isola::barrier b, isola::value<int> index_sum, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    auto i = b.wait(30s);
    if (i >= b.parties()) return 8;
    index_sum.fetch_add(static_cast<int>(i));
  }
  return 0;
}

// 0: passed; 7: broken_barrier_error; 9: something else.
int barrier_wait_expect(isola::barrier b) {
  try {
    b.wait(60s);
    return 0;
  } catch (const isola::broken_barrier_error&) {
    return 7;
  } catch (...) {
    return 9;
  }
}

void kill_when_two_wait(isola::barrier b, int victim) {
  while (b.n_waiting() < 2) std::this_thread::sleep_for(1ms);
  ::kill(victim, SIGKILL);
}

void throwing_action() { throw std::runtime_error("action failed"); }

// CPython's _TestBarrier.multipass: a released waiter reads the next
// round's n_waiting (at most parties - 1: the next round cannot fill before
// it arrives again), never the finished round's; after the last round, 0.
int barrier_multipass(isola::barrier b, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    b.wait(30s);
    if (b.n_waiting() >= b.parties()) return 3;
  }
  if (b.n_waiting() != 0) return 4;
  if (b.broken()) return 5;
  return 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(barrier_suite)

BOOST_AUTO_TEST_CASE(a_barrier_releases_each_round_with_distinct_indices_and_one_action,
                     *utf::timeout(240)) {
  const std::string actions = barrier_file_of(::getpid());
  ::unlink(actions.c_str());
  int expected_actions = 0;
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      const int rounds = 50;
      isola::barrier b(3, barrier_action, 30s);
      isola::value<int> index_sum(0);
      std::vector<isola::process> ps;
      for (int i = 0; i < 2; ++i) ps.emplace_back(with(m), barrier_rounds, b, index_sum, rounds);
      for (auto& p : ps) p.start();
      BOOST_TEST(barrier_rounds(b, index_sum, rounds) == 0);
      join_all(ps);
      for (auto& p : ps) BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(index_sum.load() == rounds * (0 + 1 + 2));
      expected_actions += rounds;
      BOOST_TEST(!b.broken());
      BOOST_TEST(b.n_waiting() == 0u);
      BOOST_TEST(b.parties() == 3u);
    }
  }
  std::ifstream f(actions);
  std::string text{std::istreambuf_iterator<char>(f), {}};
  ::unlink(actions.c_str());
  BOOST_TEST(std::count(text.begin(), text.end(), '\n') == expected_actions);
}

BOOST_AUTO_TEST_CASE(the_first_arrival_gets_index_0_and_a_closure_action_works_under_fork,
                     *utf::timeout(60)) {
  isola::value<int> ran(0);
  isola::barrier b(2, [ran]() mutable { ran.fetch_add(1); });
  isola::value<int> index_sum(0);
  isola::process p(isola::process_options{.method = isola::start_method::fork},
                   [&] { return static_cast<int>(b.wait() + 10); });
  p.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return b.n_waiting() == 1; }, 30s));
  BOOST_TEST(b.wait() == 1u);  // second to arrive
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode() == 10);
  BOOST_TEST(ran.load() == 1);
  isola::barrier one(1);
  BOOST_TEST(one.wait() == 0u);
  BOOST_TEST(one.wait() == 0u);
}

BOOST_AUTO_TEST_CASE(a_wait_that_times_out_breaks_the_barrier_for_every_waiter,
                     *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::barrier b(3);
      isola::process p(with(m), barrier_wait_expect, b);
      p.start();
      BOOST_TEST_REQUIRE(wait_until([&] { return b.n_waiting() == 1; }, 30s));
      auto t0 = clk::now();
      BOOST_CHECK_THROW(b.wait(100ms), isola::broken_barrier_error);
      BOOST_TEST(seconds_since(t0) >= 0.09);
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode() == 7);  // the other waiter was told too
      BOOST_TEST(b.broken());
      BOOST_CHECK_THROW(b.wait(1s), isola::broken_barrier_error);  // until reset
      b.reset();
      BOOST_TEST(!b.broken());
      // Usable again.
      isola::barrier two(2, 50ms);  // the barrier's own timeout
      BOOST_CHECK_THROW(two.wait(), isola::broken_barrier_error);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_waiting_participant_killed_breaks_the_barrier_for_the_others,
                     *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      // Two children wait; one is killed; the other is told at once.
      isola::barrier b(3);
      isola::process victim(with(m), barrier_wait_expect, b);
      victim.start();
      BOOST_TEST_REQUIRE(wait_until([&] { return b.n_waiting() == 1; }, 30s));
      isola::process survivor(with(m), barrier_wait_expect, b);
      survivor.start();
      BOOST_TEST_REQUIRE(wait_until([&] { return b.n_waiting() == 2; }, 30s));
      victim.kill();
      BOOST_TEST(survivor.join(30s));
      BOOST_TEST(survivor.exitcode() == 7);
      BOOST_TEST(victim.join(30s));
      BOOST_TEST(b.broken());
      BOOST_CHECK_THROW(b.wait(1s), isola::broken_barrier_error);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_participant_killed_while_this_process_sleeps_in_wait_breaks_it,
                     *utf::timeout(60)) {
  isola::barrier b(3);
  isola::process victim(barrier_wait_expect, b);
  victim.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return b.n_waiting() == 1; }, 30s));
  isola::process killer(kill_when_two_wait, b, victim.pid());
  killer.start();
  auto t0 = clk::now();
  BOOST_CHECK_THROW(b.wait(30s), isola::broken_barrier_error);  // asleep when it happens
  BOOST_TEST(seconds_since(t0) < 10.0);
  BOOST_TEST(killer.join(30s));
  BOOST_TEST(victim.join(30s));
  BOOST_TEST(victim.exitcode() == -SIGKILL);

  // The last arrival finds a dead waiter before it releases the round.
  isola::barrier two(2);
  isola::process dead(barrier_wait_expect, two);
  dead.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return two.n_waiting() == 1; }, 30s));
  dead.kill();
  dead.join();
  BOOST_CHECK_THROW(two.wait(30s), isola::broken_barrier_error);
}

BOOST_AUTO_TEST_CASE(abort_and_reset_break_the_waiters, *utf::timeout(60)) {
  isola::barrier b(2);
  isola::process p(barrier_wait_expect, b);
  p.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return b.n_waiting() == 1; }, 30s));
  b.reset();  // a waiter: it is told
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode() == 7);
  BOOST_TEST(!b.broken());  // reset leaves it usable
  b.abort();
  BOOST_TEST(b.broken());
  BOOST_TEST(b.n_waiting() == 0u);
  BOOST_CHECK_THROW(b.wait(1s), isola::broken_barrier_error);
  b.reset();
  isola::process q(barrier_wait_expect, b);
  q.start();
  BOOST_TEST(b.wait(30s) <= 1u);
  BOOST_TEST(q.join(30s));
  BOOST_TEST(q.exitcode() == 0);
}

BOOST_AUTO_TEST_CASE(an_action_that_throws_breaks_the_barrier_and_reaches_its_caller,
                     *utf::timeout(60)) {
  isola::barrier b(2, throwing_action);
  isola::process p(barrier_wait_expect, b);
  p.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return b.n_waiting() == 1; }, 30s));
  BOOST_CHECK_THROW(b.wait(30s), std::runtime_error);  // the action's exception
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode() == 7);
  BOOST_TEST(b.broken());
}

BOOST_AUTO_TEST_CASE(n_waiting_is_reset_before_the_waiters_of_a_round_are_released,
                     *utf::timeout(120)) {
  constexpr unsigned parties = 12;  // more waiters than cores: a woken one may run before its waker goes on
  isola::barrier b(parties);
  std::vector<isola::process> ps;
  for (unsigned k = 0; k < parties; ++k)
    ps.emplace_back(with(isola::start_method::fork), barrier_multipass, b, 100);
  for (auto& p : ps) p.start();
  join_all(ps);
  for (auto& p : ps) BOOST_TEST(p.exitcode().value_or(-1) == 0);
  BOOST_TEST(b.n_waiting() == 0u);
}

BOOST_AUTO_TEST_CASE(bad_barrier_arguments_are_value_errors, *utf::timeout(30)) {
  BOOST_CHECK_THROW(isola::barrier(0), isola::value_error);
  BOOST_CHECK_THROW(isola::barrier(isola::barrier::max_parties + 1), isola::value_error);
  BOOST_CHECK_THROW(isola::barrier(2, -1s), isola::value_error);
  isola::barrier b(2);
  BOOST_CHECK_THROW(b.wait(-1s), isola::value_error);
}

BOOST_AUTO_TEST_CASE(a_barrier_with_a_closure_action_refuses_to_go_to_a_spawn_child,
                     *utf::timeout(60)) {
  int local = 0;
  isola::barrier b(2, [&local] { ++local; });
  isola::process p(isola::process_options{.method = isola::start_method::spawn},
                   barrier_wait_expect, b);
  p.start();
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode() == 1);  // the child could not decode its arguments
}

BOOST_AUTO_TEST_SUITE_END()
