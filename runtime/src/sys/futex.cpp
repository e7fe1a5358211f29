// The futex, spin and robust-mutex layer (futex.hpp), and the deadline's
// constructors that validate a caller's timeout.
#include "sys/futex.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>

#include "isola/detail/deadline.hpp"
#include "isola/error.hpp"
#include "sys/os.hpp"

namespace isola::detail {

// ------------------------------------------------------------------ deadlines

namespace {
// More than ~100 years is forever: it would overflow the clock.
constexpr double forever_seconds = 3.0e9;
}  // namespace

deadline deadline::after(std::chrono::duration<double> timeout) {
  double s = timeout.count();
  if (std::isnan(s) || s < 0) throw value_error("timeout must be a non-negative number");
  if (s > forever_seconds) return forever();
  return at_time(wait_clock::now() + std::chrono::duration_cast<wait_clock::duration>(timeout));
}

deadline deadline::after_clamped(std::chrono::duration<double> timeout) noexcept {
  double s = timeout.count();
  if (std::isnan(s) || s <= 0) return now();
  if (s > forever_seconds) return forever();
  return at_time(wait_clock::now() + std::chrono::duration_cast<wait_clock::duration>(timeout));
}

// -------------------------------------------------------------------- futexes

timespec to_timespec(wait_clock::time_point t) noexcept {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  if (ns < 0) ns = 0;
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}

void futex_wait_until(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                      const wait_clock::time_point* until) noexcept {
  timespec ts;
  if (until) ts = to_timespec(*until);
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time (steady_clock);
  // plain FUTEX_WAIT would take a relative one and drift on every retry.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET, expected,
            until ? &ts : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
}

void futex_wake_n(std::atomic<std::uint32_t>* word, int n) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, n, nullptr, nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept { futex_wake_n(word, INT_MAX); }

// ----------------------------------------------------------------------- spin

std::chrono::nanoseconds spin_budget() noexcept {
  static const std::chrono::nanoseconds b = [] {
    const char* e = std::getenv("ISOLA_SPIN_US");
    long us = e && *e ? std::atol(e) : 20;
    return std::chrono::nanoseconds(std::max(0L, us) * 1000);
  }();
  return b;
}

void spin_pause() noexcept { ::sched_yield(); }

// ------------------------------------------------------------- robust mutexes

void init_robust_mutex(pthread_mutex_t* m, int type, const char* what) {
  pthread_mutexattr_t a;
  ::pthread_mutexattr_init(&a);
  ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  ::pthread_mutexattr_settype(&a, type);
  int e = ::pthread_mutex_init(m, &a);
  ::pthread_mutexattr_destroy(&a);
  if (e != 0) throw_errno(what, e);
}

int lock_mutex_until(pthread_mutex_t* m, wait_clock::time_point until) noexcept {
  int r;
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer (GCC 12) intercepts neither pthread_mutex_clocklock nor
  // an EOWNERDEAD from pthread_mutex_timedlock (it would not see the lock
  // taken): poll with trylock, which it fully understands. Sanitizer builds
  // only.
  r = ::pthread_mutex_trylock(m);
  while (r == EBUSY) {
    if (wait_clock::now() >= until) return ETIMEDOUT;
    ::usleep(200);
    r = ::pthread_mutex_trylock(m);
  }
#else
  timespec ts = to_timespec(until);
  do {
    r = ::pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
  } while (r == EINTR);
#endif
  return r;
}

}  // namespace isola::detail
