// isola/listener.hpp — Python's multiprocessing.connection Listener and
// Client: connections between processes that did not start each other.
//
//   isola::listener l({"localhost", 0}, {.authkey = "secret"});   // port 0: any
//   // in another program:  auto c = isola::client(addr, "secret");
//   isola::connection c = l.accept();
//   c.send(std::string("hello"));
//
// What comes back is an isola::connection, the same as one end of pipe():
// send/recv/send_bytes/recv_bytes/poll, frames checked and bounded by
// connection_options::max_message_size (listener_options::connection).
//
// Addresses are Python's: a unix socket path (a leading '\0' makes it an
// abstract name, no file), or a TCP host and port. A string "host:port" (or
// "[v6addr]:port") is TCP; any other string is a path.
//
// With an authkey, every peer runs the one handshake of isola (the manager's
// and nodes', runtime/src/sys/handshake.hpp) with its own magic, so a
// listener, a manager and a node can never be mistaken for one another: each
// side proves the key over the other's fresh challenge, without sending it.
// - A peer that proves another key (or sends anything but a proof) is
//   refused: accept() throws authentication_error, the listener stays open,
//   and the client sees authentication_error too (Python: AuthenticationError
//   on both sides).
// - A peer that closes, dies or stalls before it has sent its whole proof
//   is dropped without an error (Python raises EOFError from accept(), or
//   blocks for ever); a stalled one after listener_options::handshake_timeout.
//   Pending handshakes run side by side, so a stalled peer never delays
//   another one, and accept(t) returns by t whatever the peers do.
// - Without an authkey nothing is exchanged before the first message (as in
//   Python): a listener with a key and a client without one (or the reverse)
//   do not understand each other. Give both ends the same key, or neither.
//
// A listener is used by one thread at a time, in the process that made it:
// a child started by isola::process under fork finds it closed (as it finds
// the connections it was not given; under spawn and forkserver it has none),
// so a child never keeps the port or the socket file after the parent's
// close(). Only the process that made a socket file removes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "isola/connection.hpp"

namespace isola {

/// Python's families 'AF_UNIX' and 'AF_INET' (IPv6 hosts are AF_INET here).
enum class address_family { unix_socket, tcp };

/// Where a listener listens and a client connects.
class address {
 public:
  /// No address: a listener picks one of its family (Python's address=None).
  address() = default;
  /// "host:port" or "[v6]:port": TCP; anything else: a unix socket path,
  /// abstract if it starts with '\0'.
  address(std::string s);                              // NOLINT: implicit, as Python takes a string
  address(const char* s) : address(std::string(s)) {}  // NOLINT
  /// TCP, Python's (host, port) tuple; port 0 asks the listener to pick one.
  address(std::string host, std::uint16_t port);
  /// A unix socket path, never read as host:port.
  static address unix_socket(std::string path);

  bool empty() const noexcept { return !set_; }
  address_family family() const noexcept { return family_; }
  /// A unix address whose path starts with '\0' (Linux's abstract names).
  bool abstract() const noexcept;
  /// The unix path (with its '\0' if abstract); empty for TCP.
  const std::string& path() const noexcept {
    return family_ == address_family::unix_socket ? text_ : none_;
  }
  /// The TCP host; empty for unix.
  const std::string& host() const noexcept {
    return family_ == address_family::tcp ? text_ : none_;
  }
  std::uint16_t port() const noexcept { return port_; }
  /// "host:port", or the path (an abstract name's '\0' shown as '@').
  std::string to_string() const;

  friend bool operator==(const address& a, const address& b) {
    return a.set_ == b.set_ && a.family_ == b.family_ && a.text_ == b.text_ && a.port_ == b.port_;
  }

  /// So that an address can be a process argument.
  template <class Archive>
  void serialize(Archive& ar) {
    ar(set_, family_, text_, port_);
  }

 private:
  static inline const std::string none_;
  bool set_ = false;
  address_family family_ = address_family::unix_socket;
  std::string text_;
  std::uint16_t port_ = 0;
};

std::ostream& operator<<(std::ostream& os, const address& a);

struct listener_options {
  /// The family of the address picked when none is given (Python's family).
  address_family family = address_family::unix_socket;
  /// The kernel's queue of connections not yet accepted (Python's default 1).
  int backlog = 1;
  /// If set, every peer must prove it holds this key before accept()
  /// returns it (Python's authkey; none: no authentication).
  std::optional<std::string> authkey{};
  /// How long a connected peer may take to finish the handshake before it
  /// is dropped (also what an untimed accept() grants a stalled peer).
  std::chrono::duration<double> handshake_timeout = std::chrono::seconds(10);
  /// What the accepted connections accept (max_message_size).
  connection_options connection{};
};

class listener {
 public:
  using duration = std::chrono::duration<double>;

  /// Listens at `where` (empty: a new unix socket under $TMPDIR or /tmp, or
  /// localhost on a free port for address_family::tcp). Binding an address
  /// in use is an os_error (EADDRINUSE), as in Python.
  explicit listener(isola::address where = {}, listener_options opts = {});
  ~listener();
  listener(listener&&) noexcept;
  listener& operator=(listener&&) noexcept;
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  /// The next connection (authenticated, if there is a key). A peer that
  /// fails to authenticate: authentication_error (the listener stays open).
  /// A closed listener: os_error (EBADF), as Python's OSError.
  connection accept();
  /// The same, giving up at the timeout with timeout_error.
  connection accept(duration timeout);
  /// A connection if one is ready now (a handshake takes a few round trips:
  /// call again, or use accept(t)).
  std::optional<connection> try_accept();

  /// Stops listening; a unix socket file is removed (by the process that
  /// created it only). Peers still in their handshake are dropped.
  void close() noexcept;
  bool closed() const noexcept;

  /// Where it listens: with the port picked for port 0.
  const isola::address& address() const noexcept;
  /// The peer of the last accepted connection (an unnamed unix peer has an
  /// empty path), none before the first.
  std::optional<isola::address> last_accepted() const;
  /// The listening socket (readable when a peer connects), for wait/poll.
  int fileno() const;

 private:
  struct state;
  state* s_checked();  // os_error (EBADF) if moved from
  std::unique_ptr<state> s_;
};

/// Python's Client(address, authkey): connects, runs the handshake if there
/// is a key, and returns the connection. With a timeout the connect and the
/// handshake are done by then (else timeout_error); without one, a client
/// waits for the listener's accept() as long as it takes, as in Python.
/// Nothing listening: os_error with ECONNREFUSED, or file_not_found_error
/// for a unix path that does not exist (Python's ConnectionRefusedError,
/// FileNotFoundError). A key the listener does not hold, or a peer that is
/// no isola listener: authentication_error.
connection client(const address& where, std::optional<std::string> authkey = std::nullopt,
                  std::optional<std::chrono::duration<double>> timeout = std::nullopt,
                  connection_options opts = {});

}  // namespace isola
