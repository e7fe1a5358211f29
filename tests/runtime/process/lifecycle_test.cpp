// No orphans, no zombies, no leaked descriptors: what happens to children
// when their parent dies or ends, and what a child inherits.
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <isola/logging.hpp>
#include <isola/process.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola::start_method;
using isola_test::temp_file;

namespace {

void block_forever() {
  for (;;) ::pause();
}

std::set<int> open_fds() {
  std::set<int> fds;
  DIR* d = ::opendir("/proc/self/fd");
  int own = ::dirfd(d);
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::stoi(e->d_name);
    if (fd != own) fds.insert(fd);
  }
  ::closedir(d);
  return fds;
}

void write_open_fds(std::string path) {
  std::string s;
  for (int fd : open_fds()) s += std::to_string(fd) + " ";
  isola_test::write_file(path, s + "\n");
}

std::set<int> parse_fds(const std::string& text) {
  std::set<int> out;
  std::istringstream in(text);
  int fd;
  while (in >> fd) out.insert(fd);
  return out;
}

// A process that plays "root": starts three children with method m, reports
// their pids, then waits to be killed.
void family_root(int method, std::string path) {
  std::vector<isola::process> kids;
  for (int i = 0; i < 3; ++i) {
    kids.emplace_back(isola::process_options{.method = static_cast<start_method>(method)},
                      block_forever);
    kids.back().start();
  }
  std::string s;
  for (auto& k : kids) s += std::to_string(k.pid()) + "\n";
  isola_test::write_file(path, s + "ready\n");
  block_forever();
}

void wait_for_pid_to_die(int pid) {
  isola_test::wait_until([pid] { return isola_test::pid_dead(pid); });
}

// Ends normally with a daemon child and a non-daemon child still running:
// the daemon must be terminated, the other joined.
void exit_with_children(int method, std::string path) {
  isola::log_to_stderr(isola::log_level::info);
  auto m = static_cast<start_method>(method);
  isola::process d(isola::process_options{.name = "the-daemon", .daemon = true, .method = m},
                   block_forever);
  d.start();
  // The non-daemon outlives the daemon: it ends only once the daemon is dead,
  // so shutdown must terminate the daemon to be able to join it.
  isola::process n(isola::process_options{.name = "the-worker", .daemon = false, .method = m},
                   wait_for_pid_to_die, d.pid());
  n.start();
  isola_test::write_file(path, std::to_string(d.pid()) + " " + std::to_string(n.pid()) + "\n");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(lifecycle)

BOOST_AUTO_TEST_CASE(children_die_within_a_second_of_their_root_being_sigkilled,
                     *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("children started with " << m) {
      temp_file out;
      isola::process root(isola::process_options{.method = start_method::fork}, family_root,
                          static_cast<int>(m), out.path());
      root.start();
      BOOST_REQUIRE(isola_test::wait_until(
          [&] { return out.read().find("ready") != std::string::npos; }, 20s));
      std::vector<int> pids;
      std::istringstream in(out.read());
      for (int pid; in >> pid;) pids.push_back(pid);
      BOOST_REQUIRE(pids.size() == 3u);
      for (int pid : pids) BOOST_TEST(!isola_test::pid_dead(pid));

      root.kill();
      auto t0 = std::chrono::steady_clock::now();
      bool all_dead = isola_test::wait_until(
          [&] { return std::all_of(pids.begin(), pids.end(), isola_test::pid_dead); }, 5s);
      auto took = std::chrono::steady_clock::now() - t0;
      BOOST_TEST(all_dead);
      BOOST_TEST(std::chrono::duration_cast<std::chrono::milliseconds>(took).count() < 1000);
      root.join();
      BOOST_TEST(root.exitcode() == -SIGKILL);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_process_that_ends_terminates_daemon_children_and_joins_the_others,
                     *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("children started with " << m) {
      temp_file out;
      isola::process p(isola::process_options{.name = "parent", .method = start_method::fork},
                       exit_with_children, static_cast<int>(m), out.path());
      isola_test::capture_fd err(2);
      p.start();
      BOOST_TEST(p.join(30s));
      auto log = err.text();
      BOOST_TEST(p.exitcode() == 0, log);
      BOOST_TEST(log.find("[INFO/parent] process shutting down") != std::string::npos, log);
      BOOST_TEST(
          log.find("[INFO/parent] calling terminate() for daemon the-daemon") != std::string::npos,
          log);
      // Joined: the worker, which outlives the daemon, ended before its parent.
      auto worker_end = log.find("[INFO/the-worker] process exiting with exitcode 0");
      auto parent_end = log.find("[INFO/parent] process exiting with exitcode 0");
      BOOST_TEST(worker_end != std::string::npos, log);
      BOOST_TEST(parent_end != std::string::npos, log);
      BOOST_TEST(worker_end < parent_end, log);
      std::istringstream in(out.read());
      int d = 0, n = 0;
      in >> d >> n;
      BOOST_REQUIRE(d > 0);
      BOOST_TEST(isola_test::pid_dead(d));
      BOOST_TEST(isola_test::pid_dead(n));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_child_inherits_no_descriptor_of_isolas, *utf::timeout(120)) {
  // Siblings give this process pidfds a careless fork would hand down.
  std::vector<isola::process> siblings;
  for (auto m : isola::all_start_methods()) {
    siblings.emplace_back(isola::process_options{.method = m}, block_forever);
    siblings.back().start();
  }
  // A descriptor of the user's own, close-on-exec like every one should be.
  int user_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto parent_fds = open_fds();
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      temp_file out;
      isola::process p(isola::process_options{.method = m}, write_open_fds, out.path());
      p.start();
      p.join();
      BOOST_REQUIRE(p.exitcode() == 0);
      auto child = parse_fds(out.read());
      for (auto& s : siblings) BOOST_TEST(!child.count(s.sentinel()), "sibling pidfd leaked");
      if (m == start_method::fork) {
        // fork copies the user's descriptors, as os.fork does; never isola's.
        BOOST_TEST(child.count(user_fd) == 1u);
        for (int fd : child) BOOST_TEST(parent_fds.count(fd) == 1u, "fd " << fd);
        BOOST_TEST(child.size() < parent_fds.size());
      } else {
        BOOST_TEST((child == std::set<int>{0, 1, 2}), "child fds: " << out.read());
      }
    }
  }
  ::close(user_fd);
  for (auto& s : siblings) {
    s.kill();
    s.join();
  }
}

BOOST_AUTO_TEST_CASE(a_fork_from_a_multithreaded_process_is_warned_about_once, *utf::timeout(60)) {
  isola::log_to_stderr(isola::log_level::warning);
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread t([&] {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return done; });
  });
  std::string log;
  {
    isola_test::capture_fd err(2);
    for (int i = 0; i < 2; ++i) {
      isola::process p(isola::process_options{.method = start_method::fork}, [] {});
      p.start();
      p.join();
    }
    log = err.text();
  }
  {
    std::lock_guard lk(mu);
    done = true;
  }
  cv.notify_all();
  t.join();
  isola::get_logger().set_stderr_handler(false);
  isola::get_logger().set_level(isola::log_level::notset);
  auto first = log.find("is multi-threaded, use of fork() may lead to deadlocks");
  BOOST_TEST(first != std::string::npos, log);
  BOOST_TEST(log.find("[WARNING/MainProcess]") != std::string::npos, log);
  BOOST_TEST(log.find("is multi-threaded", first + 1) == std::string::npos, "warned twice");
}

BOOST_AUTO_TEST_SUITE_END()
