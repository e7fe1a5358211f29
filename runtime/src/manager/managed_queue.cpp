// The managed queue's ops: put and get (blocking, with a deadline, or not at
// all), qsize, full; task_done and join (a joiner waits, with a deadline,
// until every item put is finished).
#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

void managed_queue::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::queue_put: return put(cx, r);
    case mgr_op::queue_get: return get(cx, r);
    case mgr_op::queue_size: return cx.reply_value(r, std::uint64_t(items_.size()));
    case mgr_op::queue_full: return cx.reply_value(r, maxsize_ != 0 && items_.size() >= maxsize_);
    case mgr_op::queue_task_done: return task_done(cx, r);
    case mgr_op::queue_join:
      if (unfinished_ == 0) return cx.reply(r, mgr_status::ok);
      cx.park(joiners_, r);
      return;
    default: return cx.reply_unknown(r);
  }
}

void managed_queue::put(object_context& cx, const request& r) {
  if (!getters_.empty()) {  // a getter waits: hand it over
    auto w = cx.take_front(getters_);
    ++unfinished_;
    cx.reply(w.peer, w.req, mgr_status::ok, r.b);
    return cx.reply(r, mgr_status::ok);
  }
  if (maxsize_ == 0 || items_.size() < maxsize_) {
    ++unfinished_;
    items_.emplace_back(r.b.begin(), r.b.end());
    return cx.reply(r, mgr_status::ok);
  }
  if (auto* w = cx.park(putters_, r)) w->item.assign(r.b.begin(), r.b.end());
}

void managed_queue::get(object_context& cx, const request& r) {
  if (!items_.empty()) {
    bytes v = std::move(items_.front());
    items_.pop_front();
    if (!putters_.empty()) {  // room now: the first waiting put goes in
      auto w = cx.take_front(putters_);
      items_.push_back(std::move(w.item));
      ++unfinished_;
      cx.reply(w.peer, w.req, mgr_status::ok);
    }
    return cx.reply(r, mgr_status::ok, v);
  }
  cx.park(getters_, r);
}

void managed_queue::task_done(object_context& cx, const request& r) {
  // Python: ValueError('task_done() called too many times').
  if (unfinished_ == 0)
    return cx.reply_text(r, mgr_status::value_error,
                         "managed queue: task_done() called more times than items were put");
  if (--unfinished_ == 0)
    while (!joiners_.empty()) {
      auto w = cx.take_front(joiners_);
      cx.reply(w.peer, w.req, mgr_status::ok);
    }
  cx.reply(r, mgr_status::ok);
}

void managed_queue::peer_lost(object_context& cx, std::uint64_t peer) {
  cx.forget_waiters(getters_, peer);
  cx.forget_waiters(putters_, peer);
  cx.forget_waiters(joiners_, peer);
}

bool managed_queue::expire(object_context& cx, std::uint64_t wid) {
  return cx.expire(getters_, wid) || cx.expire(putters_, wid) || cx.expire(joiners_, wid);
}

}  // namespace isola::detail::mgr
