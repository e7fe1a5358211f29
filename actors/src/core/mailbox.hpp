// The machinery shared by the root and actor processes: envelopes, inboxes,
// peers (cached mailboxes of other actors) and the per-process context that
// knows how to find them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "actor/control.hpp"
#include "isola/actor.hpp"
#include "isola/codec.hpp"
#include "isola/detail/actor_core.hpp"
#include "isola/detail/shm_ring.hpp"
#include "isola/exit_reason.hpp"

namespace isola::detail {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;

/// CLOCK_MONOTONIC_COARSE in nanoseconds (a few ms of resolution, and much
/// cheaper than clock::now() on a VM): for rate limits on the message path.
using coarse_time = std::int64_t;
coarse_time coarse_now() noexcept;
constexpr coarse_time coarse_ms(std::int64_t ms) noexcept { return ms * 1'000'000; }

struct envelope_header {
  std::uint8_t kind = 0;
  std::uint8_t pad[7] = {};
  std::uint64_t sender = 0;
  std::uint64_t ref = 0;
  std::uint64_t tag = 0;
};
static_assert(sizeof(envelope_header) == 32);

struct envelope {
  envelope_header h;
  bytes payload;
  env_kind kind() const noexcept { return static_cast<env_kind>(h.kind); }
};

/// Why a request failed, as the replier's process reports it.
struct error_info {
  /// no_handler and exception come from the replier; the others are a
  /// failure seen on the way (the root forwarding a request to another node
  /// for an actor process) and become the same exception type again. full:
  /// the gateway could not deliver it (queue_full). decode: the replier could
  /// not decode the request's payload as its handler's type (the actor
  /// dropped it and serves on). `other` stays last: node_client.cpp checks a
  /// kind from the wire against it.
  enum class kind : std::uint8_t {
    no_handler,
    exception,
    exited,
    value,
    timeout,
    type,
    full,
    decode,
    other
  };
  kind what = kind::exception;
  std::string type_name;  // of the exception, or of the unhandled message
  std::string text;
  int pid = 0;
  std::string process_name;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(what, type_name, text, pid, process_name);
  }
};
std::exception_ptr to_exception(const error_info& e);
/// The inverse of to_exception, for a failure to pass on to another process.
error_info describe_failure(const std::exception_ptr& e);

/// Another actor's mailbox as this process reaches it.
class peer {
 public:
  virtual ~peer() = default;
  std::uint64_t id = 0;
  int pid = 0;
  std::shared_ptr<shm_ring> ring;
  /// Whether it has ended (cheap enough to call once per slice of waiting).
  virtual bool dead() = 0;
  /// Its exit reason, once dead (may wait briefly for the root to reap it).
  virtual exit_reason reason() = 0;
  /// Sends sig to its process (race-free, through its pidfd where this
  /// process has one); false if it cannot.
  virtual bool signal(int sig) {
    (void)sig;
    return false;
  }
};

/// What try_post did.
enum class post_result { ok, full, dead };
/// One attempt to post, without waiting for room.
post_result try_post(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
                     std::span<const std::byte> payload);

/// Puts one envelope into a peer's ring, in slices, giving up when the peer
/// ends. Returns false if it ended first.
bool put_envelope(peer& p, const envelope_header& h, std::span<const std::byte> payload);

/// A mailbox being read by this process: an actor's own mailbox, or the
/// inbox of a thread of the root. Routes replies and down notices to the
/// futures waiting for them; other envelopes are kept for the actor's loop
/// (keep_others) or dropped.
class inbox : public std::enable_shared_from_this<inbox> {
 public:
  inbox(std::uint64_t id, std::shared_ptr<shm_ring> ring, bool keep_others)
      : id_(id), ring_(std::move(ring)), keep_others_(keep_others) {}

  std::uint64_t id() const noexcept { return id_; }
  const std::shared_ptr<shm_ring>& ring() const noexcept { return ring_; }

  struct pending {
    std::shared_ptr<peer> target;
    std::shared_ptr<future_core> st;
    reply_fn on_reply;
    std::optional<time_point> deadline;
    bool is_monitor = false;
  };
  std::uint64_t add_pending(pending p);
  void drop_pending(std::uint64_t ref);

  /// Reads and routes envelopes until the deadline or until one was routed
  /// (waits at most one slice of 20 ms); then fails the requests whose
  /// target died or whose deadline passed.
  void pump(std::optional<time_point> deadline);

  /// The next envelope for the actor's own loop (not a reply), waiting until
  /// the deadline; nullopt on timeout.
  std::optional<envelope> next(std::optional<time_point> deadline);
  /// As next(), into `out` (whose payload buffer is reused); false on timeout.
  /// With spin, polls the mailbox briefly before sleeping on it (after a
  /// reply, when the requester's next message is expected soon).
  bool next_into(envelope& out, std::optional<time_point> deadline, bool spin = false);
  /// As next_into, without waiting at all (no spin, no poll).
  bool try_next_into(envelope& out);

  /// A root thread that reads its inbox with next_into (the pool's
  /// dispatcher) keeps plain sends instead of dropping them. Set before the
  /// first read.
  void set_keep_others(bool on) noexcept { keep_others_ = on; }

