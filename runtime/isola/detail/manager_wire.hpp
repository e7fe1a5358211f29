// isola/detail/manager_wire.hpp — what a managed proxy sends its manager, and
// the client side of the conversation (one connection per process and thread,
// opened on first use). Internal: included by isola/managed.hpp.
//
// A request is a frame on the manager's socket (after the handshake):
//
//   u32 length | u64 request id | u8 op | u8 0 | u16 0 | u32 alen | u64 object
//              | i64 timeout_ns (-1 forever, 0 now) | a[alen] | b[rest]
//
// and its reply
//
//   u32 length | u64 request id | u32 status | payload
//
// Keys and values travel as their isola::encode bytes; the manager stores the
// bytes and decodes nothing but update()'s arguments, in the trampoline the
// proxy names. Lists of elements (keys(), items()) come back as u64 count and,
// per element, u32 length + bytes. See docs/decisions.md, Manager.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "isola/codec.hpp"
#include "isola/detail/function_address.hpp"
#include "isola/error.hpp"

namespace isola::detail {

// The numbers are the wire's: each kind owns a block of 16 (the manager finds
// an op's kind by its block), so new ops go at the end of their block.
enum class mgr_op : std::uint8_t {
  create = 1,
  shutdown,
  serve,
  stats,
  dict_get = 16,
  dict_set,
  dict_erase,
  dict_contains,
  dict_size,
  dict_keys,
  dict_items,
  dict_values,
  dict_clear,
  dict_update,
  list_append = 32,
  list_get,
  list_set,
  list_size,
  list_pop,
  list_items,
  list_clear,
  queue_put = 48,
  queue_get,
  queue_size,
  queue_full,
  queue_task_done,  // joinable_queue: one item put is finished
  queue_join,       // joinable_queue: waits until every item put is finished
  lock_acquire = 64,
  lock_release,
  event_set = 80,
  event_clear,
  event_is_set,
  event_wait,
  value_load = 96,
  value_store,
  value_update,
  semaphore_acquire = 112,
  semaphore_release,
  semaphore_value,
  rlock_acquire = 128,
  rlock_release,
  condition_acquire = 144,
  condition_release,
  condition_wait,    // releases its lock, waits for a notify, takes the lock back
  condition_notify,  // a: u64 n (all: UINT64_MAX)
  condition_locked,
  barrier_wait = 160,  // replies the arrival index, or broken_barrier
  barrier_reset,
  barrier_abort,
  barrier_state,      // (parties, n_waiting, broken)
  object_call = 176,  // a registered user type's method: a the method's name
};

enum class mgr_status : std::uint32_t {
  ok = 0,
  owner_died,  // a lock was taken, and its previous holder had died holding it
  timeout,     // a timed or non-blocking wait ran out
  key_error,
  index_error,
  value_error,
  type_error,
  remote_error,  // an update function threw: "type\nwhat"
  error,
  broken_barrier,  // a barrier wait: the barrier is or became broken
};

enum class mgr_kind : std::uint8_t {
  dict = 1,
  list,
  queue,
  lock,
  event,
  value,
  semaphore,
  rlock,
  condition,
  barrier,
  object,  // an instance of a type registered with manager::register_type
};

/// Where a manager is and how to prove we may talk to it.
struct manager_address {
  std::string socket;  // abstract AF_UNIX name, without the leading NUL; empty over TCP
  std::string host;    // TCP host (when socket is empty)
  std::uint16_t port = 0;
  int pid = 0;  // the manager process, when it runs on this host (for messages)
  std::string authkey;
  bool tls = false;  // TLS after the handshake (TCP only)

  /// "the manager (pid 123)" or "the manager at 127.0.0.1:5000".
  std::string describe() const;
  /// Identifies the connection this process opens to it.
  std::string cache_key() const {
    return socket.empty() ? host + ":" + std::to_string(port) + (tls ? "/tls" : "")
                          : "@" + socket;
  }

  template <class Archive>
  void serialize(Archive& ar) {
    ar(socket, host, port, pid, authkey, tls);
  }
};

/// One request and its reply over this thread's connection to the manager
/// (opened, authenticated and cached on first use; a fork child opens its
/// own). Returns the reply's payload, valid until this thread's next call.
/// Throws manager_error if the manager cannot be reached or dies before it
/// answers, authentication_error if it refuses the key; other statuses are
/// returned in `status` for the caller to turn into its own answer (see
/// check_reply).
std::span<const std::byte> manager_call(const manager_address& addr, mgr_op op,
                                        std::uint64_t object, std::int64_t timeout_ns,
                                        std::span<const std::byte> a, std::span<const std::byte> b,
                                        mgr_status& status);

/// Throws the exception for an error status (key_error, index_error,
/// value_error, type_error, remote_error, manager_error); returns for ok,
/// owner_died and timeout.
void check_reply(const manager_address& addr, mgr_status status,
                 std::span<const std::byte> payload);

/// Drops this thread's connection to addr (after a shutdown).
void manager_forget(const manager_address& addr) noexcept;

/// -1 for none (wait forever), else nanoseconds >= 0; value_error if negative.
std::int64_t to_timeout_ns(std::chrono::duration<double> t);

/// Identifies the program (the main executable's GNU build-id, or its path,
/// size and modification time): update() functions travel as addresses, so
/// the manager runs them only for clients running the same program.
const std::array<std::uint8_t, 32>& program_identity();

/// update(): runs fn on the encoded value in slot (the initial value if the
/// key was absent), writes the new encoding back, returns the reply.
using mgr_apply_fn = bytes (*)(const void* fn, bytes& slot, std::span<const std::byte> args);

struct mgr_apply_spec {
  function_address trampoline;
  function_address fn;
  bytes initial;
  bytes args;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(trampoline, fn, initial, args);
  }
};

struct mgr_create_spec {
  std::uint8_t kind = 0;
  std::uint64_t type =
      0;  // a hash of the element types: a named object opened with others is a type_error
  std::uint64_t maxsize = 0;
  bytes init;
  std::string type_name;  // for the message of that type_error
  template <class Archive>
  void serialize(Archive& ar) {
    ar(kind, type, maxsize, init, type_name);
  }
};

/// Reads the element list format: u64 count, then u32 length + bytes each.
class element_reader {
 public:
  explicit element_reader(std::span<const std::byte> p) : p_(p) { count_ = take_u64(); }
  std::uint64_t count() const noexcept { return count_; }
  std::span<const std::byte> next() {
    std::uint32_t n = 0;
    need(4);
    std::memcpy(&n, p_.data(), 4);
    p_ = p_.subspan(4);
    need(n);
    auto out = p_.first(n);
    p_ = p_.subspan(n);
    return out;
  }

 private:
  void need(std::size_t n) const {
    if (p_.size() < n) throw decode_error("a manager's reply is truncated");
  }
  std::uint64_t take_u64() {
    need(8);
    std::uint64_t v = 0;
    std::memcpy(&v, p_.data(), 8);
    p_ = p_.subspan(8);
    return v;
  }
  std::span<const std::byte> p_;
  std::uint64_t count_ = 0;
};

}  // namespace isola::detail
