// Hostile peers for the handshake tests: connections from a chosen loopback
// source address (127.0.0.2, 127.0.0.3, ...: other "hosts" as far as a
// per-source cap can tell) that never say a word, or say one byte a second,
// or are opened once and then held. Run in a child process by the tests.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace flood {

enum class mode {
  bare,  // hold `count` silent connections; reopen each one the server closes
  slow,  // the same, sending one byte per second on each
  hold,  // open `count` once (as far as the server lets), then sit idle
};

/// A TCP connection to 127.0.0.1:port from `source`; -1 if it did not
/// complete within 500 ms (a full backlog) or failed.
inline int connect_from(const std::string& source, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 &&
       errno != EINPROGRESS)) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int err = 0;
  socklen_t sl = sizeof err;
  if (::poll(&p, 1, 500) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 ||
      err != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Floods 127.0.0.1:port from `source` until killed; calls ready() once,
/// after the first round of `count` connection attempts.
[[noreturn]] inline void run(const std::string& source, std::uint16_t port, mode m, int count,
                             const std::function<void()>& ready) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  std::vector<int> fds;
  for (int i = 0; i < count; ++i)
    if (int fd = connect_from(source, port); fd >= 0) fds.push_back(fd);
  ready();
  if (m == mode::hold)
    for (;;) ::pause();
  auto next_byte = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<pollfd> pf;
    for (int fd : fds) pf.push_back({fd, POLLIN, 0});
    ::poll(pf.data(), pf.size(), 10);
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[256];
      ssize_t r = ::recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0 || (r < 0 && errno == EAGAIN)) continue;  // a hello, or a busy notice
      ::close(fds[i]);  // closed by the server (busy, or its deadline): open another
      fds[i] = -1;
    }
    std::erase(fds, -1);
    // Up to 20 new connections per round (up to 2000 a second): a flood,
    // paced so that the test's two cores (under ASan too) are not all the
    // flooders' and the server's refusing.
    for (int n = 0; n < 20 && static_cast<int>(fds.size()) < count; ++n) {
      int fd = connect_from(source, port);
      if (fd < 0) break;
      fds.push_back(fd);
    }
    ::usleep(10000);
    if (m == mode::slow && std::chrono::steady_clock::now() >= next_byte) {
      for (int fd : fds) (void)::send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      next_byte += std::chrono::seconds(1);
    }
  }
}

}  // namespace flood
