// isola/detail/sha256.hpp — SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104),
// for the manager's authentication handshake. No dependency: a plain, portable
// implementation, checked against the FIPS and RFC 4231 test vectors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace isola::detail {

using sha256_digest = std::array<std::uint8_t, 32>;

/// Incremental SHA-256.
class sha256 {
 public:
  sha256() noexcept;
  void update(std::span<const std::byte> data) noexcept;
  void update(std::string_view s) noexcept { update(std::as_bytes(std::span(s.data(), s.size()))); }
  sha256_digest finish() noexcept;

 private:
  void block(const std::uint8_t* p) noexcept;
  std::uint32_t h_[8];
  std::uint8_t buf_[64];
  std::size_t used_ = 0;
  std::uint64_t total_ = 0;
};

sha256_digest sha256_of(std::span<const std::byte> data) noexcept;

/// HMAC-SHA256(key, message).
sha256_digest hmac_sha256(std::span<const std::byte> key, std::span<const std::byte> message) noexcept;
inline sha256_digest hmac_sha256(std::string_view key, std::string_view message) noexcept {
  return hmac_sha256(std::as_bytes(std::span(key.data(), key.size())),
                     std::as_bytes(std::span(message.data(), message.size())));
}

/// Compares in time independent of where the first difference is.
bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;

}  // namespace isola::detail
