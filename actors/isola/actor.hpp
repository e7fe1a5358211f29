// isola/actor.hpp — actors: processes that serve a mailbox with a behavior.
//
//   isola::behavior adder() { return {[](const add& a) { return a.x + a.y; }}; }
//
//   isola::actor a = isola::spawn(adder);          // a new process
//   a.send(add{1, 2});                             // fire and forget
//   int three = a.request<int>(add{1, 2}).get();   // request -> future
//   auto d = a.monitor();                          // future<down>
//
// Each actor is its own OS process (started from the forkserver zygote, or
// by spawn: never a plain fork of the root, whose CAF threads are running).
// Its mailbox is a shared-memory ring (the queue's, with its crash safety)
// carrying envelopes: the message's type tag and cereal payload, plus who
// sent it and, for requests, which request it is.
//
// What every process is guaranteed:
// - Messages from one sender to one actor arrive in the order sent, each
//   once. A message sent to an actor that has ended is dropped (and counted,
//   see this_actor::dropped_messages).
// - A request is answered, or fails: remote_error (the handler threw; the
//   actor then exits with the exception, as in Erlang), type_error (no
//   handler for the message, or a reply of the wrong type), decode_error (the
//   message did not decode as the handler's type: the actor drops it, counts
//   it and serves on), actor_exited (the actor ended before answering: noticed within 100 ms of its death, with
//   the exit reason), timeout_error (the request's own deadline). It never
//   hangs on a dead actor.
// - Handles are values: copy them, compare them, put them inside messages;
//   whoever receives one can send to that actor directly.
// - Every actor's death is seen by the root, which reaps it and tells its
//   monitors (a down with the exit_reason), its links and its supervisor.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "isola/behavior.hpp"
#include "isola/codec.hpp"
#include "isola/detail/actor_core.hpp"
#include "isola/detail/launch.hpp"
#include "isola/exit_reason.hpp"
#include "isola/future.hpp"
#include "isola/sandbox.hpp"
#include "isola/start_method.hpp"
#include "isola/type_name.hpp"

namespace isola {

class actor {
 public:
  actor() = default;
  actor(std::uint64_t id, int pid, std::string name) : id_(id), pid_(pid), name_(std::move(name)) {}
  /// A handle to an actor of another node (see isola/node.hpp): `node` is
  /// this root's number for its connection to that node.
  actor(std::uint64_t id, int pid, std::string name, std::uint64_t node)
      : id_(id), pid_(pid), name_(std::move(name)), node_(node) {}

  /// Unique among all actors of this root, never reused. 0: no actor.
  std::uint64_t id() const noexcept { return id_; }
  int pid() const noexcept { return pid_; }
  const std::string& name() const noexcept { return name_; }
  explicit operator bool() const noexcept { return id_ != 0; }
  /// 0 for an actor of this root; else the connection (isola::node) through
  /// which this root reaches the actor's node. id() and pid() are then the
  /// actor's on that node.
  std::uint64_t node() const noexcept { return node_; }
  bool remote() const noexcept { return node_ != 0; }

  /// Puts msg in the actor's mailbox (waiting while it is full). Returns
  /// false if the actor is known to have ended: the message is dropped.
  template <class T>
  bool send(const T& msg) const {
    static_assert(is_serializable_v<T>, "isola::actor::send: T must be cereal-serializable");
    detail::encode_buffer buf;
    if (node_) {
      encode_for_node(msg, buf.get());
      return detail::remote_post(node_, checked_id(), detail::env_kind::send, type_tag<T>(),
                                 buf.get());
    }
    encode_into(msg, buf.get());
    return detail::post(checked_id(), detail::env_kind::send, 0, type_tag<T>(), buf.get());
  }

  /// Sends msg as a request; the future gets the handler's reply (of type R).
  template <class R, class T>
  future<R> request(const T& msg) const {
    return request_impl<R>(msg, std::nullopt);
  }
  /// As request(msg), and the request itself fails with timeout_error when no
  /// reply came within t (a late reply is dropped).
  template <class R, class T>
  future<R> request(const T& msg, duration t) const {
    if (!(t.count() >= 0)) throw value_error("timeout must be a non-negative number of seconds");
    return request_impl<R>(msg,
                           std::chrono::steady_clock::now() +
                               std::chrono::duration_cast<std::chrono::steady_clock::duration>(t));
  }

  /// A future completed with the actor's down notice when it ends (at once
  /// if it already has).
  future<struct down> monitor() const;

  /// Whether the actor is running, as far as this process knows.
  bool alive() const {
    return node_ ? detail::remote_alive(node_, checked_id()) : detail::actor_alive(checked_id());
  }

