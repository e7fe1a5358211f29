// The managed semaphore's ops: acquire (blocking, with a deadline, or not at
// all), release (waking the first waiter; a bounded one refuses to go past
// its initial value) and value.
#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

void managed_semaphore::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::semaphore_acquire:
      // First come, first served: a newcomer does not overtake a waiter.
      if (value_ > 0 && acquirers_.empty()) {
        --value_;
        return cx.reply(r, mgr_status::ok);
      }
      cx.park(acquirers_, r);
      return;
    case mgr_op::semaphore_release:
      if (bounded_ && value_ >= bound_)
        return cx.reply_text(r, mgr_status::value_error,
                             "managed bounded_semaphore: released too many times");
      if (!acquirers_.empty()) {
        // The count goes straight to the first waiter.
        auto w = cx.take_front(acquirers_);
        cx.reply(w.peer, w.req, mgr_status::ok);
      } else {
        ++value_;
      }
      return cx.reply(r, mgr_status::ok);
    case mgr_op::semaphore_value: return cx.reply_value(r, value_);
    default: return cx.reply_unknown(r);
  }
}

}  // namespace isola::detail::mgr
