// isola/distributed/condition.hpp — a condition variable (with its lock)
// held by a coordinator actor, so that processes on other nodes can share it.
//
//   auto cv = isola::distributed::condition::create();
//   {
//     std::unique_lock lk(cv);                 // the condition's own lock
//     cv.wait_for([&] { return ready(); });    // releases it while waiting
//   }
//   ... elsewhere, holding the lock: cv.notify();  cv.notify_all();
//
// The coordinator owns the lock (re-entrant, as Python's default RLock) and
// the waiters. wait() is one request: the coordinator releases the lock,
// parks the waiter, and answers when a notify() has picked it and the lock
// is its again. Owners are threads (a random token per thread), whichever
// process or node they live in.
//
// What every process sees: notify(n) wakes the n longest waiters, each
// holding the lock again when its wait returns; wait(t) returns false on a
// timeout, also holding the lock again; a waiter or holder that dies is
// dropped, and a lock held by a dead process passes to the next acquirer.
// wait/notify/release without holding the lock are value_errors. If the
// coordinator dies, every call fails with actor_exited. isola::condition is
// the same-host fast path.
#pragma once

#include <chrono>
#include <optional>

#include "isola/actor.hpp"
#include "isola/detail/coordination.hpp"
#include "isola/node.hpp"

namespace isola::distributed {

class condition : public detail::coord::client {
 public:
  condition() = default;

  /// Starts a coordinator on this host (root only).
  static condition create(spawn_options opts = {}) {
    if (opts.name.empty()) opts.name = "isola.condition";
    return condition(spawn(opts, &detail::coord::condition_coordinator));
  }
  /// Starts the coordinator on node `where`.
  static condition create(const node& where, spawn_options opts = {}) {
    if (opts.name.empty()) opts.name = "isola.condition";
    return condition(where.spawn(opts, &detail::coord::condition_coordinator));
  }

  // The lock.
  void acquire() const { (void)acquire_impl(true, std::nullopt); }
  bool acquire(duration t) const { return acquire_impl(true, t); }
  bool try_acquire() const { return acquire_impl(false, std::nullopt); }
  void release() const {
    if (c().request<std::int32_t>(detail::coord::cv_release{detail::coord::caller_token()}).get() !=
        detail::coord::ok)
      throw value_error(
          "isola::distributed::condition: release of a lock this thread does not hold");
  }
  void lock() const { acquire(); }
  void unlock() const { release(); }
  bool try_lock() const { return try_acquire(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& t) const {
    return acquire(std::chrono::duration_cast<duration>(t));
  }

  /// Releases the lock, waits for a notify, and holds the lock again.
  void wait() const {
    check(c().request<std::int32_t>(
                 detail::coord::cv_wait{detail::coord::caller_token(), detail::coord::new_ticket()})
              .get(),
          "wait");
  }
  /// As wait(), at most t: false on a timeout (the lock is held again either way).
  bool wait(duration t) const {
    namespace co = detail::coord;
    const auto ticket = co::new_ticket();
    // On time: ok (notified) or not_owner; after a timeout: ok (notified
    // meanwhile) or not_now (timed out), the lock held again either way.
    auto st = co::ask<std::int32_t>(c(), co::cv_wait{co::caller_token(), ticket}, t,
                                    co::cv_timed_out{ticket, true});
    check(st, "wait");
    return st == co::ok;
  }
  /// Waits until pred() is true (checked with the lock held); returns it.
  template <class Pred>
  bool wait_for(Pred pred) const {
    while (!pred()) wait();
    return true;
  }
  /// As wait_for(pred), giving up after t in all: returns pred()'s last value.
  template <class Pred>
  bool wait_for(Pred pred, duration t) const {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(t);
    bool r = pred();
    while (!r) {
      auto left = std::chrono::duration_cast<duration>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      wait(left);
      r = pred();
    }
    return r;
  }
  /// Wakes up to n waiters (the longest waiting first).
  void notify(std::int64_t n = 1) const {
    if (n < 0) throw value_error("isola::distributed::condition::notify: n must not be negative");
    check(
        c().request<std::int32_t>(detail::coord::cv_notify{detail::coord::caller_token(), n}).get(),
        "notify");
  }
  void notify_all() const {
    check(c().request<std::int32_t>(detail::coord::cv_notify{detail::coord::caller_token(), -1})
              .get(),
          "notify_all");
  }

  template <class Archive>
  void serialize(Archive& ar) {
    ar(coord_);
  }

 private:
  explicit condition(actor a) : client(std::move(a)) {}
  const actor& c() const { return checked("condition"); }
  static void check(std::int32_t st, const char* what) {
    if (st == detail::coord::not_owner)
      throw value_error(std::string("isola::distributed::condition::") + what +
                        ": the condition's lock is not held by this thread");
  }
  bool acquire_impl(bool blocking, std::optional<duration> t) const {
    const auto ticket = detail::coord::new_ticket();
    detail::coord::cv_acquire m{detail::coord::caller_token(), ticket, blocking};
    return detail::coord::ask<std::int32_t>(
               c(), m, t, detail::coord::cv_timed_out{ticket, false}) == detail::coord::ok;
  }
};

}  // namespace isola::distributed
