// isola::listener and isola::client (isola/listener.hpp): sockets from
// sys/net.hpp, authentication by sys/handshake.hpp (the manager's and
// nodes' handshake, with a magic of its own), the result an isola::connection.
//
// The listener runs every pending handshake itself, without a thread: each
// accept() polls the listening socket and the peers half way through their
// handshake together, so one peer that stalls (SIGSTOP, or never writes)
// neither delays the others nor holds accept(t) past t. The server's side is
// read exactly (the 64-byte response, then the client's 4-byte confirmation)
// and nothing a peer sends is decoded before it has proved the key.
#include "isola/listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "isola/detail/deadline.hpp"
#include "isola/detail/handle_transfer.hpp"
#include "sys/handshake.hpp"
#include "sys/net.hpp"
#include "sys/os.hpp"
#include "sys/random.hpp"

namespace isola {

namespace {

namespace hs = detail::handshake;
using detail::deadline;
using detail::unique_fd;
using detail::wait_clock;

/// The handshake of listeners and clients: its own magic and labels (a
/// manager or a node answering a client, or connecting to a listener, is
/// told apart at the first 8 bytes), no extra bytes, and the client confirms
/// the listener's proof, so that accept() returns only peers that accepted
/// the listener too (Python's Listener checks both directions).
const hs::spec connection_handshake{{'I', 'S', 'O', 'L', 'A', 'C', 'N', '1'},
                                    "isola-connection-client",
                                    "isola-connection-server",
                                    0,
                                    true,
                                    {}};
constexpr std::size_t response_size = 64;  // hs::response_size(connection_handshake)
constexpr std::size_t confirm_size = hs::confirm_size;
/// Handshakes a listener lets wait at once; beyond, a new peer is told busy
/// (its client tries again until its deadline).
constexpr std::size_t max_pending = 64;
constexpr char okay[4] = {'O', 'K', 'A', 'Y'};
constexpr char fail[4] = {'F', 'A', 'I', 'L'};

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// A unix address's sockaddr; a path too long for one is Python's OSError.
socklen_t unix_sockaddr(const std::string& path, sockaddr_un& sa) {
  std::memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  const bool abstract = !path.empty() && path[0] == '\0';
  // A path needs its terminating NUL; an abstract name is its bytes exactly.
  if (path.size() + (abstract ? 0 : 1) > sizeof sa.sun_path)
    throw os_error(ENAMETOOLONG, "AF_UNIX path too long (" + std::to_string(path.size()) +
                                     " bytes, at most " + std::to_string(sizeof sa.sun_path - 1) +
                                     ")");
  if (!abstract && path.find('\0') != std::string::npos)
    throw value_error("a unix socket path cannot contain a NUL byte except as its first");
  if (!path.empty()) std::memcpy(sa.sun_path, path.data(), path.size());
  // An empty path: the kernel picks an abstract name (Linux autobind).
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                (abstract || path.empty() ? 0 : 1));
}

/// The address in a sockaddr (a numeric host for TCP).
address from_sockaddr(const sockaddr_storage& ss, socklen_t len) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &in.sin_addr, buf, sizeof buf);
    return address(buf, ntohs(in.sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof buf);
    return address(buf, ntohs(in6.sin6_port));
  }
  const auto& un = reinterpret_cast<const sockaddr_un&>(ss);
  const auto off = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path));
  std::size_t n = len > off ? static_cast<std::size_t>(len - off) : 0;
  n = std::min(n, sizeof un.sun_path);
  std::string path(un.sun_path, n);
  // A path comes with its NUL (sometimes several); an abstract name has none.
  if (!path.empty() && path[0] != '\0') path.resize(std::strlen(path.c_str()));
  return address::unix_socket(std::move(path));
}

address local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    detail::throw_errno("getsockname");
  return from_sockaddr(ss, len);
}

std::string temp_dir() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? std::string(t) : std::string("/tmp");
}

