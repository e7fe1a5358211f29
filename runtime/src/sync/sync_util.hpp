// What the shared-memory synchronization objects share inside the runtime:
// futex waits and wakes on words in shared memory, the short poll before a
// sleep, robust process-shared mutexes, and the calling thread's id.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "isola/detail/sync_segment.hpp"

namespace isola::detail {

using sync_clock = std::chrono::steady_clock;

/// Sleeps while *word == expected, until woken or `until` (none: forever).
/// Shared (not PRIVATE) futexes: the waker is another process. Returns at
/// once if the word already differs; spurious returns are possible.
void futex_wait_until(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                      const sync_clock::time_point* until) noexcept;
void futex_wake_n(std::atomic<std::uint32_t>* word, int n) noexcept;

/// The earlier of the deadline and now + slice (every sleep is capped: a
/// process killed between changing a word and waking its sleepers must not
/// leave them asleep for ever).
sync_clock::time_point sleep_until(const sync_deadline& d, sync_clock::duration slice) noexcept;

/// The poll before a sleep: calls cond until it holds or the budget
/// (ISOLA_SPIN_US, default 20 µs, the actors' setting; 0: off) runs out,
/// with sched_yield between calls. Waking a sleeping process on the other
/// vCPU of these machines costs tens of µs; a peer that answers within the
/// budget costs none. Returns cond()'s last value.
template <class Cond>
bool spin_until(Cond cond);
std::chrono::nanoseconds spin_budget() noexcept;
void spin_pause() noexcept;  // sched_yield

/// A robust, process-shared mutex of `type` (PTHREAD_MUTEX_ERRORCHECK or
/// PTHREAD_MUTEX_RECURSIVE), in zeroed shared memory.
void init_robust_mutex(pthread_mutex_t* m, int type);

enum class take_result { ok, owner_died, timed_out, deadlock };
/// Locks m by the deadline. owner_died: the previous holder died holding it;
/// the caller now holds it and it has been made consistent again.
take_result take_mutex(pthread_mutex_t* m, const sync_deadline& d);

/// The calling thread's kernel id (cached; refreshed in a fork child).
pid_t current_tid() noexcept;

/// A lock's state in shared memory (lock, rlock, and the lock inside a
/// value, array or condition).
struct mutex_cell {
  std::uint32_t tag;        // mutex_cell_tag once initialised
  std::uint32_t recursive;  // 1 for an rlock
  std::uint32_t depth;      // rlock: how many times its holder holds it (holder only)
  std::uint32_t reserved;
  pthread_mutex_t m;
};
inline constexpr std::uint32_t mutex_cell_tag = 0x4d4c5349u;  // "ISLM"
inline constexpr std::size_t mutex_cell_bytes = 64;
static_assert(sizeof(mutex_cell) <= mutex_cell_bytes);

/// Initialises a cell in fresh (zeroed) shared memory.
void init_mutex_cell(mutex_cell* c, bool recursive);
/// The cell at offset in seg, checked (decode_error if it is not one, or not
/// of the kind expected: 0 plain, 1 recursive, -1 either).
mutex_cell* mutex_cell_at(const sync_segment& seg, std::uint64_t offset, int expect);

template <class Cond>
bool spin_until(Cond cond) {
  const auto budget = spin_budget();
  if (budget.count() == 0) return cond();
  const auto end = sync_clock::now() + budget;
  for (;;) {
    if (cond()) return true;
    spin_pause();
    if (sync_clock::now() >= end) return cond();
  }
}

}  // namespace isola::detail
