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
  bool truncated = false;
  ssize_t r = recv_fds_once(sock, std::span(buf.data(), buf.size()), fds,
                            dontwait ? MSG_DONTWAIT : 0, &truncated);
  if (r < 0) {
    if (r == -EAGAIN || r == -EWOULDBLOCK) return std::nullopt;
    if (r == -ECONNRESET) return 0;
    throw_errno("recvmsg (control channel)", static_cast<int>(-r));
  }
  if (truncated) throw decode_error("control channel: an oversize packet");
  return static_cast<std::size_t>(r);
}

}  // namespace isola::detail