  /// Asks the actor to end: it finishes the message in hand and exits with
  /// reason shutdown. Does not wait (monitor() to wait).
  void stop() const {
    if (node_)
      detail::remote_post(node_, checked_id(), detail::env_kind::stop, 0, {});
    else
      detail::stop_actor(checked_id());
  }

  /// The next steps of the escalation after stop(), for an actor stuck in a
  /// handler: SIGTERM to its process (its exit reason is then signal 15, or
  /// what its own SIGTERM handler makes it), and SIGKILL (signal 9, which
  /// nothing can catch). Neither waits (monitor() to wait); an actor that has
  /// already ended is left alone. Local actors only for now: a remote handle
  /// is a value_error.
  void terminate() const { signal(15); }
  void kill() const { signal(9); }

  friend bool operator==(const actor& a, const actor& b) noexcept {
    return a.id_ == b.id_ && a.node_ == b.node_;
  }
  friend auto operator<=>(const actor& a, const actor& b) noexcept {
    if (auto c = a.node_ <=> b.node_; c != 0) return c;
    return a.id_ <=> b.id_;
  }

  // A handle written for another node is translated (see
  // detail::remote_handle_scope): what is local there is local, whatever
  // this root reaches through that node is reached through it here.
  template <class Archive>
  void save(Archive& ar) const {
    using scope = detail::remote_handle_scope;
    std::uint64_t n = node_;
    if (scope::current_mode() == scope::mode::encode_for) {
      if (node_ == scope::current_node())
        n = 0;
      else if (id_ != 0)
        throw value_error("isola::actor: a handle to " + name_ +
                          " cannot be sent to another node (only handles of that node's own "
                          "actors travel between nodes)");
    }
    ar(id_, pid_, name_, n);
  }
  template <class Archive>
  void load(Archive& ar) {
    using scope = detail::remote_handle_scope;
    ar(id_, pid_, name_, node_);
    if (scope::current_mode() == scope::mode::decode_from && id_ != 0) {
      if (node_ != 0)
        throw value_error("isola::actor: a reply from another node named an actor of a third node");
      node_ = scope::current_node();
    }
  }

 private:
  void signal(int sig) const {
    if (node_) throw value_error("isola::actor: terminate()/kill() of an actor on another node");
    detail::signal_actor(checked_id(), sig);
  }

  /// Encodes msg for this handle's node (its handles translated: see save()).
  template <class T>
  void encode_for_node(const T& msg, bytes& out) const {
    detail::remote_handle_scope scope(detail::remote_handle_scope::mode::encode_for, node_);
    encode_into(msg, out);
  }

  std::uint64_t checked_id() const {
    if (id_ == 0) throw value_error("isola::actor: empty handle (default-constructed)");
    return id_;
  }

  template <class R, class T>
  future<R> request_impl(const T& msg,
                         std::optional<std::chrono::steady_clock::time_point> deadline) const {
    static_assert(is_serializable_v<T>, "isola::actor::request: T must be cereal-serializable");
    using stored = typename detail::future_state<R>::stored;
    static_assert(std::is_void_v<R> || is_serializable_v<R>,
                  "isola::actor::request<R>: R must be cereal-serializable (or void)");
    auto st = std::make_shared<detail::future_state<R>>();
    std::weak_ptr<detail::future_state<R>> w = st;
    detail::encode_buffer buf;
    if (node_)
      encode_for_node(msg, buf.get());
    else
      encode_into(msg, buf.get());
    detail::reply_fn on_reply = [w](std::uint64_t tag, std::span<const std::byte> payload) {
      auto s = w.lock();
      if (!s) return;
      try {
        if constexpr (std::is_void_v<R>) {
          if (tag != type_tag<unit>())
            detail::throw_reply_type(type_tag<unit>(), "void (isola.unit)", tag);
          s->succeed(stored{});
        } else {
          if (tag != type_tag<R>()) detail::throw_reply_type(type_tag<R>(), type_name<R>(), tag);
          s->succeed(decode<R>(payload));
        }
      } catch (...) {
        s->fail(std::current_exception());
      }
    };
    if (node_)
      detail::remote_request(node_, checked_id(), type_tag<T>(), buf.get(), deadline, st,
                             std::move(on_reply));
    else
      detail::request(checked_id(), type_tag<T>(), buf.get(), deadline, st, std::move(on_reply));
    return future<R>(std::move(st));
  }

  std::uint64_t id_ = 0;
  int pid_ = 0;
  std::string name_;
  std::uint64_t node_ = 0;
};

/// Prints "actor-3 (id 3, pid 1234)".
std::ostream& operator<<(std::ostream& os, const actor& a);

/// A monitored actor ended.
struct down {
  actor who;
  exit_reason reason;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(who, reason);
  }
};

