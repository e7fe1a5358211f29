// What the shared-memory synchronization objects share beyond the futex
// layer (sys/futex.hpp, which they use for every wait): taking a robust
// mutex by a deadline, the lock cell in shared memory, the calling thread's id.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "isola/detail/sync_segment.hpp"
#include "sys/futex.hpp"

namespace isola::detail {

enum class take_result { ok, owner_died, timed_out, deadlock };
/// Locks m by the deadline. owner_died: the previous holder died holding it;
/// the caller now holds it and it has been made consistent again.
take_result take_mutex(pthread_mutex_t* m, const deadline& d);

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

}  // namespace isola::detail
