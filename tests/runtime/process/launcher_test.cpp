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

#include "process/forkserver.hpp"
#include "process/registry.hpp"

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
  // Its children die with it (they are the zygote's children; documented in
  // docs/security.md): the root sees a SIGKILL exit, as for any killed child.
  BOOST_TEST(first.p->join(30s));
  BOOST_TEST(first.p->exitcode().value_or(0) == -SIGKILL);
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
}

BOOST_AUTO_TEST_SUITE_END()