  /// Marks a down notice ref as one for the behavior (this_actor::monitor).
  void expect_behavior_down(std::uint64_t ref);
  /// A fresh reference number (for a monitor no future waits on).
  std::uint64_t new_ref() noexcept { return next_ref_.fetch_add(1, std::memory_order_relaxed); }

 private:
  bool read_one(time_point until);  // true if an envelope was routed
  /// For the actor's loop, with pump_m_ held and kept_ empty: reads one
  /// envelope into `out`, waiting until `until` (nullopt: not at all).
  /// Returns 1 if it is for the loop (left in `out`), 0 if it was routed (a
  /// reply, a notice) or dropped, -1 if none came.
  int read_for_loop(envelope& out, std::optional<time_point> until);
  /// Routes a reply or notice to what waits for it; returns true if e is for
  /// the actor's loop instead (always false for a root thread's inbox, which
  /// drops anything else).
  bool route(envelope& e);
  void check_pending(bool force);

  std::uint64_t id_;
  std::shared_ptr<shm_ring> ring_;
  bool keep_others_;
  std::mutex m_;  // pending_, behavior_downs_
  std::unordered_map<std::uint64_t, pending> pending_;
  std::vector<std::uint64_t> behavior_downs_;
  std::mutex pump_m_;  // one reader at a time; guards kept_ and scratch_
  std::deque<envelope> kept_;
  std::atomic<std::uint64_t> next_ref_{1};
  coarse_time last_check_{};
  bool quiet_ = false;  // pump's last read found nothing (under pump_m_)
  /// How long after a reply the next message came, on average (under
  /// pump_m_); sets the spin after the next reply (reply_spin).
  std::chrono::nanoseconds reply_gap_{std::chrono::milliseconds(1)};
  std::chrono::nanoseconds reply_spin() const;
  envelope scratch_;  // read_one's buffer (under pump_m_)
};

/// The process-wide view: in the root, the registry (node.cpp); in an actor
/// process, the control channel to the root (child.cpp).
class context {
 public:
  virtual ~context() = default;
  /// The peer for an actor or inbox id; throws actor_exited if it has ended
  /// (with its reason) or value_error if it never existed.
  virtual std::shared_ptr<peer> lookup(std::uint64_t id) = 0;
  /// The calling thread's inbox.
  virtual std::shared_ptr<inbox> my_inbox() = 0;
  /// Registers that the down of target goes to inbox `watcher` with `ref`.
  virtual void add_monitor(std::uint64_t target, std::uint64_t watcher, std::uint64_t ref) = 0;
  virtual void link(std::uint64_t a, bool on) = 0;
  virtual void trap_exit(bool on) = 0;
  virtual actor self() = 0;
  /// self().id(), without building the handle (the message path asks for it
  /// on every post).
  virtual std::uint64_t self_id() { return my_inbox()->id(); }
  /// In an actor process: hands an op::remote request to the root, which
  /// holds the connections to other nodes (control.hpp). Throws value_error
  /// where there is no root to ask (in the root itself) or the message is
  /// too large for the control channel.
  virtual void forward_remote(const ctl_request& rq);
  std::atomic<std::uint64_t> dropped{0};
  /// Messages dropped because their payload did not decode as the handler's
  /// parameter type (see this_actor::undecodable_messages).
  std::atomic<std::uint64_t> undecodable{0};
};

/// From an actor process, through the root: a message, request, monitor or
/// liveness question for actor `target` of node `node`. For the ops that
/// are answered, the answer arrives in this process's inbox under a pending
/// ref (st and on_reply as for a local request).
void forward_remote(ctl_request::remote_op op, std::uint64_t node, std::uint64_t target,
                    std::uint64_t tag, std::span<const std::byte> payload,
                    std::optional<time_point> deadline, const std::shared_ptr<future_core>& st,
                    reply_fn on_reply);

/// What a spawn sends to the process that starts the actor (another node's
/// root, or this root for one of its actor processes): the entry point that
/// decodes the arguments, make_behavior, the options and the arguments.
bytes spawn_blob(const spawn_options& o, function_address entry, function_address fn, bytes args);
/// Starts the actor a spawn_blob describes, here (in a root).
/// `imposed`: the sandbox of the actor that asked (its children get it).
actor spawn_from_blob(std::span<const std::byte> blob,
                      const std::optional<isola::sandbox>& imposed = std::nullopt);

/// In the root, on its control-channel thread: does what actor process
/// `who` asked with op::remote (remote.cpp).
void forward_for_actor(std::uint64_t who, const ctl_request& rq);

/// This process's context (the root's is created on first use).
context& ctx();
/// The root's context (node.cpp); created on first use.
context& root_context();
/// Set by an actor process at start.
void set_child_context(context* c) noexcept;

/// The readable name of a type (an exception's, for remote_error).
std::string demangle(const char* mangled);

}  // namespace isola::detail

ISOLA_TYPE_NAME(isola::detail::envelope_header, "isola.mailbox")
ISOLA_TYPE_NAME(isola::detail::error_info, "isola.error_info")
