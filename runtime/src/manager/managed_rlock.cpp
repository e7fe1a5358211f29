// The managed rlock's ops: acquire (again by its holder, or blocking with a
// deadline, or not at all) and release; a holder's death releases it at any
// depth, and the next holder hears owner_died.
#include <utility>

#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

void managed_rlock::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::rlock_acquire:
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
    case mgr_op::rlock_release:
      if (holder_ != r.peer)
        return cx.reply_text(r, mgr_status::value_error,
                             "managed rlock: cannot release un-acquired lock");
      if (--depth_ == 0) {
        holder_ = 0;
        grant(cx);
      }
      return cx.reply(r, mgr_status::ok);
    default: return cx.reply_unknown(r);
  }
}

void managed_rlock::grant(object_context& cx) {
  if (holder_ != 0 || acquirers_.empty()) return;
  auto w = cx.take_front(acquirers_);
  holder_ = w.peer;
  depth_ = 1;
  bool died = std::exchange(owner_died_, false);
  cx.reply(w.peer, w.req, died ? mgr_status::owner_died : mgr_status::ok);
}

void managed_rlock::peer_lost(object_context& cx, std::uint64_t peer) {
  cx.forget_waiters(acquirers_, peer);
  if (holder_ != peer) return;
  holder_ = 0;
  depth_ = 0;
  owner_died_ = true;
  ++cx.owner_deaths;
  grant(cx);
}

}  // namespace isola::detail::mgr
