// The managed dict's ops: get, set, erase, contains, size, clear, keys /
// values / items (in insertion order), update.
#include <algorithm>

#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

void managed_dict::handle(object_context& cx, const request& r) {
  switch (r.op) {
    case mgr_op::dict_get: {
      auto it = entries_.find(key(r.a));
      if (it == entries_.end()) return cx.reply(r, mgr_status::key_error);
      return cx.reply(r, mgr_status::ok, it->second.value);
    }
    case mgr_op::dict_set: {
      auto [it, fresh] = entries_.try_emplace(key(r.a));
      if (fresh) it->second.seq = ++seq_;
      it->second.value.assign(r.b.begin(), r.b.end());
      return cx.reply(r, mgr_status::ok);
    }
    case mgr_op::dict_erase: return cx.reply_value(r, entries_.erase(key(r.a)) > 0);
    case mgr_op::dict_contains: return cx.reply_value(r, entries_.count(key(r.a)) > 0);
    case mgr_op::dict_size: return cx.reply_value(r, std::uint64_t(entries_.size()));
    case mgr_op::dict_clear: entries_.clear(); return cx.reply(r, mgr_status::ok);
    case mgr_op::dict_keys:
    case mgr_op::dict_values:
    case mgr_op::dict_items: return reply_elements(cx, r);
    case mgr_op::dict_update: return update(cx, r);
    default: return cx.reply_unknown(r);
  }
}

void managed_dict::reply_elements(object_context& cx, const request& r) {
  std::vector<const std::pair<const std::string, entry>*> order;
  order.reserve(entries_.size());
  for (auto& e : entries_) order.push_back(&e);
  std::sort(order.begin(), order.end(),
            [](auto* x, auto* y) { return x->second.seq < y->second.seq; });
  auto& out = cx.scratch();
  out.clear();
  put_u64(out, order.size());
  for (auto* e : order) {
    if (r.op != mgr_op::dict_values) put_element(out, text(e->first));
    if (r.op != mgr_op::dict_keys) put_element(out, e->second.value);
  }
  cx.reply(r, mgr_status::ok, out);
}

void managed_dict::update(object_context& cx, const request& r) {
  auto k = key(r.a);
  auto it = entries_.find(k);
  bytes slot;
  auto result = cx.apply(r, it == entries_.end() ? nullptr : &it->second.value, slot);
  if (!result) return;
  if (it == entries_.end()) {
    it = entries_.try_emplace(std::move(k)).first;
    it->second.seq = ++seq_;
  }
  it->second.value = std::move(slot);
  cx.reply(r, mgr_status::ok, *result);
}

}  // namespace isola::detail::mgr
