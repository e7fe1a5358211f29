// The manager's deadlines: when a blocked call (a lock acquire, an event wait,
// a queue get or put) times out, and when a handshake is overdue; and the
// waiter that a blocked call becomes while it waits.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>

#include "isola/codec.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

using clk = std::chrono::steady_clock;

/// What a deadline is for: waiter `id` of object `object`, or, when object is
/// 0, the handshake of peer `id`.
struct deadline_target {
  std::uint64_t object = 0;
  std::uint64_t id = 0;
};

/// All deadlines in one ordered map, so the loop sleeps exactly until the first.
class deadlines {
 public:
  using handle = std::multimap<clk::time_point, deadline_target>::iterator;

  handle add(clk::time_point at, deadline_target t) { return map_.emplace(at, t); }
  void cancel(handle h) { map_.erase(h); }
  /// epoll_wait's timeout: -1 with none pending, else the milliseconds to the
  /// first (rounded up, so we never wake just before it).
  int wait_ms() const;
  /// Takes the first deadline that has passed at `now`, if any.
  std::optional<deadline_target> pop_due(clk::time_point now);
  std::uint64_t next_waiter_id() noexcept { return ++next_wid_; }

 private:
  std::multimap<clk::time_point, deadline_target> map_;
  std::uint64_t next_wid_ = 0;
};

/// A blocked call, kept with its object until it can be answered.
struct waiter {
  std::uint64_t wid = 0;
  std::uint64_t peer = 0;
  std::uint64_t req = 0;
  bool timed = false;
  deadlines::handle timer;
  bytes item;  // a queue put's item
  // A condition waiter: its lock's depth to restore (0: a plain acquire);
  // a barrier waiter: its arrival index.
  std::uint64_t count = 0;
  bool notified = false;  // a condition waiter: woken by notify, not by its deadline
};

using waiter_queue = std::deque<waiter>;

}  // namespace isola::detail::mgr
