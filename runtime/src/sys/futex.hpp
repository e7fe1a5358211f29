// The one waiting layer under rings and sync objects: futex waits and wakes on
// 32-bit words in shared memory, the CPU pause and the poll before a sleep,
// and process-shared robust mutexes with a deadline.
//
// Every wait here is on an absolute CLOCK_MONOTONIC time (a detail::deadline,
// computed once by the caller), and the waker is another process: futexes are
// shared (never FUTEX_PRIVATE_FLAG), mutexes PTHREAD_PROCESS_SHARED and
// robust, so a holder that dies hands its lock to the next taker with
// EOWNERDEAD instead of holding it for ever.
#pragma once

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "isola/detail/deadline.hpp"

namespace isola::detail {

/// An absolute time for the kernel (clamped at 0).
timespec to_timespec(wait_clock::time_point t) noexcept;

/// Sleeps while *word == expected, until woken or `until` (null: forever).
/// Returns at once if the word already differs; spurious returns are possible.
void futex_wait_until(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                      const wait_clock::time_point* until) noexcept;
/// Wakes up to n sleepers on word (INT_MAX: all).
void futex_wake_n(std::atomic<std::uint32_t>* word, int n) noexcept;
void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept;

/// One pause of a busy-wait loop (PAUSE on x86): lets the sibling hyper-thread
/// run and keeps the loop from flooding the memory system.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// The poll before a sleep: calls cond until it holds or the budget
/// (ISOLA_SPIN_US, default 20 µs, the actors' setting; 0: off) runs out,
/// with sched_yield between calls. Waking a sleeping process on the other
/// vCPU of these machines costs tens of µs; a peer that answers within the
/// budget costs none. Returns cond()'s last value.
template <class Cond>
bool spin_until(Cond cond);
std::chrono::nanoseconds spin_budget() noexcept;
void spin_pause() noexcept;  // sched_yield

/// A robust, process-shared mutex of `type` (PTHREAD_MUTEX_ERRORCHECK,
/// PTHREAD_MUTEX_RECURSIVE or PTHREAD_MUTEX_NORMAL), in zeroed shared memory.
/// `what` names it in the error.
void init_robust_mutex(pthread_mutex_t* m, int type, const char* what = "pthread_mutex_init");

/// pthread_mutex_lock until `until` (CLOCK_MONOTONIC): 0, EOWNERDEAD,
/// ETIMEDOUT, or another error number. Never EINTR.
int lock_mutex_until(pthread_mutex_t* m, wait_clock::time_point until) noexcept;

template <class Cond>
bool spin_until(Cond cond) {
  const auto budget = spin_budget();
  if (budget.count() == 0) return cond();
  const auto end = wait_clock::now() + budget;
  for (;;) {
    if (cond()) return true;
    spin_pause();
    if (wait_clock::now() >= end) return cond();
  }
}

}  // namespace isola::detail
