// The manager's objects: every managed object by id (and by name, when it
// has one), each a std::variant over the kinds, so that a request goes to
// its kind's handlers without a switch over every op.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>

#include "manager/object_kinds.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

struct managed_object {
  // In mgr_kind's order: the kind is the index + 1.
  using state = std::variant<managed_dict, managed_list, managed_queue, managed_lock, managed_event,
                             managed_value, managed_semaphore, managed_rlock, managed_condition,
                             managed_barrier, managed_user>;

  std::uint64_t id = 0;
  std::uint64_t type = 0;  // a hash of the element types
  std::string type_name;
  std::string name;
  state kind_state;

  mgr_kind kind() const noexcept { return static_cast<mgr_kind>(kind_state.index() + 1); }
};

class object_store {
 public:
  /// mgr_op::create: a new object, or the named one that already exists.
  void create(object_context& cx, const request& r);
  /// One of a kind's ops, on the object r names.
  void handle(object_context& cx, const request& r);
  /// A peer died: every object drops its waiters and releases its locks.
  void peer_lost(object_context& cx, std::uint64_t peer);
  /// Waiter wid of object `object` ran out of time.
  void expire(object_context& cx, std::uint64_t object, std::uint64_t wid);

  std::uint64_t size() const noexcept { return objects_.size(); }
  std::uint64_t waiting() const;

 private:
  managed_object* find(object_context& cx, const request& r, mgr_kind kind);

  // Ordered by id, so a dead peer's locks are handed on in creation order.
  std::map<std::uint64_t, std::unique_ptr<managed_object>> objects_;
  std::unordered_map<std::string, std::uint64_t> named_;
  std::uint64_t next_object_ = 1;
};

}  // namespace isola::detail::mgr
