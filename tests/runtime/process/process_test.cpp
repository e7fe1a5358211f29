// isola::process under every start method: exit codes, errors, handles,
// names, arguments. Children are real processes running functions of this
// executable (under spawn, a fresh exec of it).
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <isola/process.hpp>
#include <isola/runtime.hpp>

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola::start_method;
using isola_test::temp_file;

namespace {

void empty_target() {}
int return_seven() { return 7; }
void call_exit_42() { isola::exit(42); }
void throw_boom() { throw std::runtime_error("boom"); }
void block_forever() {
  for (;;) ::pause();
}
void segfault() { ::raise(SIGSEGV); }

struct payload {
  std::string text;
  std::vector<double> values;
  std::map<std::string, int> counts;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(text, values, counts);
  }
};

int check_arguments(std::string s, int n, const payload& p) {
  if (s != "不露声色" || n != -3) return 10;
  if (p.text != "hello" || p.values != std::vector<double>{1.5, 2.5}) return 11;
  if (p.counts.at("a") != 1 || p.counts.at("b") != 2) return 12;
  return 0;
}

// Exit code 20 + the child's get_start_method().
int report_start_method() { return 20 + static_cast<int>(isola::get_start_method()); }

// Writes "cleaned" to its file when destroyed: proof that the child unwound.
struct cleanup_marker {
  std::string path;
  ~cleanup_marker() { isola_test::write_file(path, "ready\ncleaned\n"); }
};

// CPython 3.14's _sleep_some: blocks (here in nanosleep) until interrupted.
void sleep_with_cleanup(std::string path) {
  cleanup_marker m{path};
  isola_test::write_file(path, "ready\n");
  std::this_thread::sleep_for(60s);
}

// CPython's _sleep_no_int_handler: SIGINT back to SIG_DFL first.
void sleep_without_handler(std::string path) {
  ::signal(SIGINT, SIG_DFL);
  isola_test::write_file(path, "ready\n");
  std::this_thread::sleep_for(60s);
}

// 0 if parent_process() says its parent runs and join(t) times out.
int check_parent_alive() {
  auto p = isola::parent_process();
  if (!p) return 3;
  if (!p->is_alive()) return 4;
  if (p->sentinel() < 0) return 5;
  if (p->join(50ms)) return 6;
  if (p->pid != ::getppid() && isola::get_start_method() != start_method::forkserver) return 7;
  return 0;
}

void write_identity(std::string path) {
  auto self = isola::current_process();
  auto parent = isola::parent_process();
  isola_test::write_file(
      path, self.name + "|" + std::to_string(self.pid) + "|" +
                (parent ? parent->name + "|" + std::to_string(parent->pid) : std::string("none")) +
                "|" + (self.daemon ? "daemon" : "normal") + "\n");
}

void start_grandchild_and_write_identity(std::string path) {
  isola::process p(write_identity, path);
  p.start();
  p.join();
}

int daemon_tries_to_start_a_child() {
  try {
    isola::process p(empty_target);
    p.start();
  } catch (const isola::process_error&) {
    return 3;
  }
  return 0;
}

struct counted_worker : isola::process {
  std::string path_;
  explicit counted_worker(std::string path) : path_(std::move(path)) {}

 protected:
  void run() override { isola_test::write_file(path_, "In " + name() + "\n"); }
};

isola::process make(start_method m, auto&&... a) {
  return isola::process(isola::process_options{.method = m}, std::forward<decltype(a)>(a)...);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(process)

BOOST_AUTO_TEST_CASE(exitcode_is_empty_until_the_child_ends_then_zero, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto p = make(m, empty_target);
      BOOST_TEST(!p.exitcode().has_value());
      BOOST_TEST(p.pid() == 0);
      p.start();
      BOOST_TEST(p.pid() > 0);
      BOOST_TEST(p.pid() != ::getpid());
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(!p.is_alive());
    }
  }
}

