// The managed value's ops: load, store, update.
#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

void managed_value::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::value_load: return cx.reply(r, mgr_status::ok, value_);
    case mgr_op::value_store:
      value_.assign(r.b.begin(), r.b.end());
      return cx.reply(r, mgr_status::ok);
    case mgr_op::value_update: {
      bytes slot;
      auto result = cx.apply(r, &value_, slot);
      if (!result) return;
      value_ = std::move(slot);
      return cx.reply(r, mgr_status::ok, *result);
    }
    default: return cx.reply_unknown(r);
  }
}

}  // namespace isola::detail::mgr
