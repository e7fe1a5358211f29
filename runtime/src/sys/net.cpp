// Sockets: resolving, listening, connecting with a deadline (net.hpp).
#include "sys/net.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace isola::detail::net {

namespace {

socket_result failure(int err, std::string what) {
  socket_result r;
  r.err = err;
  r.what = std::move(what);
  return r;
}

std::uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

struct addresses {
  addrinfo* list = nullptr;
  ~addresses() {
    if (list) ::freeaddrinfo(list);
  }
};

// Waits for a non-blocking connect to finish by the deadline: 0 or an errno.
int finish_connect(int fd, const deadline& d) {
  for (;;) {
    int ms = -1;
    if (auto until = d.until()) {
      auto now = wait_clock::now();
      ms = *until <= now
               ? 0
               : static_cast<int>(std::min<long long>(
                     std::chrono::ceil<std::chrono::milliseconds>(*until - now).count(), 1 << 30));
    }
    pollfd pf{fd, POLLOUT, 0};
    int pr = ::poll(&pf, 1, ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return errno;
    if (pr == 0) return ETIMEDOUT;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    return soerr;
  }
}

}  // namespace

socket_result tcp_listen(const std::string& host, std::uint16_t port, bool nonblocking,
                         int backlog) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string ps = std::to_string(port);
  const std::string where = host + ":" + ps;
  addresses res;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), ps.c_str(), &hints, &res.list);
      rc != 0)
    return failure(EINVAL, "cannot listen on " + where + ": " + ::gai_strerror(rc));
  int err = EADDRNOTAVAIL;
  for (auto* ai = res.list; ai; ai = ai->ai_next) {
    unique_fd fd(::socket(ai->ai_family,
                          ai->ai_socktype | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0),
                          ai->ai_protocol));
    if (!fd) {
      err = errno;
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), backlog) == 0) {
      socket_result r;
      r.port = bound_port(fd.get());
      r.fd = std::move(fd);
      return r;
    }
    err = errno;
  }
  return failure(err, "cannot listen on " + where + ": " + std::strerror(err));
}

socket_result tcp_connect(const std::string& host, std::uint16_t port, const deadline& d,
                          bool nonblocking) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  const std::string ps = std::to_string(port);
  addresses res;
  if (int rc = ::getaddrinfo(host.c_str(), ps.c_str(), &hints, &res.list); rc != 0)
    return failure(EINVAL, "cannot resolve " + host + ": " + ::gai_strerror(rc));
  int err = ECONNREFUSED;
  for (auto* ai = res.list; ai; ai = ai->ai_next) {
    unique_fd fd(
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd) {
      err = errno;
      continue;
    }
    int rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS || err == EINTR) err = finish_connect(fd.get(), d);
    if (err != 0) {
      if (err == ETIMEDOUT) break;  // the deadline is spent for every address
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!nonblocking) ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    socket_result r;
    r.fd = std::move(fd);
    return r;
  }
  return failure(err, err == ETIMEDOUT ? host + ":" + ps + " did not answer in time"
                                       : host + ":" + ps + ": " + std::strerror(err));
}

std::string source_of(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss).sin_addr;
    return std::string("4:") + std::string(reinterpret_cast<const char*>(&a), 4);
  }
  if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a))
      return std::string("4:") + std::string(reinterpret_cast<const char*>(a.s6_addr) + 12, 4);
    return std::string("6:") + std::string(reinterpret_cast<const char*>(a.s6_addr), 8);
  }
  return "local";
}

accept_reserve::accept_reserve() : spare_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

accept_reserve::~accept_reserve() {
  if (spare_ >= 0) ::close(spare_);
}

accept_reserve::result accept_reserve::accept(int lfd, int& fd, sockaddr_storage& peer,
                                              std::span<const char> notice) {
  if (spare_ < 0) spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // taken back last time?
  for (;;) {
    socklen_t sl = sizeof peer;
    fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return result::accepted;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return result::empty;
    if ((errno != EMFILE && errno != ENFILE) || spare_ < 0) return result::failed;
    ::close(spare_);
    spare_ = -1;
    int shed = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    const int e = errno;
    if (shed >= 0) {
      if (!notice.empty())
        (void)::send(shed, notice.data(), notice.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(shed);
    }
    spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (shed >= 0) return result::shed;
    if (e == EAGAIN || e == EWOULDBLOCK) return result::empty;
    errno = e;
    return result::failed;
  }
}

socklen_t abstract_address(const std::string& name, sockaddr_un& sa) {
  std::memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  std::size_t n = std::min(name.size(), sizeof sa.sun_path - 1);
  std::memcpy(sa.sun_path + 1, name.data(), n);  // sun_path[0] = 0: abstract
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

socket_result unix_listen(const std::string& name) {
  sockaddr_un sa{};
  socklen_t len = abstract_address(name, sa);
  return unix_listen(sa, len, 128);
}

socket_result unix_listen(const sockaddr_un& sa, socklen_t len, int backlog) {
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return failure(errno, std::string("socket: ") + std::strerror(errno));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), len) != 0 ||
      ::listen(fd.get(), backlog) != 0) {
    int e = errno;
    return failure(e, std::string("cannot listen on its socket: ") + std::strerror(e));
  }
  socket_result r;
  r.fd = std::move(fd);
  return r;
}

socket_result unix_connect(const std::string& name, const deadline& d) {
  sockaddr_un sa{};
  socklen_t len = abstract_address(name, sa);
  return unix_connect(sa, len, d);
}

socket_result unix_connect(const sockaddr_un& sa, socklen_t len, const deadline& d) {
  // Non-blocking: a blocking AF_UNIX connect waits, with no bound, while the
  // listener's backlog is full, which is what a SIGSTOPped manager leaves.
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return failure(errno, std::string("socket: ") + std::strerror(errno));
  auto pause = std::chrono::microseconds(500);
  while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), len) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    if (e != EAGAIN) return failure(e, std::strerror(e));
    // A full backlog has no readiness to poll for: try again shortly.
    if (d.expired())
      return failure(ETIMEDOUT, "its listener accepts no connection (its backlog is full)");
    auto until = d.capped(std::chrono::duration_cast<wait_clock::duration>(pause));
    std::this_thread::sleep_until(until);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  socket_result r;
  r.fd = std::move(fd);
  return r;
}

}  // namespace isola::detail::net
