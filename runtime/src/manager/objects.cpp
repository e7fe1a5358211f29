// The manager's objects (see objects.hpp): creating them, and routing each
// request, peer death and deadline to its object's kind.
#include "manager/objects.hpp"

#include <utility>

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

namespace {

const char* kind_name(mgr_kind k) {
  switch (k) {
    case mgr_kind::dict: return "dict";
    case mgr_kind::list: return "list";
    case mgr_kind::queue: return "queue";
    case mgr_kind::lock: return "lock";
    case mgr_kind::event: return "event";
    case mgr_kind::value: return "value";
    case mgr_kind::semaphore: return "semaphore";
    case mgr_kind::rlock: return "rlock";
    case mgr_kind::condition: return "condition";
    case mgr_kind::barrier: return "barrier";
    case mgr_kind::object: return "registered type";
  }
  return "object";
}

/// Each kind owns a block of 16 op numbers (manager_wire.hpp); the manager's
/// own ops (and unknown numbers below the list's block) count as the dict's.
mgr_kind kind_of(mgr_op op) {
  if (op < mgr_op::list_append) return mgr_kind::dict;
  if (op < mgr_op::queue_put) return mgr_kind::list;
  if (op < mgr_op::lock_acquire) return mgr_kind::queue;
  if (op < mgr_op::event_set) return mgr_kind::lock;
  if (op < mgr_op::value_load) return mgr_kind::event;
  if (op < mgr_op::semaphore_acquire) return mgr_kind::value;
  if (op < mgr_op::rlock_acquire) return mgr_kind::semaphore;
  if (op < mgr_op::condition_acquire) return mgr_kind::rlock;
  if (op < mgr_op::barrier_wait) return mgr_kind::condition;
  if (op < mgr_op::object_call) return mgr_kind::barrier;
  return mgr_kind::object;
}

/// The state of kind k (1-based, mgr_kind's order), built from the spec.
template <std::size_t... I>
managed_object::state make_state(std::size_t k, mgr_create_spec& spec, std::index_sequence<I...>) {
  using state = managed_object::state;
  static constexpr state (*make[])(mgr_create_spec&) = {
      [](mgr_create_spec& s) { return state(std::in_place_index<I>, s); }...};
  return make[k - 1](spec);
}

}  // namespace

void object_store::create(object_context& cx, const request& r) {
  auto spec = decode<mgr_create_spec>(r.b);
  auto kind = static_cast<mgr_kind>(spec.kind);
  if (spec.kind < 1 || spec.kind > static_cast<std::uint8_t>(mgr_kind::object))
    return cx.reply_text(r, mgr_status::value_error, "unknown kind of managed object");
  std::string name = key(r.a);
  if (!name.empty()) {
    if (auto it = named_.find(name); it != named_.end()) {
      auto& o = *objects_.at(it->second);
      if (o.kind() != kind || o.type != spec.type)
        return cx.reply_text(r, mgr_status::type_error,
                             "the managed object '" + name + "' is a " + kind_name(o.kind()) + "<" +
                                 o.type_name + ">, not a " + kind_name(kind) + "<" +
                                 spec.type_name + ">");
      return cx.reply_value(r, o.id);
    }
  }
  std::unique_ptr<managed_object> o;
  try {
    o = std::make_unique<managed_object>(managed_object{
        next_object_, spec.type, spec.type_name, name,
        make_state(spec.kind, spec,
                   std::make_index_sequence<std::variant_size_v<managed_object::state>>{})});
  } catch (const type_error& e) {
    // A registered type made from other arguments (other errors are the
    // server's value_error).
    return cx.reply_text(r, mgr_status::type_error, e.what());
  }
  ++next_object_;
  auto id = o->id;
  objects_.emplace(id, std::move(o));
  if (!name.empty()) named_.emplace(name, id);
  cx.reply_value(r, id);
}

managed_object* object_store::find(object_context& cx, const request& r, mgr_kind kind) {
  auto it = objects_.find(r.object);
  if (it == objects_.end()) {
    cx.reply_text(r, mgr_status::value_error,
                  "the manager has no object #" + std::to_string(r.object) +
                      " (a proxy of another manager, or of one that restarted?)");
    return nullptr;
  }
  if (it->second->kind() != kind) {
    cx.reply_text(r, mgr_status::type_error,
                  std::string("managed object #") + std::to_string(r.object) + " is a " +
                      kind_name(it->second->kind()) + ", not a " + kind_name(kind));
    return nullptr;
  }
  return it->second.get();
}

void object_store::handle(object_context& cx, const request& r) {
  auto* o = find(cx, r, kind_of(r.op));
  if (!o) return;
  std::visit([&](auto& s) { s.handle(cx, r); }, o->kind_state);
}

void object_store::peer_lost(object_context& cx, std::uint64_t peer) {
  for (auto& [id, o] : objects_) std::visit([&](auto& s) { s.peer_lost(cx, peer); }, o->kind_state);
}

void object_store::expire(object_context& cx, std::uint64_t object, std::uint64_t wid) {
  auto it = objects_.find(object);
  if (it == objects_.end()) return;
  std::visit([&](auto& s) { s.expire(cx, wid); }, it->second->kind_state);
}

std::uint64_t object_store::waiting() const {
  std::uint64_t n = 0;
  for (auto& [id, o] : objects_)
    n += std::visit([](auto& s) { return s.waiting(); }, o->kind_state);
  return n;
}

}  // namespace isola::detail::mgr