/// A linked actor ended abnormally, delivered as a message to an actor that
/// traps exits (this_actor::trap_exit(true)); otherwise the link kills it.
struct exit_msg {
  actor from;
  exit_reason reason;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(from, reason);
  }
};

inline future<down> actor::monitor() const {
  auto st = std::make_shared<detail::future_state<down>>();
  std::weak_ptr<detail::future_state<down>> w = st;
  detail::reply_fn on_down = [w](std::uint64_t, std::span<const std::byte> payload) {
    if (auto s = w.lock()) {
      try {
        s->succeed(decode<down>(payload));
      } catch (...) {
        s->fail(std::current_exception());
      }
    }
  };
  if (node_)
    detail::remote_monitor(node_, checked_id(), st, std::move(on_down));
  else
    detail::monitor(checked_id(), st, std::move(on_down));
  return future<down>(std::move(st));
}

struct spawn_options {
  /// Default "actor-N" (N is the actor's id).
  std::string name{};
  /// forkserver (default) or spawn. fork is refused: the root runs CAF threads.
  std::optional<start_method> method{};
  /// Daemon actors are terminated when the root ends; others are asked to stop
  /// and joined. Default true: an actor serves until told otherwise.
  bool daemon = true;
  /// Bytes of the mailbox ring (a larger message streams through it).
  std::size_t mailbox_bytes = std::size_t{1} << 20;
  /// What the actor's process may do (isola/sandbox.hpp), from before it
  /// builds its behavior. Actors it spawns get the same sandbox.
  std::optional<isola::sandbox> sandbox{};
};

/// How the root's CAF actor_system (supervisors, the registry) is set up.
/// Takes effect only before the first actor or supervisor is created.
struct actor_system_options {
  /// CAF's scheduler policy: "sharing" (default: a blocking request through
  /// CAF takes ~9 us here, against ~100 us with "stealing") or "stealing".
  /// The environment variable ISOLA_CAF_SCHEDULER overrides it.
  std::string scheduler_policy = "sharing";
  /// CAF scheduler threads; 0: CAF's default (the number of cores).
  std::size_t max_threads = 0;
  /// BASP heartbeats between nodes (isola/node.hpp) and how long a node may
  /// stay silent before its connection is dropped: a killed, stopped or
  /// unreachable node turns into down notices and failed requests within
  /// about connection_timeout + heartbeat_interval. 0: CAF's default (off).
  std::chrono::milliseconds heartbeat_interval{200};
  std::chrono::milliseconds connection_timeout{1200};
};
/// value_error once the actor system is running.
void configure_actor_system(const actor_system_options& opts);

namespace detail {
/// Packages make_behavior(args...) as the isola::process that runs it as an
/// actor (shared by spawn and supervisor child specs, which start it again on
/// every restart), from arguments already kept as shared_args (a
/// simple_one_for_one template shares its own with every instance).
template <class F, class... T>
make_process_fn make_actor_process_shared(F make_behavior, shared_arg<T>... as) {
  using Fd = std::decay_t<F>;
  if constexpr (std::is_pointer_v<Fd>) {
    using entry = int (*)(actor_boot, function_address, shared_arg<T>...);
    entry e = &actor_entry_fn<Fd, T...>;
    (void)static_function_registered<&actor_entry_fn<Fd, T...>>;
    auto fa = function_address::of(make_behavior);
    return [e, fa, as...](const actor_boot& boot, const process_options& po) {
      return process(po, e, boot, fa, as...);
    };
  } else {
    static_assert(std::is_empty_v<Fd> && std::is_default_constructible_v<Fd>,
                  "isola::spawn: make_behavior must be a function pointer or a captureless "
                  "lambda (it is run in another process)");
    using entry = int (*)(actor_boot, shared_arg<T>...);
    entry e = &actor_entry_functor<Fd, T...>;
    (void)static_function_registered<&actor_entry_functor<Fd, T...>>;
    return [e, as...](const actor_boot& boot, const process_options& po) {
      return process(po, e, boot, as...);
    };
  }
}

/// The same, from the arguments themselves.
template <class F, class... A>
make_process_fn make_actor_process(F make_behavior, A&&... args) {
  // The arguments are kept once, shared by every start (restarts included),
  // and only encoded for each one: so move-only handles (a connection end)
  // can be actor arguments too.
  return make_actor_process_shared(make_behavior,
                                   make_shared_arg<stored_arg_t<A>>(std::forward<A>(args))...);
}
}  // namespace detail

