// The managed event's ops: set (waking every waiter), clear, is_set, wait
// (blocking, with a deadline, or not at all).
#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

void managed_event::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::event_set:
      flag_ = true;
      while (!waiters_.empty()) {
        auto w = cx.take_front(waiters_);
        cx.reply(w.peer, w.req, mgr_status::ok);
      }
      return cx.reply(r, mgr_status::ok);
    case mgr_op::event_clear: flag_ = false; return cx.reply(r, mgr_status::ok);
    case mgr_op::event_is_set: return cx.reply_value(r, flag_);
    case mgr_op::event_wait:
      if (flag_) return cx.reply(r, mgr_status::ok);
      cx.park(waiters_, r);
      return;
    default: return cx.reply_unknown(r);
  }
}

}  // namespace isola::detail::mgr
