// A man in the middle for the TLS tests: a thread that accepts one
// connection on the loopback, connects it to a target port and forwards both
// ways, recording every byte; asked to, it flips one bit of what the client
// sends, or holds one chunk of what the server sends. Used by tests in real processes (node links, manager connections).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <cstdint>

namespace relay_test {

inline int listen_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 16) != 0)
    throw std::runtime_error(std::string("relay: bind/listen: ") + std::strerror(errno));
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  port = ntohs(sa.sin_port);
  return fd;
}

inline int connect_loopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// A man in the middle on loopback: accepts one connection, connects it to
/// the target and forwards both ways, recording every byte. Asked to, it
/// flips one bit of the next chunk from the client to the server, or of the
/// client's byte at a given offset of its stream.
class relay {
 public:
  explicit relay(std::uint16_t target) : target_(target) {
    lfd_ = listen_loopback(port_);
    ::pipe2(stop_, O_CLOEXEC);
    thread_ = std::thread([this] { run(); });
  }
  ~relay() {
    (void)::write(stop_[1], "x", 1);
    thread_.join();
    ::close(lfd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  std::uint16_t port() const { return port_; }
  void tamper_next() { tamper_.store(true); }
  void tamper_at(std::size_t offset) { tamper_at_.store(offset); }
  /// Holds the server's nth chunk (counted from 1, as recv() hands them
  /// over) for d before forwarding it: a slow peer at one step of a protocol.
  void delay_server_chunk(int nth, std::chrono::milliseconds d) {
    delay_nth_.store(nth);
    delay_ms_.store(static_cast<int>(d.count()));
  }
  bool tampered() const { return tampered_.load(); }
  std::string captured() {
    std::lock_guard lk(m_);
    return wire_;
  }

 private:
  void run() {
    pollfd a[2] = {{lfd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    if (::poll(a, 2, 30000) <= 0 || (a[1].revents & POLLIN)) return;
    int c = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    int s = connect_loopback(target_);
    if (s < 0) {
      ::close(c);
      return;
    }
    char buf[65536];
    for (bool open = true; open;) {
      pollfd p[3] = {{c, POLLIN, 0}, {s, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 3, 30000) <= 0 || p[2].revents) break;
      for (int i = 0; i < 2 && open; ++i) {
        if (!p[i].revents) continue;
        const int from = i == 0 ? c : s, to = i == 0 ? s : c;
        ssize_t n = ::recv(from, buf, sizeof buf, 0);
        if (n <= 0) {
          open = false;
          break;
        }
        {
          std::lock_guard lk(m_);
          wire_.append(buf, static_cast<std::size_t>(n));
        }
        if (i == 1 && ++server_chunks_ == delay_nth_.load())
          std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
        if (i == 0 && tamper_.exchange(false)) {
          buf[n / 2] ^= 0x01;  // one bit of one byte, mid-record
          tampered_.store(true);
        }
        if (i == 0) {
          const std::size_t at = tamper_at_.load();
          if (at >= from_client_ && at < from_client_ + static_cast<std::size_t>(n)) {
            buf[at - from_client_] ^= 0x01;
            tampered_.store(true);
          }
          from_client_ += static_cast<std::size_t>(n);
        }
        if (::send(to, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) open = false;
      }
    }
    ::close(c);
    ::close(s);
  }

  std::uint16_t target_, port_ = 0;
  int lfd_ = -1, stop_[2] = {-1, -1};
  std::mutex m_;
  std::string wire_;
  std::atomic<bool> tamper_{false}, tampered_{false};
  std::atomic<std::size_t> tamper_at_{static_cast<std::size_t>(-1)};
  std::size_t from_client_ = 0;
  int server_chunks_ = 0;
  std::atomic<int> delay_nth_{0}, delay_ms_{0};
  std::thread thread_;
};

}  // namespace relay_test