BOOST_AUTO_TEST_CASE(exitcode_is_the_int_a_target_returns_or_the_code_given_to_exit,
                     *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto p = make(m, return_seven);
      p.start();
      p.join();
      BOOST_TEST(p.exitcode() == 7);
      auto q = make(m, call_exit_42);
      q.start();
      q.join();
      BOOST_TEST(q.exitcode() == 42);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_uncaught_exception_is_exitcode_one_and_printed_with_the_name,
                     *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto p = make(m, throw_boom);
      isola_test::capture_fd err(2);
      p.start();
      p.join();
      auto text = err.text();
      BOOST_TEST(p.exitcode() == 1);
      BOOST_TEST(text.find(p.name() + ": boom") != std::string::npos, "stderr was: " << text);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_child_killed_by_a_signal_has_minus_the_signal_as_exitcode,
                     *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto p = make(m, block_forever);
      p.start();
      BOOST_TEST(!p.join(20ms));
      BOOST_TEST(p.is_alive());
      p.terminate();
      BOOST_TEST(p.join(10s));
      BOOST_TEST(p.exitcode() == -SIGTERM);

      auto k = make(m, block_forever);
      k.start();
      k.kill();
      k.join();
      BOOST_TEST(k.exitcode() == -SIGKILL);

      // The test framework catches SIGSEGV in this process; the child must
      // still die of it, as after an exec.
      auto s = make(m, segfault);
      s.start();
      s.join();
      BOOST_TEST(s.exitcode() == -SIGSEGV);
    }
  }
}

BOOST_AUTO_TEST_CASE(join_with_a_timeout_returns_whether_the_child_ended, *utf::timeout(60)) {
  auto p = make(start_method::fork, block_forever);
  p.start();
  auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(!p.join(50ms));
  BOOST_TEST((std::chrono::steady_clock::now() - t0 >= 50ms));
  BOOST_TEST(!p.exitcode().has_value());
  p.kill();
  BOOST_TEST(p.join(10s));
  BOOST_TEST(p.join(0s));  // already ended: true at once
}

BOOST_AUTO_TEST_CASE(the_sentinel_becomes_readable_when_the_child_ends, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto p = make(m, block_forever);
      BOOST_CHECK_THROW(p.sentinel(), isola::process_error);
      p.start();
      pollfd pfd{p.sentinel(), POLLIN, 0};
      BOOST_TEST(::poll(&pfd, 1, 0) == 0);
      p.terminate();
      BOOST_TEST(::poll(&pfd, 1, 10000) == 1);
      p.join();
      BOOST_TEST(p.exitcode() == -SIGTERM);
    }
  }
}

BOOST_AUTO_TEST_CASE(start_twice_is_a_process_error, *utf::timeout(30)) {
  auto p = make(start_method::fork, empty_target);
  p.start();
  try {
    p.start();
    BOOST_FAIL("second start() did not throw");
  } catch (const isola::process_error& e) {
    BOOST_TEST(std::string(e.what()) == "cannot start a process twice");
  }
  p.join();
  BOOST_CHECK_THROW(p.start(), isola::process_error);
}

BOOST_AUTO_TEST_CASE(join_on_a_never_started_process_is_a_process_error, *utf::timeout(30)) {
  isola::process p(empty_target);
  BOOST_CHECK_THROW(p.join(), isola::process_error);
  BOOST_CHECK_THROW(p.join(1s), isola::process_error);
  BOOST_CHECK_THROW(p.terminate(), isola::process_error);
  BOOST_TEST(!p.is_alive());
}

BOOST_AUTO_TEST_CASE(terminate_and_kill_on_an_ended_process_are_no_ops, *utf::timeout(30)) {
  auto p = make(start_method::fork, return_seven);
  p.start();
  p.join();
  p.terminate();
  p.kill();
  BOOST_TEST(p.exitcode() == 7);
}

BOOST_AUTO_TEST_CASE(setting_daemon_after_start_is_a_process_error, *utf::timeout(30)) {
  auto p = make(start_method::fork, empty_target);
  p.daemon(true);
  BOOST_TEST(p.daemon());
  p.daemon(false);
  p.start();
  BOOST_CHECK_THROW(p.daemon(true), isola::process_error);
  p.join();
}

BOOST_AUTO_TEST_CASE(a_daemon_process_may_not_start_children, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::process p(isola::process_options{.daemon = true, .method = m},
                       daemon_tries_to_start_a_child);
      p.start();
      p.join();
      BOOST_TEST(p.exitcode() == 3);
    }
  }
}

BOOST_AUTO_TEST_CASE(close_refuses_a_running_child_and_then_disables_the_handle,
                     *utf::timeout(30)) {
  auto p = make(start_method::fork, block_forever);
  p.start();
  BOOST_CHECK_THROW(p.close(), isola::process_error);
  p.kill();
  p.join();
  p.close();
  BOOST_CHECK_THROW(p.join(), isola::value_error);
  BOOST_CHECK_THROW(p.is_alive(), isola::value_error);
  BOOST_CHECK_THROW(p.pid(), isola::value_error);
  BOOST_TEST(p.exitcode() == -SIGKILL);
  BOOST_TEST(!p.name().empty());
}

