// The managed lock's ops: acquire (blocking, with a deadline, or not at all)
// and release; a holder's death releases it, and the next holder hears
// owner_died.
#include <utility>

#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

void managed_lock::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::lock_acquire: return acquire(cx, r);
    case mgr_op::lock_release: return release(cx, r);
    default: return cx.reply_unknown(r);
  }
}

void managed_lock::acquire(object_context& cx, const request& r) {
  if (holder_ == r.peer)
    return cx.reply_text(r, mgr_status::value_error,
                         "managed lock: acquired again by its holder (it would deadlock)");
  if (holder_ == 0 && acquirers_.empty()) {
    holder_ = r.peer;
    bool died = std::exchange(owner_died_, false);
    return cx.reply(r, died ? mgr_status::owner_died : mgr_status::ok);
  }
  cx.park(acquirers_, r);
}

void managed_lock::release(object_context& cx, const request& r) {
  if (holder_ != r.peer)
    return cx.reply_text(r, mgr_status::value_error,
                         holder_ == 0 ? "managed lock: released while not held"
                                      : "managed lock: released by a thread or process that "
                                        "does not hold it");
  holder_ = 0;
  grant(cx);
  cx.reply(r, mgr_status::ok);
}

void managed_lock::grant(object_context& cx) {
  if (holder_ != 0 || acquirers_.empty()) return;
  auto w = cx.take_front(acquirers_);
  holder_ = w.peer;
  bool died = std::exchange(owner_died_, false);
  cx.reply(w.peer, w.req, died ? mgr_status::owner_died : mgr_status::ok);
}

void managed_lock::peer_lost(object_context& cx, std::uint64_t peer) {
  cx.forget_waiters(acquirers_, peer);
  if (holder_ != peer) return;
  holder_ = 0;
  owner_died_ = true;
  ++cx.owner_deaths;
  grant(cx);
}

}  // namespace isola::detail::mgr
