// isola::event between real processes: set before and after the wait,
// timeouts, ping-pong.
// Objects go to children as process arguments under every start method.
// Nothing sleeps to "let things settle": the parent waits on events, counts
// and exit codes, each with a deadline.
#include <boost/test/unit_test.hpp>

#include <isola/event.hpp>
#include <isola/process.hpp>

#include <chrono>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola_sync_test::clk;
using isola_sync_test::join_all;
using isola_sync_test::seconds_since;
using isola_sync_test::with;
using isola_test::wait_until;

namespace {

void set_event(isola::event e) { e.set(); }

int wait_event_then_report(isola::event e, isola::event started, isola::event done) {
  started.set();
  if (!e.wait(30s)) return 4;
  done.set();
  return 0;
}

// Event ping-pong: waits a, clears it, sets b; rounds times.
void pong(isola::event a, isola::event b, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    a.wait();
    a.clear();
    b.set();
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(event_suite)

BOOST_AUTO_TEST_CASE(an_event_set_before_the_wait_returns_at_once, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::event e, started, done;
      BOOST_TEST(!e.is_set());
      isola::process setter(with(m), set_event, e);
      setter.start();
      BOOST_TEST(setter.join(30s));
      BOOST_TEST(e.is_set());  // set by the child
      isola::process p(with(m), wait_event_then_report, e, started, done);
      p.start();
      BOOST_TEST(done.wait(30s));
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(e.wait(0s));
      e.clear();
      BOOST_TEST(!e.is_set());
      BOOST_TEST(!e.try_wait());
    }
  }
}

BOOST_AUTO_TEST_CASE(an_event_set_after_the_wait_wakes_the_waiter, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::event e, started, done;
      isola::process p(with(m), wait_event_then_report, e, started, done);
      p.start();
      BOOST_TEST_REQUIRE(started.wait(30s));
      BOOST_TEST(!done.wait(20ms));  // not set yet
      e.set();
      BOOST_TEST(done.wait(30s));
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_event_wait_with_a_timeout_returns_false_when_not_set, *utf::timeout(30)) {
  isola::event e;
  auto t0 = clk::now();
  BOOST_TEST(!e.wait(100ms));
  BOOST_TEST(seconds_since(t0) >= 0.09);
  BOOST_CHECK_THROW(e.wait(-1s), isola::value_error);
  e.set();
  e.set();  // twice is fine
  BOOST_TEST(e.wait(0s));
}

BOOST_AUTO_TEST_CASE(events_ping_pong_between_two_processes, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::event a, b;
      isola::process p(with(m), pong, a, b, 500);
      p.start();
      bool ok = true;
      for (int i = 0; i < 500 && ok; ++i) {
        a.set();
        ok = b.wait(30s);
        b.clear();
      }
      BOOST_TEST(ok);
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
