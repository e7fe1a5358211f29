// SHA-256, HMAC-SHA256 and PBKDF2 from OpenSSL's libcrypto, and a comparison whose
// time does not depend on where two digests differ: what the handshakes
// (sys/handshake.hpp) and the program identity are built on. isola writes no
// cryptography of its own; the digests are the FIPS 180-4 / RFC 2104 ones,
// so what travels on the wire is what the earlier hand-written code sent.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace isola::detail {

using sha256_digest = std::array<std::uint8_t, 32>;

/// Incremental SHA-256 (an EVP digest context).
class sha256 {
 public:
  sha256();
  ~sha256();
  sha256(const sha256&) = delete;
  sha256& operator=(const sha256&) = delete;
  void update(std::span<const std::byte> data);
  void update(std::string_view s) { update(std::as_bytes(std::span(s.data(), s.size()))); }
  sha256_digest finish();

 private:
  struct context;
  std::unique_ptr<context> ctx_;
};

sha256_digest sha256_of(std::span<const std::byte> data);

/// Loads and initialises libcrypto (without its atexit cleanup) if not yet
/// done; throws isola::error if it cannot. Whoever loads libssl calls it first.
void load_libcrypto();

/// HMAC-SHA256(key, message).
sha256_digest hmac_sha256(std::span<const std::byte> key, std::span<const std::byte> message);
inline sha256_digest hmac_sha256(std::string_view key, std::string_view message) {
  return hmac_sha256(std::as_bytes(std::span(key.data(), key.size())),
                     std::as_bytes(std::span(message.data(), message.size())));
}

/// PBKDF2-HMAC-SHA256(password, salt, iterations), 32 bytes (RFC 8018):
/// what stretches a short authentication key (sys/handshake.hpp).
sha256_digest pbkdf2_hmac_sha256(std::string_view password, std::string_view salt,
                                 unsigned iterations);

/// Compares in time independent of where the first difference is (different
/// sizes compare unequal at once: sizes are not secret here).
bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;

}  // namespace isola::detail
