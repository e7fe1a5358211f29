// One datagram of a SOCK_SEQPACKET socket, with descriptors attached.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "isola/codec.hpp"
#include "sys/os.hpp"

namespace isola::detail {

/// The largest packet read from a control channel (so a message that an
/// actor process sends through the root to another node must fit in one).
constexpr std::size_t max_control_packet = 64 * 1024;

/// The packet's size (0: the peer closed), or nullopt when none is waiting
/// (dontwait). Received descriptors are appended to fds (O_CLOEXEC).
inline std::optional<std::size_t> recv_packet(int sock, bytes& buf, std::vector<int>& fds,
                                              bool dontwait) {
  if (buf.size() < max_control_packet) buf.resize(max_control_packet);
  msghdr msg{};
  iovec iov{buf.data(), buf.size()};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t r;
  do r = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    if (errno == ECONNRESET) return 0;
    throw_errno("recvmsg (control channel)");
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < n; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.push_back(fd);
      }
    }
  }
  if (msg.msg_flags & MSG_TRUNC) throw decode_error("control channel: an oversize packet");
  return static_cast<std::size_t>(r);
}

}  // namespace isola::detail
