// The challenge-response handshake that both the manager and nodes run on a
// fresh socket before anything else is read from it: each side proves it
// holds the shared key without sending it, and each side's proof is over a
// challenge the other side chose, so a captured exchange cannot be replayed
// (a new connection gets a new challenge) or reflected (the two directions
// use different labels).
//
//   server -> client  magic (8) + 32 random bytes S                 hello
//   client -> server  HMAC(key, client_label + S) + 32 random bytes C
//                     + `extra` bytes (the manager: the program identity)
//   server -> client  "FAIL" and close, or
//                     "OKAY" + HMAC(key, server_label + C)            verdict
//   [client -> server "OKAY" or "FAIL"]            confirm (nodes only)
//
// Every message has a fixed size, so a server reads exactly what it expects
// and nothing a peer sends before the end is ever decoded. The pieces are
// pure functions over buffers: an event loop (the manager's, a node's
// gatekeeper) and a blocking client drive the same code.
//
// A server at its cap of pending handshakes (per source address, or in all)
// sends the 8-byte busy notice instead of a hello and closes: the client
// sees outcome::busy, never a wrong key, and may try again (both isola
// clients do, until their deadline). Pending handshakes are refused, never
// evicted: a flood cannot push out a real client already half way through.
//
// Keys: a key of at least min_key_size (16) bytes is used as it is; a
// shorter one (a password a person chose) is first stretched with
// PBKDF2-HMAC-SHA256 (stretch_iterations, a fixed salt), so that each guess
// of an offline dictionary attack on a sniffed exchange costs as much as
// 100 000 HMACs instead of one. Both sides stretch the same way, once per
// process and key (effective_key caches). A key of 16 bytes or more is
// assumed to be random (the manager's own is 32 random bytes) and proofs over
// it are what they always were.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "isola/detail/deadline.hpp"
#include "sys/crypto.hpp"

namespace isola::detail::handshake {

using challenge = std::array<std::uint8_t, 32>;

/// Who runs the handshake: the magic that opens the hello, the labels of the
/// two proofs, and what else the client's response carries.
struct spec {
  std::array<char, 8> magic;
  std::string_view client_label;
  std::string_view server_label;
  std::size_t extra_bytes = 0;   // appended to the client's response
  bool client_confirms = false;  // the client answers the verdict
  /// The magic of the same protocol in its other mode (with TLS after the
  /// handshake, or without): a client that reads it instead of `magic` knows
  /// the two ends disagree about TLS (outcome::other_mode), not that the
  /// peer is something else. All zero: no other mode.
  std::array<char, 8> other_magic{};
};

/// The two challenges of a finished handshake: what a TLS session over the
/// same socket derives its key from (sys/tls.hpp).
struct transcript {
  challenge server{};  // S, from the hello
  challenge client{};  // C, from the response
};

inline constexpr std::size_t hello_size = 8 + 32;
/// What a server at its cap sends instead of a hello (then it closes).
inline constexpr std::array<char, 8> busy_notice{'I', 'S', 'O', 'L', 'A', 'B', 'S', 'Y'};
inline constexpr std::size_t verdict_size = 4 + 32;
inline constexpr std::size_t confirm_size = 4;
inline std::size_t response_size(const spec& s) { return 32 + 32 + s.extra_bytes; }

/// A fresh challenge (kernel randomness; throws if there is none).
challenge new_challenge();

inline constexpr std::size_t min_key_size = 16;
inline constexpr unsigned stretch_iterations = 100000;
inline constexpr std::string_view stretch_salt = "isola-key-stretch-v1";

/// The key proofs are made with: `key` itself when it has min_key_size bytes
/// or more, else PBKDF2-HMAC-SHA256(key, stretch_salt, stretch_iterations)
/// (computed once per process and key, ~30 ms; lock-free, fork-safe cache).
std::string effective_key(std::string_view key);

/// HMAC(effective_key(key), label + challenge): one side's proof.
sha256_digest proof(std::string_view key, std::string_view label,
                    std::span<const std::uint8_t, 32> challenge);

// --- the server's side ------------------------------------------------------

std::array<std::uint8_t, hello_size> make_hello(const spec& s, const challenge& server_challenge);

/// Checks a whole response against the server's challenge. The verdict to
/// send when the client proved the key; none when it did not (send "FAIL").
std::optional<std::array<std::uint8_t, verdict_size>> make_verdict(
    const spec& s, std::string_view key, const challenge& server_challenge,
    std::span<const std::uint8_t> response);

/// The client's extra bytes in a response (empty for spec.extra_bytes 0).
std::span<const std::uint8_t> response_extra(const spec& s, std::span<const std::uint8_t> response);

/// Tells a freshly accepted peer that the server is at its cap (best effort,
/// never blocks: a new socket's send buffer is empty). The caller closes fd.
void send_busy(int fd) noexcept;

// --- the client's side ------------------------------------------------------

/// What went wrong, for the caller to turn into its own error message.
enum class outcome {
  ok,
  closed,     // the peer closed (or the link failed) before the end
  timed_out,  // the deadline passed
  not_ours,   // the hello's magic is not this protocol's
  refused,    // the server said FAIL: it holds another key
  forged,     // the server said OKAY without proving the key
  busy,       // the server is at its cap of pending handshakes: try again later
  other_mode, // the server speaks this protocol in its other mode (TLS or not)
};

/// Runs the client's side on a blocking or non-blocking socket until the
/// deadline: reads the hello, sends the proof, its challenge and `extra`,
/// checks the verdict and (spec.client_confirms) answers it. `t`, when
/// given, receives both challenges.
outcome run_client(int fd, const spec& s, std::string_view key, std::span<const std::uint8_t> extra,
                   const deadline& d, transcript* t = nullptr);

/// Reads or writes exactly n bytes by the deadline (poll + EINTR; for
/// sockets, MSG_NOSIGNAL). False on EOF, error or timeout; timed_out tells.
bool read_exact(int fd, void* buf, std::size_t n, const deadline& d, bool* timed_out = nullptr);
bool write_exact(int fd, const void* buf, std::size_t n, const deadline& d,
                 bool* timed_out = nullptr);

}  // namespace isola::detail::handshake