/// Python's default AF_UNIX address: a fresh name in the temporary folder.
std::string fresh_socket_path() {
  const auto r = detail::random_value<std::uint64_t>();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(r));
  return temp_dir() + "/isola-listener-" + std::to_string(::getpid()) + "-" + hex;
}

void set_blocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK); }

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on AF_UNIX
}

/// Sends a short message on a fresh socket without blocking: it fits its
/// empty send buffer, so anything less than all of it means the peer is gone.
bool send_now(int fd, const void* p, std::size_t n) {
  for (;;) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    return r == static_cast<ssize_t>(n);
  }
}

int poll_ms(std::optional<wait_clock::time_point> until) {
  if (!until) return -1;
  const auto now = wait_clock::now();
  if (*until <= now) return 0;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - now).count();
  return static_cast<int>(std::min<long long>(left, 1 << 30));
}

}  // namespace

// --- address ------------------------------------------------------------------

address::address(std::string s) : set_(true) {
  // "host:port" / "[v6]:port" is TCP; a path (anything with '/', an abstract
  // name, anything else) is a unix socket.
  if (!s.empty() && s[0] != '\0' && s.find('/') == std::string::npos) {
    const auto colon = s.rfind(':');
    if (colon != std::string::npos && all_digits(std::string_view(s).substr(colon + 1)) &&
        s.size() - colon - 1 <= 5) {
      std::string host = s.substr(0, colon);
      const unsigned long port = std::stoul(s.substr(colon + 1));
      bool ok = port <= 65535;
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
      else if (host.find(':') != std::string::npos)
        ok = false;  // an IPv6 host needs brackets: "::1:80" is ambiguous
      if (ok) {
        family_ = address_family::tcp;
        text_ = std::move(host);
        port_ = static_cast<std::uint16_t>(port);
        return;
      }
    }
  }
  text_ = std::move(s);
}

address::address(std::string host, std::uint16_t port)
    : set_(true), family_(address_family::tcp), text_(std::move(host)), port_(port) {}

address address::unix_socket(std::string path) {
  address a;
  a.set_ = true;
  a.text_ = std::move(path);
  return a;
}

bool address::abstract() const noexcept {
  return family_ == address_family::unix_socket && !text_.empty() && text_[0] == '\0';
}

std::string address::to_string() const {
  if (!set_) return "(no address)";
  if (family_ == address_family::tcp) {
    if (text_.find(':') != std::string::npos) return "[" + text_ + "]:" + std::to_string(port_);
    return text_ + ":" + std::to_string(port_);
  }
  if (abstract()) return "@" + text_.substr(1);
  return text_;
}

std::ostream& operator<<(std::ostream& os, const address& a) { return os << a.to_string(); }

// --- listener -------------------------------------------------------------------

namespace {
/// A peer half way through its handshake.
struct pending_peer {
  unique_fd fd;
  address peer;
  hs::challenge challenge{};
  std::array<std::uint8_t, response_size + confirm_size> got{};
  std::size_t have = 0;
  bool verdict_sent = false;
  wait_clock::time_point expires;
};
}  // namespace

struct listener::state {
  int fd = -1;
  isola::address where;
  listener_options opts;
  pid_t creator = 0;
  std::string socket_file;  // a unix socket file this process made
  std::vector<pending_peer> pending;
  std::optional<isola::address> last;
  detail::net::accept_reserve reserve;

  ~state() { close(); }

  /// A fork child holds no copy of a listener (as it holds only the
  /// connections it was given): the registry closes the listening socket,
  /// this drops the handshakes in progress. Otherwise a child that outlives
  /// the listener's close() would keep its port bound and its backlog
  /// filling, and clients would wait on a socket nobody accepts from.
  static void released_in_child(void* self) noexcept {
    auto* s = static_cast<state*>(self);
    s->fd = -1;  // closed by the registry
    for (auto& p : s->pending) ::close(p.fd.release());
    s->socket_file.clear();
  }

