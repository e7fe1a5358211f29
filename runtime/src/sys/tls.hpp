// TLS 1.3 over a socket that has just passed the HMAC handshake
// (sys/handshake.hpp), for node links and manager connections that ask for
// it. OpenSSL's libssl does the protocol; this is the one place that calls
// it, and the one place its errors become isola errors.
//
// No certificates: both ends hold an external pre-shared key (RFC 8446
// 4.2.11) derived from the authentication key AND the two challenges of the
// handshake that just ran on the same socket (derive_tls_psk). So the TLS
// session is bound to that handshake: a man in the middle who relays the
// HMAC handshake between two honest ends (he cannot answer it himself) still
// cannot complete TLS with either, and a session never repeats a key. The
// key exchange is psk_dhe_ke (ECDHE under the PSK), so a later leak of the
// authentication key does not open recorded traffic. TLS 1.3 only,
// AES-128-GCM or ChaCha20-Poly1305, no session tickets.
//
// libssl is loaded with dlopen on first use, as libcrypto is (crypto.cpp
// says why): a process that never opens a TLS link never maps it.
//
// A tls_session does not own its descriptor (the caller, or CAF's stream,
// closes it) and is used by one thread at a time: the handshake on the
// thread that ran the HMAC handshake, then reads and writes on the event
// loop that owns the socket (handed over with a happens-before edge).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "isola/detail/deadline.hpp"

namespace isola::detail {

using tls_psk = std::array<std::uint8_t, 32>;

/// HMAC-SHA256(effective_key(authkey), "isola-tls-psk-v1" + magic + S + C):
/// the link's key, from the handshake's magic (which protocol and mode), the
/// server's challenge S and the client's C.
tls_psk derive_tls_psk(std::string_view authkey, std::span<const char, 8> magic,
                       std::span<const std::uint8_t, 32> server_challenge,
                       std::span<const std::uint8_t, 32> client_challenge);

/// What a non-blocking step did.
enum class tls_io {
  done,        // the handshake finished / bytes moved
  want_read,   // wait for the socket to be readable, then call again
  want_write,  // wait for it to be writable, then call again
  closed,      // the peer closed (close_notify or EOF)
  failed,      // a protocol or socket error: the session is unusable (why())
};

class tls_session {
 public:
  enum class role { client, server };

  /// A session over a connected socket (not owned; made non-blocking here).
  /// Throws isola::error when libssl cannot be loaded or set up.
  tls_session(int fd, role r, const tls_psk& key);
  ~tls_session();
  tls_session(const tls_session&) = delete;
  tls_session& operator=(const tls_session&) = delete;

  /// One non-blocking step of the TLS handshake.
  tls_io handshake_step();
  /// The whole handshake, polling until the deadline. Throws timeout_error
  /// past it, authentication_error when the peer does not hold the same
  /// link key (a relay, tampering, or not our protocol), os_error when the
  /// peer closes or the socket fails.
  void handshake(const deadline& d, std::string_view who);
  bool established() const noexcept { return established_; }

  /// Non-blocking; n bytes at most; `moved` is what was read or written.
  tls_io read_some(void* buf, std::size_t n, std::size_t& moved);
  tls_io write_some(const void* buf, std::size_t n, std::size_t& moved);
  /// Whether libssl holds bytes already taken from the socket (decrypted or
  /// not): a reader must call read_some again before waiting on the socket,
  /// or they are stranded.
  bool has_pending() const noexcept;

  /// Sends close_notify, best effort, without blocking. The caller closes fd.
  void close() noexcept;

  /// What the last failed step reported (libssl's reason, or errno's).
  const std::string& why() const noexcept { return why_; }
  int fd() const noexcept { return fd_; }

  /// Throws the isola::error that a handshake step's failure means (`who`
  /// names the peer and the caller).
  [[noreturn]] void throw_failure(tls_io r, std::string_view who) const;

 private:
  tls_io classify(int rc);
  struct ssl_handle;
  int fd_;
  role role_;
  tls_psk key_;
  bool established_ = false;
  std::string why_;
  std::unique_ptr<ssl_handle> ssl_;
};

}  // namespace isola::detail
