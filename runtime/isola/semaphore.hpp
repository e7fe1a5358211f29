// isola/semaphore.hpp — a counter of permits shared by processes (Python's
// multiprocessing.Semaphore and BoundedSemaphore).
//
//   isola::semaphore s(2);                    // two at a time
//   isola::process p(worker, s);              // a copy goes to the child
//   { std::scoped_lock g(s); ... }            // acquire() ... release()
//
// The count lives in a memfd shared by every process that has the semaphore
// (fork shares the mapping; a semaphore given to a forkserver or spawn child
// as a process argument sends the memfd along). Nothing has a name in
// /dev/shm: nothing can leak.
//
// What every process sees:
// - acquire() takes a permit, waiting while there is none; acquire(t) waits
//   at most t (false if none came); try_acquire() never waits. release(n)
//   gives n permits back and wakes as many waiters. Any thread of any process
//   may release, as in Python: permits have no owner.
// - A bounded_semaphore refuses to hold more permits than it started with:
//   releasing one more is a value_error (Python's ValueError) and changes
//   nothing.
// - A process that dies holding permits does not give them back: a semaphore
//   cannot know who holds what (Python's cannot either). A process killed
//   while waiting takes nothing. Where permits must survive a crash, guard
//   the work with an isola::lock (robust) or give the waits a timeout.
// - Waiters poll for up to ISOLA_SPIN_US (20 µs) before they sleep, and every
//   sleep re-checks at least every 100 ms (a releaser killed between adding a
//   permit and waking a sleeper delays that sleeper by one slice at most).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/sync_segment.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

namespace detail {
struct semaphore_cell;
}

class semaphore {
 public:
  /// Largest count a semaphore can hold (Python's SEM_VALUE_MAX).
  static constexpr unsigned max_value = 0x7fffffffu;

  /// A semaphore holding `value` permits (value_error above max_value).
  explicit semaphore(unsigned value = 1);

  /// Takes a permit, waiting as long as it takes.
  void acquire();
  /// Takes a permit if one comes within timeout; false if not. value_error
  /// for a negative timeout.
  bool acquire(duration timeout);
  /// Takes a permit if one is there now.
  bool try_acquire();
  /// Gives n permits back. value_error if that would exceed the bound (a
  /// bounded_semaphore's initial value, or max_value): nothing is released.
  void release(unsigned n = 1);

  /// Permits available now (others may change it at any moment).
  unsigned get_value() const;
  /// bounded_semaphore: the initial value, the most it can hold; else max_value.
  unsigned bound() const;

  // BasicLockable, Lockable, TimedLockable: a permit is the "lock".
  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return try_acquire(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return take(detail::deadline::after_clamped(timeout));
  }
  template <class Clock, class Dur>
  bool try_lock_until(const std::chrono::time_point<Clock, Dur>& t) {
    return try_lock_for(t - Clock::now());
  }

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    ar(segment().export_fd());
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    ar(index);
    adopt(index, false);
  }

 protected:
  semaphore(unsigned value, unsigned bound, const char* memfd_name);
  void adopt(std::uint32_t index, bool must_be_bounded);

 private:
  bool take(const detail::deadline& d);
  detail::sync_segment& segment() const;
  detail::semaphore_cell& cell() const;

  std::shared_ptr<detail::sync_segment> seg_;
  detail::semaphore_cell* cell_ = nullptr;
};

/// A semaphore that never holds more than its initial value (Python's
/// BoundedSemaphore): one release too many is a value_error.
class bounded_semaphore : public semaphore {
 public:
  explicit bounded_semaphore(unsigned value = 1);

  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    ar(index);
    adopt(index, true);
  }
};

}  // namespace isola
