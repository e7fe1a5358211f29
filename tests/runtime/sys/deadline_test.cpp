// sys/futex.hpp and isola/detail/deadline.hpp: one deadline type computed once,
// futex sleeps that end at it, robust mutexes taken by it, across processes.
#include <boost/test/unit_test.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <limits>
#include <new>
#include <thread>

#include "isola/error.hpp"
#include "sys/futex.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using isola::detail::deadline;
using isola::detail::wait_clock;

namespace {

/// A page of shared memory that a forked child sees too.
struct shared_page {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ~shared_page() { ::munmap(p, 4096); }
  template <class T>
  T* as() {
    return static_cast<T*>(p);
  }
};

int wait_child(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  return st;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(deadlines)

BOOST_AUTO_TEST_CASE(a_negative_or_nan_timeout_is_a_value_error, *utf::timeout(10)) {
  BOOST_CHECK_THROW(deadline::after(-1s), isola::value_error);
  BOOST_CHECK_THROW(deadline::after(std::chrono::duration<double>(std::nan(""))),
                    isola::value_error);
}

BOOST_AUTO_TEST_CASE(a_timeout_too_long_for_the_clock_waits_forever, *utf::timeout(10)) {
  auto d = deadline::after(std::chrono::duration<double>(1e300));
  BOOST_TEST(d.mode == deadline::block);
  BOOST_TEST(!d.until().has_value());
  BOOST_TEST(!d.expired());
  auto h = deadline::after(std::chrono::hours(24 * 365 * 200));
  BOOST_TEST(h.mode == deadline::block);
}

BOOST_AUTO_TEST_CASE(a_clamped_timeout_of_zero_or_less_is_a_try, *utf::timeout(10)) {
  BOOST_TEST(deadline::after_clamped(0s).mode == deadline::nowait);
  BOOST_TEST(deadline::after_clamped(-5s).mode == deadline::nowait);
  BOOST_TEST(deadline::now().expired());
  BOOST_TEST((*deadline::now().until() <= wait_clock::now()));
}

BOOST_AUTO_TEST_CASE(a_deadline_is_computed_once_and_expires, *utf::timeout(10)) {
  // A sleep is capped by the slice or by the deadline, whichever is first.
  auto far = deadline::after(1h);
  BOOST_TEST((far.capped(2h) == far.at));
  BOOST_TEST((far.capped(1ms) < far.at));
  auto d = deadline::after(30ms);
  const auto at = d.at;
  while (!d.expired()) std::this_thread::yield();
  BOOST_TEST((wait_clock::now() >= at));
  BOOST_TEST((d.at == at));  // expiring does not move it
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(futexes)

BOOST_AUTO_TEST_CASE(a_futex_sleep_ends_at_its_deadline, *utf::timeout(10)) {
  std::atomic<std::uint32_t> word{7};
  const auto start = wait_clock::now();
  const auto until = start + 50ms;
  while (wait_clock::now() < until) isola::detail::futex_wait_until(&word, 7, &until);
  const auto took = wait_clock::now() - start;
  BOOST_TEST((took >= 50ms));
  BOOST_TEST((took < 2s));
}

BOOST_AUTO_TEST_CASE(a_futex_sleep_returns_at_once_when_the_word_differs, *utf::timeout(10)) {
  std::atomic<std::uint32_t> word{1};
  const auto until = wait_clock::now() + 5s;
  const auto start = wait_clock::now();
  isola::detail::futex_wait_until(&word, 2, &until);
  BOOST_TEST((wait_clock::now() - start < 1s));
}

BOOST_AUTO_TEST_CASE(another_process_wakes_a_futex_sleeper, *utf::timeout(20)) {
  shared_page page;
  auto* word = new (page.p) std::atomic<std::uint32_t>(0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child sleeps until the parent changes the word and wakes it.
    const auto until = wait_clock::now() + 10s;
    while (word->load() == 0 && wait_clock::now() < until)
      isola::detail::futex_wait_until(word, 0, &until);
    ::_exit(word->load() == 1 ? 0 : 3);
  }
  word->store(1);
  isola::detail::futex_wake_all(word);
  int st = wait_child(pid);
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 0);
}

BOOST_AUTO_TEST_CASE(spin_until_returns_the_conditions_last_value, *utf::timeout(10)) {
  // However short the budget (a loaded machine may spend it in one
  // sched_yield), the condition is asked again after the last pause.
  int calls = 0;
  BOOST_TEST(isola::detail::spin_until([&] { return ++calls == 2; }));
  BOOST_TEST(calls == 2);
  BOOST_TEST(!isola::detail::spin_until([] { return false; }));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(robust_mutexes)

BOOST_AUTO_TEST_CASE(a_lock_held_by_another_process_times_out_at_the_deadline, *utf::timeout(20)) {
  shared_page page;
  auto* m = page.as<pthread_mutex_t>();
  isola::detail::init_robust_mutex(m, PTHREAD_MUTEX_ERRORCHECK);
  auto* go = new (page.as<char>() + 512) std::atomic<std::uint32_t>(0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::pthread_mutex_lock(m);
    go->store(1);
    isola::detail::futex_wake_all(go);
    const auto until = wait_clock::now() + 10s;
    while (go->load() != 2 && wait_clock::now() < until)
      isola::detail::futex_wait_until(go, 1, &until);
    ::pthread_mutex_unlock(m);
    ::_exit(0);
  }
  const auto until = wait_clock::now() + 10s;
  while (go->load() == 0 && wait_clock::now() < until)
    isola::detail::futex_wait_until(go, 0, &until);
  const auto start = wait_clock::now();
  BOOST_TEST(isola::detail::lock_mutex_until(m, start + 50ms) == ETIMEDOUT);
  BOOST_TEST((wait_clock::now() - start >= 50ms));
  go->store(2);
  isola::detail::futex_wake_all(go);
  BOOST_TEST(WEXITSTATUS(wait_child(pid)) == 0);
  BOOST_TEST(isola::detail::lock_mutex_until(m, wait_clock::now() + 5s) == 0);
  ::pthread_mutex_unlock(m);
}

BOOST_AUTO_TEST_CASE(a_lock_whose_holder_was_killed_goes_to_the_next_taker, *utf::timeout(20)) {
  shared_page page;
  auto* m = page.as<pthread_mutex_t>();
  isola::detail::init_robust_mutex(m, PTHREAD_MUTEX_ERRORCHECK);
  auto* go = new (page.as<char>() + 512) std::atomic<std::uint32_t>(0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::pthread_mutex_lock(m);
    go->store(1);
    isola::detail::futex_wake_all(go);
    for (;;) ::pause();
  }
  const auto until = wait_clock::now() + 10s;
  while (go->load() == 0 && wait_clock::now() < until)
    isola::detail::futex_wait_until(go, 0, &until);
  ::kill(pid, SIGKILL);
  wait_child(pid);
  BOOST_TEST(isola::detail::lock_mutex_until(m, wait_clock::now() + 5s) == EOWNERDEAD);
  ::pthread_mutex_consistent(m);
  ::pthread_mutex_unlock(m);
}

BOOST_AUTO_TEST_SUITE_END()
