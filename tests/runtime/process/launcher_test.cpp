// Children outlive the thread that started them (launcher.hpp): Linux ties
// PR_SET_PDEATHSIG to the creating thread, so a spawn child or a forkserver
// zygote started from a short-lived thread used to be SIGKILLed when that
// thread ended, and the zygote's children with it. Real processes, real
// threads; a child proves it is alive by answering on a pipe.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <memory>
#include <thread>

#include <isola/connection.hpp>
#include <isola/process.hpp>
#include <isola/wait.hpp>

#include "process/forkserver.hpp"
#include "process/registry.hpp"
#include "test_util.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using isola::start_method;

namespace {

// Answers each number with its double until the pipe closes.
void echo_double(isola::connection c) {
  for (;;) {
    int x = 0;
    try {
      x = c.recv<int>();
    } catch (const isola::error&) {
      return;
    }
    c.send(2 * x);
  }
}

struct child {
  std::unique_ptr<isola::process> p;
  isola::connection ours;
};

// Starts echo_double with method m from a thread that ends at once.
child start_from_short_lived_thread(start_method m) {
  auto [mine, theirs] = isola::pipe();
  child c;
  c.ours = std::move(mine);
  std::thread t([&] {
    isola::process_options o;
    o.method = m;
    c.p = std::make_unique<isola::process>(o, &echo_double, std::move(theirs));
    c.p->start();
  });
  t.join();  // the thread that started the child is gone
  return c;
}

bool answers(child& c, int x) {
  c.ours.send(x);
  if (!c.ours.poll(20s)) return false;
  return c.ours.recv<int>() == 2 * x;
}

pid_t zygote_pid() {
  auto& gl = isola::detail::g();
  std::lock_guard lk(gl.zygote_m);
  return gl.zygote ? gl.zygote->pid() : 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(launcher)

BOOST_AUTO_TEST_CASE(a_child_started_from_a_thread_that_ended_lives_on, *utf::timeout(120)) {
  // (fork is not among them: a fork child is a copy of the calling thread,
  // and its PDEATHSIG stays tied to it; see docs/security.md.)
  for (auto m : {start_method::forkserver, start_method::spawn}) {
    BOOST_TEST_CONTEXT(m) {
      auto c = start_from_short_lived_thread(m);
      BOOST_TEST(answers(c, 21));
      BOOST_TEST(c.p->is_alive());
      c.ours.close();
      BOOST_TEST(c.p->join(30s));
      BOOST_TEST(c.p->exitcode().value_or(-1) == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(after_the_zygote_dies_a_new_one_started_from_a_short_lived_thread_lives_on,
                     *utf::timeout(120)) {
  // A zygote to kill: start one child through it.
  auto first = start_from_short_lived_thread(start_method::forkserver);
  BOOST_TEST(answers(first, 1));
  pid_t z = zygote_pid();
  BOOST_REQUIRE(z > 0);
  ::kill(z, SIGKILL);
  // Its child outlives it (as Python's forkserver children do): it still
  // answers; the root joins it through its pidfd once it ends.
  isola_test::wait_until([z] { return isola_test::pid_dead(z); }, 10s);
  BOOST_TEST(answers(first, 1));
  BOOST_TEST(first.p->is_alive());
  // The next start makes a fresh zygote, from a thread that then ends.
  auto second = start_from_short_lived_thread(start_method::forkserver);
  BOOST_TEST(zygote_pid() != z);
  BOOST_TEST(answers(second, 5));
  // ...and it is still there for a start from the main thread.
  auto [mine, theirs] = isola::pipe();
  isola::process_options o;
  o.method = start_method::forkserver;
  isola::process third(o, &echo_double, std::move(theirs));
  third.start();
  child t{nullptr, std::move(mine)};
  BOOST_TEST(answers(t, 7));
  BOOST_TEST(answers(second, 8));
  t.ours.close();
  second.ours.close();
  BOOST_TEST(third.join(30s));
  BOOST_TEST(second.p->join(30s));
  first.ours.close();
  BOOST_TEST(first.p->join(30s));
  // Its status went with the zygote that reaped it: 255, as in Python.
  BOOST_TEST(first.p->exitcode().value_or(-1) == 255);
}

// CPython's test_forkserver_sigint / test_forkserver_sigkill
// (check_forkserver_death): a process started before its forkserver dies
// carries on and is joined; a process started after it uses a new one.
BOOST_AUTO_TEST_CASE(a_process_started_before_its_forkserver_dies_outlives_it,
                     *utf::timeout(120)) {
  for (int sig : {SIGKILL, SIGINT}) {
    BOOST_TEST_CONTEXT("the forkserver gets signal " << sig) {
      isola::process_options o;
      o.method = start_method::forkserver;
      auto [mine, theirs] = isola::pipe();
      isola::process proc(o, &echo_double, std::move(theirs));
      proc.start();
      child c{nullptr, std::move(mine)};
      BOOST_TEST(answers(c, 3));
      pid_t z = zygote_pid();
      BOOST_REQUIRE(z > 0);
      ::kill(z, sig);
      // Python's forkserver ignores SIGINT (a Ctrl-C is for the program);
      // SIGKILL ends it.
      if (sig == SIGKILL)
        BOOST_REQUIRE(isola_test::wait_until([z] { return isola_test::pid_dead(z); }, 10s));

      auto [mine2, theirs2] = isola::pipe();
      isola::process proc2(o, &echo_double, std::move(theirs2));
      proc2.start();
      child c2{nullptr, std::move(mine2)};
      BOOST_TEST(answers(c2, 4));
      if (sig == SIGINT) BOOST_TEST(zygote_pid() == z);  // still the same one
      c2.ours.close();
      BOOST_TEST(proc2.join(30s));
      BOOST_TEST(proc2.exitcode().value_or(-1) == 0);

      // The first one is still alive, answers, and can be joined...
      BOOST_TEST(proc.is_alive());
      BOOST_TEST(answers(c, 6));
      BOOST_TEST(!proc.join(100ms));
      c.ours.close();
      BOOST_TEST(proc.join(30s));
      const int code = proc.exitcode().value_or(-1);
      BOOST_TEST((code == 0 || code == 255), code);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_process_that_outlived_its_forkserver_can_still_be_terminated,
                     *utf::timeout(120)) {
  isola::process_options o;
  o.method = start_method::forkserver;
  auto [mine, theirs] = isola::pipe();
  isola::process proc(o, &echo_double, std::move(theirs));
  proc.start();
  child c{nullptr, std::move(mine)};
  BOOST_TEST(answers(c, 3));
  pid_t z = zygote_pid();
  BOOST_REQUIRE(z > 0);
  ::kill(z, SIGKILL);
  BOOST_REQUIRE(isola_test::wait_until([z] { return isola_test::pid_dead(z); }, 10s));
  BOOST_TEST(proc.is_alive());
  // The sentinel (its pidfd) is not ready while it runs.
  BOOST_TEST(isola::wait(std::vector<isola::waitable>{proc}, 50ms).empty());
  proc.terminate();
  BOOST_TEST(proc.join(30s));
  BOOST_TEST(!proc.is_alive());
  BOOST_TEST(isola_test::pid_dead(proc.pid()));
}

BOOST_AUTO_TEST_SUITE_END()
