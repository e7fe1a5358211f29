// The managed list's ops: append, get / set / pop at an index (negative
// counts from the end), size, items, clear.
#include <algorithm>
#include <cstring>
#include <string>

#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

namespace {
/// An array's cells, all told: one request must not make the manager
/// allocate without bound.
constexpr std::uint64_t max_array_bytes = std::uint64_t{1} << 28;
}  // namespace

managed_list::managed_list(mgr_create_spec& spec) : fixed_(spec.maxsize > 0) {
  if (!fixed_) return;
  const std::uint64_t cell = std::max<std::uint64_t>(spec.init.size(), 1);
  if (spec.maxsize > max_array_bytes / cell)
    throw value_error("a managed array of " + std::to_string(spec.maxsize) + " elements of " +
                      std::to_string(spec.init.size()) + " bytes is over the manager's " +
                      std::to_string(max_array_bytes >> 20) + " MiB for one array");
  items_.assign(static_cast<std::size_t>(spec.maxsize), spec.init);
}

void managed_list::handle(object_context& cx, const request& r) {
  if (fixed_ &&
      (r.op == mgr_op::list_append || r.op == mgr_op::list_pop || r.op == mgr_op::list_clear))
    return cx.reply_text(r, mgr_status::value_error,
                         "a managed array has a fixed size: no append, pop or clear");
  switch (r.op) {
    case mgr_op::list_append:
      items_.emplace_back(r.b.begin(), r.b.end());
      return cx.reply(r, mgr_status::ok);
    case mgr_op::list_get:
    case mgr_op::list_set:
    case mgr_op::list_pop: return at_index(cx, r);
    case mgr_op::list_size: return cx.reply_value(r, std::uint64_t(items_.size()));
    case mgr_op::list_items: {
      auto& out = cx.scratch();
      out.clear();
      put_u64(out, items_.size());
      for (auto& e : items_) put_element(out, e);
      return cx.reply(r, mgr_status::ok, out);
    }
    case mgr_op::list_clear: items_.clear(); return cx.reply(r, mgr_status::ok);
    default: return cx.reply_unknown(r);
  }
}

void managed_list::at_index(object_context& cx, const request& r) {
  std::int64_t i = 0;
  if (r.a.size() != 8) throw decode_error("a list index must be 8 bytes");
  std::memcpy(&i, r.a.data(), 8);
  auto size = static_cast<std::int64_t>(items_.size());
  std::int64_t j = i < 0 ? i + size : i;
  if (j < 0 || j >= size)
    return cx.reply_text(r, mgr_status::index_error,
                         size == 0 && r.op == mgr_op::list_pop
                             ? std::string("pop from an empty managed list")
                             : std::string(fixed_ ? "managed array" : "managed list") + " index " +
                                   std::to_string(i) + " out of range (size " +
                                   std::to_string(size) + ")");
  auto idx = static_cast<std::size_t>(j);
  if (r.op == mgr_op::list_get) return cx.reply(r, mgr_status::ok, items_[idx]);
  if (r.op == mgr_op::list_set) {
    items_[idx].assign(r.b.begin(), r.b.end());
    return cx.reply(r, mgr_status::ok);
  }
  bytes v = std::move(items_[idx]);
  items_.erase(items_.begin() + j);
  cx.reply(r, mgr_status::ok, v);
}

}  // namespace isola::detail::mgr
