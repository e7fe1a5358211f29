// isola/condition.hpp — a condition variable between processes (Python's
// multiprocessing.Condition).
//
//   isola::condition cv;                       // with its own rlock
//   isola::condition cv2(some_lock);           // or with a lock / rlock
//   isola::process p(worker, cv);              // a copy goes to the child
//   {
//     std::unique_lock g(cv);                  // with cv:
//     cv.wait_for([&] { return ready.load(); });  //   cv.wait_for(pred)
//   }
//   { std::scoped_lock g(cv); ready.store(1); cv.notify_all(); }
//
// This is the same-host form: the waiters' table lives in a memfd shared by
// every process that has the condition (forkserver and spawn children
// receive it, and the lock's, as process arguments). The form that works
// between hosts is isola::distributed::condition (a coordinator actor); see
// docs/decisions.md, "Sync and shared state".
//
// What every process sees:
// - A condition is used with its lock held (lock()/unlock() on the condition
//   act on its lock). wait() releases the lock — all the way, for an rlock
//   held several times — sleeps until notified, and takes the lock back (to
//   the same depth) before it returns. Waiting or notifying without holding
//   the lock is a value_error (Python: RuntimeError/AssertionError).
// - notify(n) wakes the n processes (or threads) that have waited longest,
//   and only those: a wait that starts after the notify is not woken by it,
//   and no waiter wakes without a notify (no spurious wake-ups), as in
//   Python. notify_all() wakes every current waiter.
// - wait(t) returns false if not notified within t; wait_for(pred) waits
//   until pred() holds (checked with the lock held) and returns its last
//   value, wait_for(pred, t) gives up after t.
// - A waiter that dies (SIGKILL) is skipped by later notifies: a notify is
//   never spent on a dead process. If the lock's holder died, the waiter
//   that takes it back gets lock_owner_died after re-taking it (see
//   lock.hpp): it holds the lock when it catches the exception.
// - At most max_waiters (256) processes or threads wait at once; one more
//   is a value_error.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/sync_segment.hpp"
#include "isola/lock.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

namespace detail {
struct condition_cell;
}

class condition {
 public:
  /// How many waiters the table has room for.
  static constexpr unsigned max_waiters = 256;

  /// A condition with its own rlock (Python's default).
  condition();
  /// A condition on l: the lock travels with the condition.
  explicit condition(const plain_lock& l);
  explicit condition(const rlock& l);

  // The lock's operations (with cv: / cv.acquire() / cv.release()).
  void acquire() { lock_.acquire(); }
  bool acquire(duration timeout) { return lock_.acquire(timeout); }
  bool try_acquire() { return lock_.try_acquire(); }
  void release() { lock_.release(); }
  void lock() { lock_.acquire(); }
  void unlock() { lock_.release(); }
  bool try_lock() { return lock_.try_acquire(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return lock_.try_lock_for(timeout);
  }
  template <class Clock, class Dur>
  bool try_lock_until(const std::chrono::time_point<Clock, Dur>& t) {
    return lock_.try_lock_until(t);
  }

  /// Releases the lock, waits for a notify, takes the lock back.
  void wait() { wait_impl(detail::deadline::forever()); }
  /// The same, giving up after timeout: whether it was notified. The lock is
  /// held again when it returns either way.
  bool wait(duration timeout) { return wait_impl(detail::deadline::after(timeout)); }
  /// Waits until pred() holds; returns true (Python: wait_for(predicate)).
  template <class Pred>
  bool wait_for(Pred pred) {
    while (!pred()) wait();
    return true;
  }
  /// Waits until pred() holds or timeout passes (one deadline for the whole
  /// wait); returns pred()'s last value.
  template <class Pred>
  bool wait_for(Pred pred, duration timeout) {
    const auto d = detail::deadline::after(timeout);
    for (;;) {
      if (pred()) return true;
      if (d.expired()) return false;
      wait_impl(d);
    }
  }

  /// Wakes the n longest waiters (fewer if fewer wait).
  void notify(unsigned n = 1);
  /// Wakes every waiter.
  void notify_all();
  /// How many are waiting now (informational).
  unsigned n_waiting() const;

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    ar(segment().export_fd(), lock_);
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    detail::lock_base l;
    ar(index, l);
    adopt(index, std::move(l));
  }

 private:
  explicit condition(detail::lock_base l);
  bool wait_impl(const detail::deadline& d);
  void adopt(std::uint32_t index, detail::lock_base l);
  detail::sync_segment& segment() const;
  detail::condition_cell& cell() const;
  void check_held(const char* what) const;

  std::shared_ptr<detail::sync_segment> seg_;
  detail::condition_cell* cell_ = nullptr;
  detail::lock_base lock_;
};

}  // namespace isola
