// isola/node.hpp — more than one machine: roots that reach each other's
// actors over CAF's middleman (BASP over TCP), after an HMAC handshake.
//
//   // on host B
//   isola::runtime rt{argc, argv};
//   isola::node::listen(7000, key);               // 0: any free port (returned)
//
//   // on host A
//   isola::node b = isola::node::connect("hostb", 7000, key);
//   isola::actor w = b.spawn(make_worker, 3);     // a new process on host B
//   int r = w.request<int>(job{1}).get();         // as for a local actor
//   auto d = w.monitor();                         // down when it ends, or when B is lost
//
// Every connection, in either direction, authenticates before CAF reads a
// byte of it: both sides prove they know the key with HMAC-SHA256 over a
// fresh 32-byte challenge of the other side. A wrong key is an
// authentication_error for the connecting side and a logged, counted failure
// (stats().auth_failures) for the listening one; the connection is dropped.
// A key shorter than 16 bytes is stretched with PBKDF2 first (see
// runtime/src/sys/handshake.hpp); use 16 random bytes or more across hosts.
// A node listens on the loopback unless listen_options names an address.
// A listening node lets at most 128 handshakes wait, 16 per source address;
// over that a connection is told busy, and connect tries again until its
// timeout (then timeout_error, never authentication_error).
// Only then is the socket handed to CAF's BASP broker, which carries the
// actor messages (see docs/decisions.md, "Nodes"). With listen_options::tls
// and connect_options::tls (both ends must agree), a TLS 1.3 handshake keyed
// by the HMAC handshake follows it, and BASP runs inside TLS: secrecy and
// integrity on the wire, no certificates (docs/security.md).
//
// A remote actor's handle (actor::remote()) supports send, request (with or
// without a timeout), monitor, alive and stop, in the root process that
// connected and in that root's actor processes (a handle passed to one in a
// message): an actor process goes through its root, which holds the
// connection, so a message from one is limited to ~64 KiB. A node that dies, hangs (SIGSTOP) or becomes unreachable is
// noticed by BASP heartbeats within about 1.4 s (actor_system_options): its
// pending requests fail with actor_exited and its monitors get a down with
// reason unknown ("node ... lost").
//
// Handles inside messages: a handle to one of node B's actors, sent to B (a
// message, a request, spawn arguments), arrives there as B's local handle,
// so B's actors can use it; a handle in a reply from B becomes a remote
// handle here. A handle of this root's own actors cannot be sent to B (a
// value_error: B could not reach it yet).
//
// Not yet: linking across nodes, spawning on another node from inside an
// actor process.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "isola/actor.hpp"
#include "isola/codec.hpp"
#include "isola/detail/function_address.hpp"
#include "isola/detail/launch.hpp"

namespace isola {

/// What the listening side of this root has seen.
struct node_stats {
  std::uint64_t accepted = 0;       ///< TCP connections accepted
  std::uint64_t authenticated = 0;  ///< handed to CAF after a good handshake
  std::uint64_t auth_failures = 0;  ///< wrong key, either way round
  std::uint64_t dropped = 0;        ///< junk, cut short or too slow (5 s) before authenticating
  std::uint64_t refused_busy = 0;   ///< told busy: over a cap of pending handshakes (or out of fds)
};

struct listen_options {
  /// The address to bind: the loopback by default (reachable from this host
  /// only); "0.0.0.0" (or "::") for every interface, or one address of one.
  std::string host = "127.0.0.1";
  /// Every link accepted here runs inside TLS 1.3, keyed by the handshake
  /// (no certificates; see docs/security.md). Connecting nodes must ask for
  /// it too (connect_options::tls); one that does not is refused.
  bool tls = false;
};

struct connect_options {
  /// Runs the link inside TLS 1.3 (the node must listen with
  /// listen_options::tls; a mismatch either way is an os_error (EPROTO)
  /// naming it, at once).
  bool tls = false;
};

namespace detail {
struct remote_link;

actor remote_spawn(remote_link& l, const spawn_options& o, function_address entry,
                   function_address fn, bytes args);
}  // namespace detail

class node {
 public:
  node() = default;

  /// Makes this root reachable by other nodes on port (0: a free port),
  /// with key. Returns the port. One listening port per root: value_error
  /// when already listening; os_error when the address cannot be bound.
  static std::uint16_t listen(std::uint16_t port, std::string_view authkey,
                              const listen_options& opts = {});
  /// The port this root listens on (0: not listening).
  static std::uint16_t listening_port();
  static node_stats stats();

  /// Connects to the node listening at host:port, authenticates and returns
  /// its handle. authentication_error for a wrong key (either side's);
  /// os_error if nothing answers; timeout_error after `timeout` (also when
  /// the node stayed busy, at its cap of pending handshakes, until then).
  static node connect(const std::string& host, std::uint16_t port, std::string_view authkey,
                      duration timeout = duration(10));
  static node connect(const std::string& host, std::uint16_t port, std::string_view authkey,
                      const connect_options& opts, duration timeout = duration(10));

  /// Starts make_behavior(args...) as an actor process on that node (under
  /// that node's root, as its own actors are). The node must run the same
  /// program (make_behavior travels as an address): value_error otherwise.
  template <class F, class... A>
  actor spawn(const spawn_options& opts, F make_behavior, A&&... args) const {
    using Fd = std::decay_t<F>;
    static_assert(
        std::is_pointer_v<Fd> || (std::is_empty_v<Fd> && std::is_default_constructible_v<Fd>),
        "isola::node::spawn: make_behavior must be a function pointer or a captureless lambda");
    std::tuple<detail::stored_arg_t<A>...> t(std::forward<A>(args)...);
    auto [fe, ff] = detail::spawn_addresses<Fd, detail::stored_arg_t<A>...>(make_behavior);
    bytes encoded;
    {
      detail::remote_handle_scope scope(detail::remote_handle_scope::mode::encode_for, id());
      encoded = encode(t);
    }
    return detail::remote_spawn(checked(), opts, fe, ff, std::move(encoded));
  }
  template <class F, class... A>
  requires(!std::is_same_v<std::remove_cvref_t<F>, spawn_options>) actor
      spawn(F make_behavior, A&&... args)
  const { return spawn(spawn_options{}, make_behavior, std::forward<A>(args)...); }

  /// False once the connection is lost (the node died, hung or is unreachable).
  bool connected() const;
  const std::string& host() const;
  std::uint16_t port() const;
  /// This root's number for the connection (actor::node() of its actors).
  std::uint64_t id() const;
  explicit operator bool() const noexcept { return link_ != nullptr; }

 private:
  explicit node(std::shared_ptr<detail::remote_link> l) : link_(std::move(l)) {}
  detail::remote_link& checked() const;
  std::shared_ptr<detail::remote_link> link_;
};

}  // namespace isola