BOOST_AUTO_TEST_CASE(arguments_of_every_kind_travel_under_every_method, *utf::timeout(60)) {
  payload pl{"hello", {1.5, 2.5}, {{"a", 1}, {"b", 2}}};
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto p = make(m, check_arguments, "不露声色", -3, pl);
      p.start();
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      // A captureless lambda is code too, so it works everywhere.
      auto q = make(
          m, [](int a, int b) { return a * b; }, 6, 7);
      q.start();
      q.join();
      BOOST_TEST(q.exitcode() == 42);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_capturing_closure_works_under_fork_and_is_refused_elsewhere,
                     *utf::timeout(60)) {
  int captured = 9;
  auto f = make(start_method::fork, [captured] { return captured; });
  f.start();
  f.join();
  BOOST_TEST(f.exitcode() == 9);
  for (auto m : {start_method::forkserver, start_method::spawn}) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto p = make(m, [captured] { return captured; });
      try {
        p.start();
        BOOST_FAIL("a closure started under " << m);
      } catch (const isola::start_method_error& e) {
        std::string what = e.what();
        BOOST_TEST(what.find("fork start method") != std::string::npos, what);
        BOOST_TEST(what.find("pass a function") != std::string::npos, what);
      }
      BOOST_TEST(!p.is_alive());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_subclass_overriding_run_runs_under_fork, *utf::timeout(60)) {
  temp_file out;
  std::vector<std::unique_ptr<counted_worker>> jobs;
  for (int i = 0; i < 3; ++i) jobs.push_back(std::make_unique<counted_worker>(out.path()));
  for (auto& j : jobs) j->start();
  for (auto& j : jobs) j->join();
  auto text = out.read();
  for (auto& j : jobs) {
    BOOST_TEST(j->exitcode() == 0);
    BOOST_TEST(text.find("In " + j->name() + "\n") != std::string::npos, text);
  }
  counted_worker w(out.path());
  w.daemon(false);
  for (auto m : {start_method::forkserver, start_method::spawn}) {
    counted_worker s(out.path());
    isola::set_start_method(m);
    BOOST_CHECK_THROW(s.start(), isola::start_method_error);
    isola::set_start_method(start_method::fork);
  }
}

BOOST_AUTO_TEST_CASE(names_default_to_process_n_and_nest_in_children, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      temp_file out;
      auto p = make(m, start_grandchild_and_write_identity, out.path());
      auto name = p.name();
      BOOST_TEST(name.rfind("process-", 0) == 0);
      p.start();
      p.join();
      BOOST_TEST(p.exitcode() == 0);
      // The grandchild's name extends its parent's identity, as Python's
      // "Process-1:1"; its parent is the child.
      auto expect = name + ":1|";
      auto text = out.read();
      BOOST_TEST(text.rfind(expect, 0) == 0, text);
      BOOST_TEST(
          text.find("|" + name + "|" + std::to_string(p.pid()) + "|normal") != std::string::npos,
          text);
    }
  }
  isola::process named(isola::process_options{.name = "t1"}, empty_target);
  BOOST_TEST(named.name() == "t1");
  named.name("t2");
  BOOST_TEST(named.name() == "t2");
}

BOOST_AUTO_TEST_CASE(current_and_parent_process_describe_the_child, *utf::timeout(60)) {
  BOOST_TEST(isola::current_process().name == "MainProcess");
  BOOST_TEST(isola::current_process().pid == ::getpid());
  BOOST_TEST(!isola::parent_process().has_value());
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      temp_file out;
      isola::process p(isola::process_options{.name = "dancer", .daemon = true, .method = m},
                       write_identity, out.path());
      p.start();
      p.join();
      BOOST_TEST(out.read() == "dancer|" + std::to_string(p.pid()) + "|MainProcess|" +
                                   std::to_string(::getpid()) + "|daemon\n");
    }
  }
}

BOOST_AUTO_TEST_CASE(active_children_lists_running_children_only, *utf::timeout(60)) {
  auto a = make(start_method::fork, block_forever);
  auto b = make(start_method::spawn, block_forever);
  a.start();
  b.start();
  auto kids = isola::active_children();
  auto has = [&](int pid) {
    for (auto& k : isola::active_children())
      if (k.pid == pid) return true;
    return false;
  };
  BOOST_TEST(kids.size() >= 2u);
  BOOST_TEST(has(a.pid()));
  BOOST_TEST(has(b.pid()));
  a.kill();
  BOOST_TEST(isola_test::wait_until([&] { return !has(a.pid()); }));
  BOOST_TEST(has(b.pid()));
  b.kill();
  b.join();
  BOOST_TEST(!has(b.pid()));
}

