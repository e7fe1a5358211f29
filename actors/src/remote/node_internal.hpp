// What the parts of isola::node share (private to actors/src/remote/): the
// atoms of the messages between a node's client actor and another node's
// gateway, the authentication handshake both ends of a connection run, and
// the conversions of payloads to and from CAF strings.
//
// gatekeeper.cpp  listen: accepting, the handshake, handing sockets to BASP
// gateway.cpp     serving the requests of the nodes connected to this one
// node_client.cpp connect, and what handles of another node's actors do
// spawn_blob.cpp  the wire form of a spawn request, and the entry points a
//                 spawn request may name
//
// The handshake (each side proves it knows the key by an HMAC-SHA256 of the
// other's random challenge) is here, in one place, because both ends must
// agree on every byte of it: an isola node sees only a peer that passed it.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <caf/all.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sys/handshake.hpp"
#include "sys/os.hpp"

namespace isola {
namespace detail {
namespace node_internal {

using is_send_atom = caf::atom_constant<caf::atom("isola_snd")>;
using is_req_atom = caf::atom_constant<caf::atom("isola_req")>;
using is_mon_atom = caf::atom_constant<caf::atom("isola_mon")>;
using is_alive_atom = caf::atom_constant<caf::atom("isola_alv")>;
using is_spawn_atom = caf::atom_constant<caf::atom("isola_spn")>;
using is_ok_atom = caf::atom_constant<caf::atom("isola_ok")>;
using is_err_atom = caf::atom_constant<caf::atom("isola_err")>;
using is_down_atom = caf::atom_constant<caf::atom("isola_dwn")>;
using is_timeout_atom = caf::atom_constant<caf::atom("isola_tmo")>;

// ---------------------------------------------------------------- handshake

/// Nodes run sys/handshake.hpp's handshake with their own magic and labels,
/// no extra bytes, and a confirmation from the client (the server hands the
/// socket to BASP only once the client has checked the server's proof).
/// A node that listens with TLS opens its hello with another magic: a
/// client in the other mode sees the disagreement at the first 8 bytes
/// (outcome::other_mode) and says so, instead of failing later on bytes it
/// cannot read. With TLS the handshake is followed by a TLS 1.3 handshake
/// keyed by it (sys/tls.hpp), then BASP runs inside TLS.
inline const handshake::spec node_handshake{{'I', 'S', 'O', 'L', 'A', '-', 'N', '1'},
                                            "isola-node-client",
                                            "isola-node-server",
                                            0,
                                            true,
                                            {'I', 'S', 'O', 'L', 'A', '-', 'N', 'T'}};
inline const handshake::spec node_tls_handshake{{'I', 'S', 'O', 'L', 'A', '-', 'N', 'T'},
                                                "isola-node-client",
                                                "isola-node-server",
                                                0,
                                                true,
                                                {'I', 'S', 'O', 'L', 'A', '-', 'N', '1'}};
inline const handshake::spec& node_spec(bool tls) { return tls ? node_tls_handshake : node_handshake; }
/// The whole handshake, the TLS one included, within this.
constexpr auto handshake_timeout = std::chrono::seconds(5);
/// Handshakes a listening node lets wait at once, in all and from one source
/// address; beyond either a connection is told busy (gatekeeper.cpp).
constexpr std::size_t max_pending_handshakes = 128;
constexpr std::size_t max_pending_per_source = 16;

inline void set_nodelay_cloexec(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

inline std::string as_string(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}
inline std::span<const std::byte> as_bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// The gateway actor, started with its relay thread on the first call (once
/// per root); node::listen publishes it. The caller holds listen_m.
const caf::actor& gateway_actor();

}  // namespace node_internal
}  // namespace detail
}  // namespace isola