namespace detail {
/// A spawn carried to another process (another node's root, or this root
/// for an actor process): runs there, decodes the arguments, spawns.
using remote_spawn_fn = actor (*)(const spawn_options&, function_address,
                                  std::span<const std::byte>);

template <class Fd, class... A>
actor remote_spawn_entry(const spawn_options& o, function_address fa,
                         std::span<const std::byte> args);

/// The entry point and make_behavior of a carried spawn, as references.
/// Every entry point is registered at start-up (the same program runs on
/// both ends) and make_behavior must be registered where the spawn runs
/// (function_registry.hpp): a corrupt or forged spawn request is a
/// value_error there, not a jump to an arbitrary address.
template <class Fd, class... A, class F>
std::pair<function_address, function_address> spawn_addresses(F make_behavior) {
  auto fe = function_address::of_static<&remote_spawn_entry<Fd, A...>>();
  function_address ff{};
  if constexpr (std::is_pointer_v<Fd>) ff = function_address::of(make_behavior);
  return {fe, ff};
}

/// In an actor process: asks the root to spawn (actors are the root's
/// children; an actor process runs no CAF and forks nothing).
actor spawn_through_root(const spawn_options& o, function_address entry, function_address fn,
                         bytes args);
}  // namespace detail

/// Starts make_behavior(args...) in a new process and returns its handle.
/// make_behavior is a function pointer or a captureless lambda returning a
/// behavior; args are cereal-serializable (they are sent to the process).
/// From inside an actor process too: the root starts it (as its own actor,
/// not linked to the caller), and args must then be plain values (queues
/// and pipe ends travel only from the root).
template <class F, class... A>
actor spawn(const spawn_options& opts, F make_behavior, A&&... args) {
  if (detail::in_actor_process()) {
    using Fd = std::decay_t<F>;
    auto [fe, ff] = detail::spawn_addresses<Fd, detail::stored_arg_t<A>...>(make_behavior);
    return detail::spawn_through_root(
        opts, fe, ff, encode(std::tuple<detail::stored_arg_t<A>...>(std::forward<A>(args)...)));
  }
  return detail::spawn_actor(opts,
                             detail::make_actor_process(make_behavior, std::forward<A>(args)...));
}

template <class F, class... A>
requires(!std::is_same_v<std::remove_cvref_t<F>, spawn_options>) actor
    spawn(F make_behavior, A&&... args) {
  return spawn(spawn_options{}, make_behavior, std::forward<A>(args)...);
}

namespace detail {
template <class Fd, class... A>
actor remote_spawn_entry(const spawn_options& o, function_address fa,
                         std::span<const std::byte> args) {
  auto t = decode<std::tuple<A...>>(args);
  return std::apply(
      [&](A&... as) -> actor {
        if constexpr (std::is_pointer_v<Fd>)
          return spawn(o, fa.as<Fd>("a spawn's make_behavior"), std::move(as)...);
        else
          return spawn(o, Fd{}, std::move(as)...);
      },
      t);
}
}  // namespace detail

/// What an actor can ask about itself (in the root, "self" is the calling
/// thread's inbox: a handle actors can reply to, but not a behavior).
namespace this_actor {
/// This actor's handle.
actor self();
/// Links this actor with a: when either ends abnormally, the other is killed
/// with reason linked (or, if it traps exits, gets an exit_msg). Actor
/// processes only, and actors of this root only (a remote handle is a
/// value_error: monitor it instead).
void link(const actor& a);
void unlink(const actor& a);
/// Turns abnormal exits of linked actors into exit_msg messages.
void trap_exit(bool on);
/// Delivers a down message to this actor's behavior when a ends.
void monitor(const actor& a);
/// Messages this process dropped because their target had ended.
std::uint64_t dropped_messages() noexcept;
/// Messages this actor dropped because their payload did not decode as its
/// handler's parameter type (a requester got decode_error).
std::uint64_t undecodable_messages() noexcept;
}  // namespace this_actor

namespace detail {
template <class Fp, class... A>
int actor_entry_fn(actor_boot boot, function_address fa, shared_arg<A>... args) {
  auto fn = fa.as<Fp>("an actor's make_behavior");
  return run_actor(boot, [&]() -> behavior { return behavior(fn(args.pass()...)); });
}
template <class L, class... A>
int actor_entry_functor(actor_boot boot, shared_arg<A>... args) {
  return run_actor(boot, [&]() -> behavior {
    L f{};
    return behavior(f(args.pass()...));
  });
}
}  // namespace detail

}  // namespace isola

ISOLA_TYPE_NAME(isola::actor, "isola.actor")
ISOLA_TYPE_NAME(isola::down, "isola.down")
ISOLA_TYPE_NAME(isola::exit_msg, "isola.exit_msg")
ISOLA_TYPE_NAME(isola::exit_reason, "isola.exit_reason")
