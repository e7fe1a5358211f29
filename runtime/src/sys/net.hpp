// Listening and connecting sockets, TCP and abstract AF_UNIX: the one place
// that resolves addresses, binds, listens and connects with a deadline. The
// manager and nodes add what is theirs (keepalive, the handshake, handing the
// socket to CAF) on top. Errors are returned, not thrown: each caller words
// them for its own API (os_error, manager_error, a reply to a client).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <span>
#include <string>

#include "isola/detail/deadline.hpp"
#include "sys/os.hpp"

namespace isola::detail::net {

/// A socket, or why there is none: err is an errno value (EINVAL for a name
/// that does not resolve, ETIMEDOUT for a deadline) and what says it in words.
struct socket_result {
  unique_fd fd;
  std::uint16_t port = 0;  // listen: the port actually bound (port 0 picks one)
  int err = 0;
  std::string what;
  explicit operator bool() const noexcept { return static_cast<bool>(fd); }
};

/// Listens on host:port (host empty: every local address), SO_REUSEADDR,
/// close-on-exec, non-blocking if asked.
socket_result tcp_listen(const std::string& host, std::uint16_t port, bool nonblocking,
                         int backlog = 128);

/// Connects to host:port by the deadline, trying each address the name
/// resolves to. The socket comes back blocking unless `nonblocking`, with
/// TCP_NODELAY (every message of isola is a request or a reply).
socket_result tcp_connect(const std::string& host, std::uint16_t port, const deadline& d,
                          bool nonblocking);

/// Where a connection comes from, for the per-source caps of pending
/// handshakes: the IPv4 address (also when IPv4-mapped), the /64 of an IPv6
/// one (a host owns a whole /64), "local" for AF_UNIX peers.
std::string source_of(const sockaddr_storage& ss);

/// A reserve descriptor (/dev/null) for accepting at EMFILE/ENFILE. With a
/// level-triggered listener, a process out of descriptors cannot accept, the
/// listener stays readable, and the loop spins; with the reserve closed for
/// a moment it accepts the waiting connection and sheds it at once, so the
/// backlog drains and the listener goes quiet.
class accept_reserve {
 public:
  accept_reserve();
  ~accept_reserve();
  accept_reserve(const accept_reserve&) = delete;
  accept_reserve& operator=(const accept_reserve&) = delete;

  enum class result {
    accepted,  // fd is a new connection
    shed,      // out of descriptors: one connection was accepted, told `notice`, closed
    empty,     // nothing waiting (EAGAIN)
    failed,    // another error (errno), or no reserve to shed with: pause the listener
  };
  /// One accept4 (non-blocking, close-on-exec) on the listener `lfd`.
  result accept(int lfd, int& fd, sockaddr_storage& peer, std::span<const char> notice);

 private:
  int spare_ = -1;
};

/// The sockaddr of an abstract AF_UNIX name (no file; gone with its last
/// descriptor); returns its length.
socklen_t abstract_address(const std::string& name, sockaddr_un& sa);

/// Listens on / connects to an abstract AF_UNIX stream socket. The connect
/// gives up at `d` (ETIMEDOUT) while the listener's backlog stays full.
socket_result unix_listen(const std::string& name);
socket_result unix_connect(const std::string& name, const deadline& d);
/// The same for any AF_UNIX address (a path or an abstract name).
socket_result unix_listen(const sockaddr_un& sa, socklen_t len, int backlog);
socket_result unix_connect(const sockaddr_un& sa, socklen_t len, const deadline& d);

}  // namespace isola::detail::net