BOOST_AUTO_TEST_CASE(no_zombie_is_left_after_join_terminate_or_a_dropped_handle,
                     *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      auto p = make(m, empty_target);
      p.start();
      p.join();
      BOOST_TEST(isola_test::pid_gone(p.pid()));

      auto t = make(m, block_forever);
      t.start();
      t.terminate();
      t.join();
      BOOST_TEST(isola_test::pid_gone(t.pid()));

      int pid = 0;
      {
        auto d = make(m, block_forever);
        d.start();
        pid = d.pid();
      }  // the handle goes; the child keeps running, still ours to reap
      BOOST_TEST(!isola_test::pid_dead(pid));
      ::kill(pid, SIGKILL);
      BOOST_TEST(isola_test::wait_until([&] {
        isola::active_children();  // reaps
        return isola_test::pid_gone(pid);
      }));
    }
  }
}

BOOST_AUTO_TEST_CASE(start_methods_are_listed_and_settable, *utf::timeout(30)) {
  auto all = isola::all_start_methods();
  BOOST_TEST(all.size() == 3u);
  BOOST_TEST((all.front() == start_method::fork));
  BOOST_TEST((isola::get_start_method() == start_method::fork));
  isola::set_start_method(start_method::spawn);
  BOOST_TEST((isola::get_start_method() == start_method::spawn));
  auto p = isola::process(return_seven);  // uses the default method
  p.start();
  p.join();
  BOOST_TEST(p.exitcode() == 7);
  isola::set_start_method(start_method::fork);
  BOOST_TEST(isola::cpu_count() >= 1u);
  for (auto m : all) BOOST_TEST((isola::start_method_from_string(isola::to_string(m)) == m));
  BOOST_TEST(!isola::start_method_from_string("Fork").has_value());
  BOOST_TEST(!isola::start_method_from_string("").has_value());
}

// Python: a child's get_start_method() is its context's method (spawn and
// forkserver children used to report fork).
BOOST_AUTO_TEST_CASE(a_child_reports_the_start_method_it_was_started_with, *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT(m) {
      isola::process p(isola::process_options{.method = m}, report_start_method);
      p.start();
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode().value_or(-1) == 20 + static_cast<int>(m));
    }
  }
  // The default method, changed in the parent, is the child's too.
  isola::set_start_method(start_method::spawn);
  isola::process p(report_start_method);
  p.start();
  BOOST_TEST(p.join(30s));
  isola::set_start_method(start_method::fork);
  BOOST_TEST(p.exitcode().value_or(-1) == 20 + static_cast<int>(start_method::spawn));
}

// CPython 3.14's test_interrupt: Process.interrupt() sends SIGINT, the
// child gets KeyboardInterrupt (here keyboard_interrupt: its destructors
// run) and exits with 1.
BOOST_AUTO_TEST_CASE(interrupt_unwinds_the_child_which_exits_with_1, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT(m) {
      temp_file out;
      isola::process p(isola::process_options{.method = m}, sleep_with_cleanup, out.path());
      p.start();
      BOOST_REQUIRE(isola_test::wait_until(
          [&] { return out.read().find("ready") != std::string::npos; }, 30s));
      p.interrupt();
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode().value_or(0) == 1);
      BOOST_TEST(out.read().find("cleaned") != std::string::npos, out.read());
      p.interrupt();  // ended: a no-op
    }
  }
}

// CPython 3.14's test_interrupt_no_handler: with SIGINT at SIG_DFL the
// child dies by the signal.
BOOST_AUTO_TEST_CASE(interrupt_of_a_child_without_the_handler_kills_it_by_sigint,
                     *utf::timeout(60)) {
  temp_file out;
  isola::process p(sleep_without_handler, out.path());
  p.start();
  BOOST_REQUIRE(isola_test::wait_until(
      [&] { return out.read().find("ready") != std::string::npos; }, 30s));
  p.interrupt();
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode().value_or(0) == -SIGINT);
  isola::process never(empty_target);
  BOOST_CHECK_THROW(never.interrupt(), isola::process_error);  // not started
}

// CPython's test_parent_process (the half isola can show: a child dies with
// its parent, so it never sees it dead): the parent is alive, join(t) times
// out; the root has no parent.
BOOST_AUTO_TEST_CASE(parent_process_is_alive_and_join_waits_for_it, *utf::timeout(60)) {
  BOOST_TEST(!isola::parent_process().has_value());
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT(m) {
      isola::process p(isola::process_options{.method = m}, check_parent_alive);
      p.start();
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode().value_or(-1) == 0);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