  void close() noexcept {
    pending.clear();
    if (fd >= 0) {
      detail::unregister_handle_fd(fd);
      ::close(fd);
    }
    fd = -1;
    // Only its creator removes the file: a fork child closing its copy of
    // the listener must not take the name from the parent (Python's Finalize
    // does the same).
    if (!socket_file.empty() && ::getpid() == creator) ::unlink(socket_file.c_str());
    socket_file.clear();
  }

  connection finish(unique_fd fd_in, const isola::address& peer) {
    set_blocking(fd_in.get());
    last = peer;
    return connection(fd_in.release(), true, true, opts.connection);
  }

  enum class step { more, done, dropped };

  /// Reads what the peer sent; answers the proof. Throws
  /// authentication_error for a wrong proof or a refused verdict.
  step progress(pending_peer& p) {
    const std::size_t want = p.verdict_sent ? response_size + confirm_size : response_size;
    while (p.have < want) {
      ssize_t r = ::recv(p.fd.get(), p.got.data() + p.have, want - p.have, MSG_DONTWAIT);
      if (r > 0) {
        p.have += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return step::more;
      return step::dropped;  // it closed or the link failed before its proof was whole
    }
    if (!p.verdict_sent) {
      auto verdict = hs::make_verdict(connection_handshake, *opts.authkey, p.challenge,
                                      std::span<const std::uint8_t>(p.got.data(), response_size));
      if (!verdict) {
        send_now(p.fd.get(), fail, sizeof fail);
        throw authentication_error(
            "listener at " + where.to_string() + ": the peer " + p.peer.to_string() +
            " did not prove it holds the authentication key (a wrong key, or not an isola "
            "client); it was dropped and the listener still listens");
      }
      if (!send_now(p.fd.get(), verdict->data(), verdict->size())) return step::dropped;
      p.verdict_sent = true;
      return progress(p);  // its confirmation may already be here
    }
    if (std::memcmp(p.got.data() + response_size, okay, sizeof okay) != 0)
      throw authentication_error("listener at " + where.to_string() + ": the peer " +
                                 p.peer.to_string() +
                                 " rejected the listener's proof of the authentication key");
    return step::done;
  }

  /// Takes the connections waiting in the backlog. Without a key the first
  /// one is the result; with one, each gets its hello and joins `pending`.
  std::optional<connection> take_new() {
    const bool auth = opts.authkey.has_value();
    for (;;) {
      int nfd = -1;
      sockaddr_storage ss{};
      const auto notice = auth ? std::span<const char>(hs::busy_notice) : std::span<const char>();
      switch (reserve.accept(fd, nfd, ss, notice)) {
        case detail::net::accept_reserve::result::empty: return std::nullopt;
        case detail::net::accept_reserve::result::shed: continue;
        case detail::net::accept_reserve::result::failed:
          detail::throw_errno("listener at " + where.to_string() + ": accept");
        case detail::net::accept_reserve::result::accepted: break;
      }
      unique_fd conn(nfd);
      socklen_t len = sizeof ss;
      isola::address peer = isola::address::unix_socket("");
      if (::getpeername(conn.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
        peer = from_sockaddr(ss, len);
      if (ss.ss_family != AF_UNIX) set_nodelay(conn.get());
      if (!auth) return finish(std::move(conn), peer);
      if (pending.size() >= max_pending) {
        hs::send_busy(conn.get());
        continue;
      }
      pending_peer p;
      p.fd = std::move(conn);
      p.peer = std::move(peer);
      p.challenge = hs::new_challenge();
      p.expires = wait_clock::now() +
                  std::chrono::duration_cast<wait_clock::duration>(opts.handshake_timeout);
      const auto hello = hs::make_hello(connection_handshake, p.challenge);
      if (!send_now(p.fd.get(), hello.data(), hello.size())) continue;  // gone already
      pending.push_back(std::move(p));
    }
  }

  std::optional<connection> accept_by(const deadline& d) {
    if (fd < 0) throw os_error(EBADF, "accept: the listener is closed");
    std::vector<pollfd> fds;
    for (;;) {
      // Peers past their time to authenticate are dropped.
      const auto now = wait_clock::now();
      std::erase_if(pending, [&](const pending_peer& p) { return p.expires <= now; });
      std::optional<wait_clock::time_point> until = d.until();
      for (const auto& p : pending)
        if (!until || p.expires < *until) until = p.expires;
      fds.clear();
      fds.push_back({fd, POLLIN, 0});
      for (const auto& p : pending) fds.push_back({p.fd.get(), POLLIN, 0});
      int r = ::poll(fds.data(), fds.size(), poll_ms(until));
      if (r < 0) {
        if (errno == EINTR) continue;
        detail::throw_errno("listener: poll");
      }
      if (r == 0) {
        if (d.expired()) return std::nullopt;
        continue;  // a pending peer's time ran out (dropped above), or a short poll
      }
      // Peers first (their handshakes started earlier), then new ones.
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        auto it = std::find_if(pending.begin(), pending.end(),
                               [&](const pending_peer& p) { return p.fd.get() == fds[i].fd; });
        if (it == pending.end()) continue;
        step s;
        try {
          s = progress(*it);
        } catch (...) {
          pending.erase(it);
          throw;
        }
        if (s == step::more) continue;
        if (s == step::dropped) {
          pending.erase(it);
          continue;
        }
        pending_peer done = std::move(*it);
        pending.erase(it);
        return finish(std::move(done.fd), done.peer);
      }
      if (fds[0].revents)
        if (auto c = take_new()) return c;
      // (deadline::now(): the next poll waits 0 ms, and returns 0 once
      // nothing more is ready.)
    }
  }
};

listener::listener(isola::address where, listener_options opts) : s_(std::make_unique<state>()) {
  if (opts.backlog < 0) opts.backlog = 0;
  s_->opts = std::move(opts);
  s_->creator = ::getpid();
  if (where.empty())
    where = s_->opts.family == address_family::tcp
                ? isola::address("localhost", 0)
                : isola::address::unix_socket(fresh_socket_path());
  if (where.family() == address_family::tcp) {
    auto r = detail::net::tcp_listen(where.host(), where.port(), true, s_->opts.backlog);
    if (!r) throw os_error(r.err, "listener: " + r.what);
    s_->fd = r.fd.release();
  } else {
    sockaddr_un sa{};
    const socklen_t len = unix_sockaddr(where.path(), sa);
    auto r = detail::net::unix_listen(sa, len, s_->opts.backlog);
    if (!r)
      throw os_error(
          r.err, "listener: cannot listen at " + where.to_string() + ": " + std::strerror(r.err));
    s_->fd = r.fd.release();
    ::fcntl(s_->fd, F_SETFL, ::fcntl(s_->fd, F_GETFL) | O_NONBLOCK);
    if (!where.path().empty() && !where.abstract()) s_->socket_file = where.path();
  }
  detail::register_handle_fd(s_->fd, s_.get(), &state::released_in_child);
  // What the kernel bound: the port picked for 0, the name autobind picked.
  s_->where = local_address(s_->fd);
  if (where.family() == address_family::unix_socket && !where.path().empty())
    s_->where = where;  // the path as the caller spelled it (Python's address)
}

listener::~listener() = default;
listener::listener(listener&&) noexcept = default;
listener& listener::operator=(listener&&) noexcept = default;

connection listener::accept() { return *s_checked()->accept_by(deadline::forever()); }

connection listener::accept(duration timeout) {
  auto* s = s_checked();
  if (auto c = s->accept_by(deadline::after(timeout))) return std::move(*c);
  std::ostringstream t;
  t << timeout.count();
  throw timeout_error("listener at " + s->where.to_string() + ": no connection within " + t.str() +
                      " s");
}

std::optional<connection> listener::try_accept() { return s_checked()->accept_by(deadline::now()); }

listener::state* listener::s_checked() {
  if (!s_) throw os_error(EBADF, "accept: the listener is closed (moved from)");
  return s_.get();
}

void listener::close() noexcept {
  if (s_) s_->close();
}

bool listener::closed() const noexcept { return !s_ || s_->fd < 0; }

const isola::address& listener::address() const noexcept {
  static const isola::address none;
  return s_ ? s_->where : none;
}

std::optional<isola::address> listener::last_accepted() const {
  return s_ ? s_->last : std::nullopt;
}

int listener::fileno() const {
  if (closed()) throw value_error("the listener is closed");
  return s_->fd;
}

// --- client ---------------------------------------------------------------------

namespace {

unique_fd connect_to(const address& where, const deadline& d) {
  if (where.empty()) throw value_error("client: no address to connect to");
  detail::net::socket_result r;
  if (where.family() == address_family::tcp) {
    r = detail::net::tcp_connect(where.host().empty() ? std::string("localhost") : where.host(),
                                 where.port(), d, false);
  } else {
    sockaddr_un sa{};
    const socklen_t len = unix_sockaddr(where.path(), sa);
    r = detail::net::unix_connect(sa, len, d);
  }
  if (r) return std::move(r.fd);
  const std::string what = "client: cannot connect to " + where.to_string() + ": ";
  if (r.err == ETIMEDOUT && d.expired())
    throw timeout_error(what + "no connection within the timeout");
  if (r.err == ENOENT)
    throw file_not_found_error(what + "no such socket file (nothing listens there)");
  if (r.err == ECONNREFUSED)
    throw os_error(ECONNREFUSED, what + "connection refused (nothing listens there)");
  throw os_error(r.err, what + (r.what.empty() ? std::string(std::strerror(r.err)) : r.what));
}

}  // namespace

connection client(const address& where, std::optional<std::string> authkey,
                  std::optional<std::chrono::duration<double>> timeout, connection_options opts) {
  const deadline d = timeout ? deadline::after(*timeout) : deadline::forever();
  auto pause = std::chrono::milliseconds(5);
  for (;;) {
    unique_fd fd = connect_to(where, d);
    if (!authkey) return connection(fd.release(), true, true, opts);
    const std::string at = "client: the listener at " + where.to_string();
    switch (hs::run_client(fd.get(), connection_handshake, *authkey, {}, d)) {
      case hs::outcome::ok: return connection(fd.release(), true, true, opts);
      case hs::outcome::busy: break;  // at its cap of pending handshakes: again
      case hs::outcome::timed_out:
        throw timeout_error(at +
                            " did not finish the handshake within the timeout (does it "
                            "call accept()? does it have an authkey?)");
      case hs::outcome::closed:
        throw os_error(ECONNRESET, at + " closed the connection during the handshake");
      case hs::outcome::not_ours:
      case hs::outcome::other_mode:
        throw authentication_error(at +
                                   " is not an isola listener (its greeting is another "
                                   "protocol's: a manager, a node?)");
      case hs::outcome::refused:
        throw authentication_error(at +
                                   " refused the authentication key (the digest did not "
                                   "match): use the key the listener was made with");
      case hs::outcome::forged:
        throw authentication_error(at +
                                   " did not prove it holds the authentication key: the "
                                   "connection was dropped");
    }
    fd.reset();
    if (d.expired())
      throw timeout_error(at +
                          " is busy (too many peers wait to authenticate) and stayed so "
                          "until the timeout");
    const auto until = d.capped(std::chrono::duration_cast<wait_clock::duration>(pause));
    std::this_thread::sleep_until(until);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

}  // namespace isola
