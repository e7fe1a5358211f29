// The managed condition's ops: its reentrant lock's acquire and release,
// wait (the lock given up at any depth, a sleep until notify or the
// deadline, the lock taken back at that depth), notify(n) and locked.
#include <cstring>
#include <utility>

#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

void managed_condition::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::condition_acquire:
      if (holder_ == r.peer) {
        ++depth_;
        return cx.reply(r, mgr_status::ok);
      }
      if (holder_ == 0 && acquirers_.empty()) {
        holder_ = r.peer;
        depth_ = 1;
        bool died = std::exchange(owner_died_, false);
        return cx.reply(r, died ? mgr_status::owner_died : mgr_status::ok);
      }
      cx.park(acquirers_, r);
      return;
    case mgr_op::condition_release:
      if (holder_ != r.peer)
        return cx.reply_text(r, mgr_status::value_error,
                             "managed condition: cannot release un-acquired lock");
      if (--depth_ == 0) {
        holder_ = 0;
        grant(cx);
      }
      return cx.reply(r, mgr_status::ok);
    case mgr_op::condition_wait: return wait(cx, r);
    case mgr_op::condition_notify: return notify(cx, r);
    case mgr_op::condition_locked: return cx.reply_value(r, holder_ != 0);
    default: return cx.reply_unknown(r);
  }
}

void managed_condition::wait(object_context& cx, const request& r) {
  // Python: RuntimeError('cannot wait on un-acquired lock').
  if (holder_ != r.peer)
    return cx.reply_text(r, mgr_status::value_error,
                         "managed condition: cannot wait on un-acquired lock");
  const std::uint64_t depth = depth_;
  holder_ = 0;
  depth_ = 0;
  if (r.timeout_ns == 0) {
    // wait(0): not notified, but the lock is still taken back first.
    waiter w;
    w.peer = r.peer;
    w.req = r.id;
    w.count = depth;
    acquirers_.push_back(std::move(w));
  } else if (auto* w = cx.park(sleepers_, r)) {
    w->count = depth;
  }
  grant(cx);
}

void managed_condition::notify(object_context& cx, const request& r) {
  if (holder_ != r.peer)
    return cx.reply_text(r, mgr_status::value_error,
                         "managed condition: cannot notify on un-acquired lock");
  std::uint64_t n = 1;
  if (r.a.size() == 8) std::memcpy(&n, r.a.data(), 8);
  // The n longest sleepers queue for the lock, which the notifier holds.
  for (; n > 0 && !sleepers_.empty(); --n) {
    auto w = cx.take_front(sleepers_);
    w.timed = false;
    w.notified = true;
    acquirers_.push_back(std::move(w));
  }
  cx.reply(r, mgr_status::ok);
}

void managed_condition::grant(object_context& cx) {
  if (holder_ != 0 || acquirers_.empty()) return;
  auto w = cx.take_front(acquirers_);
  holder_ = w.peer;
  depth_ = w.count > 0 ? w.count : 1;
  bool died = std::exchange(owner_died_, false);
  auto st = died ? mgr_status::owner_died : mgr_status::ok;
  if (w.count == 0) return cx.reply(w.peer, w.req, st);
  // A wait's answer: whether it was notified.
  const std::byte b{static_cast<unsigned char>(w.notified ? 1 : 0)};
  cx.reply(w.peer, w.req, st, std::span(&b, 1));
}

bool managed_condition::expire(object_context& cx, std::uint64_t wid) {
  for (auto it = sleepers_.begin(); it != sleepers_.end(); ++it) {
    if (it->wid != wid) continue;
    // Its deadline passed un-notified: it takes the lock back before it
    // answers, however long that takes (Python's wait re-acquires).
    waiter w = std::move(*it);
    sleepers_.erase(it);
    w.timed = false;  // the deadline is gone already
    acquirers_.push_back(std::move(w));
    grant(cx);
    return true;
  }
  return cx.expire(acquirers_, wid);
}

void managed_condition::peer_lost(object_context& cx, std::uint64_t peer) {
  cx.forget_waiters(sleepers_, peer);
  cx.forget_waiters(acquirers_, peer);
  if (holder_ != peer) return;
  holder_ = 0;
  depth_ = 0;
  owner_died_ = true;
  ++cx.owner_deaths;
  grant(cx);
}

}  // namespace isola::detail::mgr
