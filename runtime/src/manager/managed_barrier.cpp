// The managed barrier's ops: wait (its arrival index, or broken_barrier),
// reset, abort, and its state (parties, n_waiting, broken).
#include <cstring>
#include <tuple>
#include <utility>

#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

managed_barrier::managed_barrier(mgr_create_spec& spec) : parties_(spec.maxsize) {
  if (parties_ == 0) throw value_error("a managed barrier needs at least one party");
  if (spec.init.size() == 8) std::memcpy(&default_timeout_ns_, spec.init.data(), 8);
}

void managed_barrier::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::barrier_wait: return wait(cx, r);
    case mgr_op::barrier_reset:
      // Python: the waiters of the round get BrokenBarrierError; the
      // barrier is whole again.
      break_round(cx);
      broken_ = false;
      return cx.reply(r, mgr_status::ok);
    case mgr_op::barrier_abort:
      broken_ = true;
      break_round(cx);
      return cx.reply(r, mgr_status::ok);
    case mgr_op::barrier_state:
      return cx.reply_value(r, std::make_tuple(parties_, std::uint64_t(waiters_.size()), broken_));
    default: return cx.reply_unknown(r);
  }
}

void managed_barrier::wait(object_context& cx, const request& r) {
  if (broken_) return cx.reply(r, mgr_status::broken_barrier);
  const std::uint64_t index = waiters_.size();
  if (index + 1 == parties_) {
    // The round is full: the count is back to 0 before anyone hears.
    waiter_queue round = std::move(waiters_);
    waiters_.clear();
    std::uint64_t i = 0;
    for (; !round.empty(); ++i) {
      auto w = cx.take_front(round);
      cx.reply(w.peer, w.req, mgr_status::ok, std::as_bytes(std::span(&w.count, 1)));
    }
    return cx.reply(r, mgr_status::ok, std::as_bytes(std::span(&index, 1)));
  }
  request timed = r;
  if (timed.timeout_ns < 0) timed.timeout_ns = default_timeout_ns_;
  if (timed.timeout_ns == 0) {
    // A wait that may not wait breaks the barrier, as its timeout would.
    broken_ = true;
    break_round(cx);
    return cx.reply(r, mgr_status::broken_barrier);
  }
  if (auto* w = cx.park(waiters_, timed)) w->count = index;
}

void managed_barrier::break_round(object_context& cx) {
  while (!waiters_.empty()) {
    auto w = cx.take_front(waiters_);
    cx.reply(w.peer, w.req, mgr_status::broken_barrier);
  }
}

bool managed_barrier::expire(object_context& cx, std::uint64_t wid) {
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->wid != wid) continue;
    auto peer = it->peer, req = it->req;
    waiters_.erase(it);  // its deadline is gone already
    cx.reply(peer, req, mgr_status::broken_barrier);
    broken_ = true;
    break_round(cx);
    return true;
  }
  return false;
}

void managed_barrier::peer_lost(object_context& cx, std::uint64_t peer) {
  bool had = false;
  for (auto& w : waiters_) had = had || w.peer == peer;
  if (!had) return;
  cx.forget_waiters(waiters_, peer);
  broken_ = true;
  break_round(cx);
}

}  // namespace isola::detail::mgr
