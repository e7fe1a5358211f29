// SHA-256 and HMAC-SHA256 over libcrypto (crypto.hpp). A failure inside
// libcrypto (out of memory) is an isola::error naming the call; it is
// translated here and nowhere else.
#include "sys/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "isola/error.hpp"

namespace isola::detail {

namespace {
[[noreturn]] void fail(const char* what) {
  throw error(std::string("libcrypto: ") + what + " failed");
}
}  // namespace

struct sha256::context {
  EVP_MD_CTX* md = nullptr;
  ~context() { EVP_MD_CTX_free(md); }
};

sha256::sha256() : ctx_(std::make_unique<context>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
    fail("EVP_DigestInit_ex");
}

sha256::~sha256() = default;

void sha256::update(std::span<const std::byte> data) {
  if (EVP_DigestUpdate(ctx_->md, data.data(), data.size()) != 1) fail("EVP_DigestUpdate");
}

sha256_digest sha256::finish() {
  sha256_digest d{};
  unsigned n = 0;
  if (EVP_DigestFinal_ex(ctx_->md, d.data(), &n) != 1 || n != d.size()) fail("EVP_DigestFinal_ex");
  return d;
}

sha256_digest sha256_of(std::span<const std::byte> data) {
  sha256 h;
  h.update(data);
  return h.finish();
}

sha256_digest hmac_sha256(std::span<const std::byte> key, std::span<const std::byte> message) {
  sha256_digest d{};
  unsigned n = 0;
  // An empty key is a valid HMAC key; libcrypto wants a non-null pointer.
  static const unsigned char empty = 0;
  const void* k = key.empty() ? &empty : static_cast<const void*>(key.data());
  if (!HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(), d.data(), &n) ||
      n != d.size())
    fail("HMAC(SHA-256)");
  return d;
}

bool constant_time_equal(std::span<const std::uint8_t> a,
                         std::span<const std::uint8_t> b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace isola::detail
