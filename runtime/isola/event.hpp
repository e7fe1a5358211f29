// isola/event.hpp — a flag processes wait for (Python's multiprocessing.Event).
//
//   isola::event stop;
//   isola::process p(worker, stop);          // a copy goes to the child
//   stop.set();                              // every waiter wakes
//   while (!stop.is_set()) ...               // in the worker; or stop.wait(),
//   if (stop.wait(2s)) ...                   // wait(t) -> bool, try_wait()
//
// This is the same-host form: the flag is a futex word in a memfd shared by
// every process that has the event (fork shares the mapping; forkserver and
// spawn children receive the memfd as a process argument). Nothing has a name
// in /dev/shm. The form that works between hosts is
// isola::distributed::event (a coordinator actor, isola/distributed/event.hpp);
// see docs/decisions.md, "Sync and shared state".
//
// What every process sees:
// - set() makes is_set() true everywhere and wakes every waiter; clear()
//   makes it false. wait() returns at once while the flag is set, otherwise
//   when it is set. wait(t) returns the flag (false if not set within t).
// - A waiter that wakes returns true if the flag was set at any moment after
//   it started waiting, even if another process cleared it again before the
//   waiter ran (Python's wait() would miss such a short set()).
// - A waiter polls for up to ISOLA_SPIN_US (20 µs) before it sleeps (a
//   set() from a process on another CPU then costs no wake-up call); every
//   sleep re-checks at least every 100 ms, so a setter killed between setting
//   the flag and waking the sleepers delays them by one slice at most.
// - No owner, nothing to recover: a process dying at any point leaves the
//   event as set or clear.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/sync_segment.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

namespace detail {
struct event_cell;
}

class event {
 public:
  /// A new event, not set.
  event();

  /// Sets the flag and wakes every waiter.
  void set();
  /// Clears the flag.
  void clear();
  /// The flag now.
  bool is_set() const;
  /// Waits until the flag is set.
  void wait();
  /// Waits at most timeout; returns whether the flag was set (value_error for
  /// a negative timeout).
  bool wait(duration timeout);
  /// is_set(), named as the non-blocking form of wait().
  bool try_wait() const { return is_set(); }

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    ar(segment().export_fd());
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    ar(index);
    adopt(index);
  }

 private:
  bool wait_impl(const detail::deadline& d);
  void adopt(std::uint32_t index);
  detail::sync_segment& segment() const;
  detail::event_cell& cell() const;

  std::shared_ptr<detail::sync_segment> seg_;
  detail::event_cell* cell_ = nullptr;
};

}  // namespace isola
