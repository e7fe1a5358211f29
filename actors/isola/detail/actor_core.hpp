// isola/detail/actor_core.hpp — what the actor templates need from the
// compiled actor layer: posting envelopes, pending requests, spawning.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "isola/detail/function_address.hpp"
#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/shm_ring.hpp"
#include "isola/exit_reason.hpp"
#include "isola/future.hpp"
#include "isola/process.hpp"

namespace isola {
class behavior;
class actor;
struct spawn_options;
}  // namespace isola

namespace isola::detail {

/// What travels in a mailbox, besides the message.
enum class env_kind : std::uint8_t {
  send = 1,     // a message, no reply expected
  request,      // a message; reply to `sender` with the same `ref`
  reply,        // the answer to request `ref`
  error_reply,  // request `ref` failed: the payload is an error_info
  down,         // a monitored actor ended: the payload is a down, `ref` the monitor
  exit_signal,  // a linked actor ended abnormally and we trap exits: an exit_msg
  stop,         // end normally, with reason shutdown (a supervisor stopping us)
};

/// Everything a new actor process needs to know, sent as a process argument.
struct actor_boot {
  std::uint64_t id = 0;
  std::string name;
  std::shared_ptr<shm_ring> mailbox;
  int control_fd = -1;  // the child's end of its control channel to the root
  int root_pid = 0;

  template <class Archive>
  void save(Archive& ar) const;
  template <class Archive>
  void load(Archive& ar);
};

std::uint64_t mailbox_tag();

template <class Archive>
void actor_boot::save(Archive& ar) const {
  ar(id, name, root_pid, export_fd(mailbox->mem_fd()), export_fd(mailbox->event_fd()),
     export_fd(control_fd));
}
template <class Archive>
void actor_boot::load(Archive& ar) {
  std::uint32_t mem = 0, ev = 0, ctl = 0;
  ar(id, name, root_pid, mem, ev, ctl);
  mailbox = shm_ring::adopt(mem, ev, mailbox_tag());
  control_fd = import_fd(ctl);
}

/// A per-thread buffer to encode an outgoing message into, so that a stream
/// of sends allocates nothing. Nested use on one thread (a message whose
/// serialize() sends) gets a buffer of its own; a buffer that grew past
/// 1 MiB is released afterwards.
class encode_buffer {
 public:
  encode_buffer() noexcept;
  ~encode_buffer();
  encode_buffer(const encode_buffer&) = delete;
  encode_buffer& operator=(const encode_buffer&) = delete;
  bytes& get() noexcept { return *b_; }

 private:
  bytes own_;
  bytes* b_ = &own_;
  bool borrowed_ = false;
};

/// Posts one envelope to the actor (or root inbox) `target`, waiting while
/// its mailbox is full. Returns false when the target is known to have ended
/// (the message is dropped and counted).
bool post(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
          std::span<const std::byte> payload);

/// Called with a reply's type tag and payload, on the thread that reads it.
using reply_fn = std::function<void(std::uint64_t tag, std::span<const std::byte> payload)>;

/// Registers a pending request in the calling thread's inbox, posts it and
/// wires st's pump (reading the inbox) and cancel. on_reply completes st
/// from a reply; failures (error replies, the target's death, the deadline)
/// complete it with the matching exception.
void request(std::uint64_t target, std::uint64_t tag, std::span<const std::byte> payload,
             std::optional<std::chrono::steady_clock::time_point> deadline,
             const std::shared_ptr<future_core>& st, reply_fn on_reply);

/// Registers a monitor of target whose down notice completes st (via on_down).
void monitor(std::uint64_t target, const std::shared_ptr<future_core>& st, reply_fn on_down);

/// Throws the type_error for a reply of the wrong type.
[[noreturn]] void throw_reply_type(std::uint64_t expected, const std::string& expected_name,
                                   std::uint64_t got);

using make_process_fn = std::function<process(const actor_boot&, const process_options&)>;

/// Spawns an actor process (root only). make builds the isola::process.
actor spawn_actor(const spawn_options& opts, const make_process_fn& make);

/// The body of an actor process: builds the behavior and serves the mailbox.
int run_actor(const actor_boot& boot, const std::function<behavior()>& make_behavior);

/// An actor's argument, kept once and encoded for each start; decoded into
/// a fresh value in the actor's process.
template <class T>
struct shared_arg {
  std::shared_ptr<T> p;
  template <class Archive>
  void save(Archive& ar) const {
    ar(*p);
  }
  template <class Archive>
  void load(Archive& ar) {
    p = std::make_shared<T>();
    ar(*p);
  }
  /// For the make_behavior call (once per process): a copyable value as an
  /// lvalue, as before; a move-only one (a connection) moved out.
  decltype(auto) pass() {
    if constexpr (std::is_copy_constructible_v<T>)
      return static_cast<T&>(*p);
    else
      return static_cast<T&&>(*p);
  }
};
template <class T, class U>
shared_arg<T> make_shared_arg(U&& u) {
  return shared_arg<T>{std::make_shared<T>(std::forward<U>(u))};
}

template <class Fp, class... A>
int actor_entry_fn(actor_boot boot, function_address fa, shared_arg<A>... args);
template <class L, class... A>
int actor_entry_functor(actor_boot boot, shared_arg<A>... args);

/// The request an actor's handler is answering (set around each handler
/// call in an actor process): whom to reply to, and whether the handler took
/// the reply upon itself (response_promise) so that the loop must not reply.
struct current_request {
  std::uint64_t sender = 0;
  std::uint64_t ref = 0;
  bool active = false;
  bool deferred = false;
};
current_request& this_request() noexcept;

/// Encoding a message for node `node` (this root's number for it): handles
/// of that node's actors are written as local ones there, and a handle of
/// one of this root's own actors is a value_error (the other node could not
/// reach it yet). Decoding a reply from `node`: its local handles become
/// handles of that node here. One scope per thread at a time.
class remote_handle_scope {
 public:
  enum class mode : std::uint8_t { none, encode_for, decode_from };
  remote_handle_scope(mode m, std::uint64_t node) noexcept;
  ~remote_handle_scope();
  remote_handle_scope(const remote_handle_scope&) = delete;
  remote_handle_scope& operator=(const remote_handle_scope&) = delete;
  static mode current_mode() noexcept;
  static std::uint64_t current_node() noexcept;

 private:
  mode saved_mode_;
  std::uint64_t saved_node_;
};

/// Whether the calling process is an actor process (false in the root).
bool in_actor_process() noexcept;

/// Liveness of an actor as this process knows it.
bool actor_alive(std::uint64_t id);

/// Asks the actor to stop (reason shutdown); see actor::stop.
void stop_actor(std::uint64_t id);
/// SIGTERM or SIGKILL to a local actor's process; see actor::terminate/kill.
void signal_actor(std::uint64_t id, int sig);

// Actors of other nodes (remote.cpp): `node` is the root's number for its
// connection to that node (isola::node). In an actor process they go
// through the root, which holds the connection (remote.cpp).
bool remote_post(std::uint64_t node, std::uint64_t target, env_kind kind, std::uint64_t tag,
                 std::span<const std::byte> payload);
void remote_request(std::uint64_t node, std::uint64_t target, std::uint64_t tag,
                    std::span<const std::byte> payload,
                    std::optional<std::chrono::steady_clock::time_point> deadline,
                    const std::shared_ptr<future_core>& st, reply_fn on_reply);
void remote_monitor(std::uint64_t node, std::uint64_t target,
                    const std::shared_ptr<future_core>& st, reply_fn on_down);
bool remote_alive(std::uint64_t node, std::uint64_t target);

}  // namespace isola::detail
