// SHA-256, HMAC-SHA256 and PBKDF2 over libcrypto (crypto.hpp). A failure inside
// libcrypto (out of memory, or the library missing) is an isola::error naming
// the call; it is translated here and nowhere else.
//
// libcrypto is loaded with dlopen on the first digest, not linked: only
// handshakes need it, and a linked libcrypto (with -z now, see
// runtime/CMakeLists.txt) made every process of every isola program map and
// relocate it: an idle actor's VmRSS went from 2.68 to 3.53 MB (bench/actors).
#include "sys/crypto.hpp"

#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <mutex>
#include <string>
#include <type_traits>

#include "isola/error.hpp"

namespace isola::detail {

namespace {
[[noreturn]] void fail(const char* what) {
  throw error(std::string("libcrypto: ") + what + " failed");
}

/// The few libcrypto functions isola calls, resolved once.
struct libcrypto {
  decltype(&EVP_MD_CTX_new) md_ctx_new = nullptr;
  decltype(&EVP_MD_CTX_free) md_ctx_free = nullptr;
  decltype(&EVP_sha256) sha256 = nullptr;
  decltype(&EVP_DigestInit_ex) digest_init = nullptr;
  decltype(&EVP_DigestUpdate) digest_update = nullptr;
  decltype(&EVP_DigestFinal_ex) digest_final = nullptr;
  decltype(&HMAC) hmac = nullptr;
  decltype(&CRYPTO_memcmp) memcmp = nullptr;
  decltype(&PKCS5_PBKDF2_HMAC) pbkdf2 = nullptr;
};

const libcrypto& crypto_lib() {
  static libcrypto lib;
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    // The soname of the libcrypto the headers come from (OpenSSL 3 on bookworm).
    void* h = ::dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = ::dlerror();
      failure = std::string("cannot load libcrypto.so.3: ") + (e ? e : "unknown error");
      return;
    }
    auto get = [h](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      return fn != nullptr;
    };
    // No atexit cleanup: libcrypto's would free its global state while a
    // thread of ours (a node's gatekeeper, a manager's loop) may still be
    // in a handshake when main returns (TSan saw exactly that). It must be
    // the first initialisation, so libssl (tls.cpp) is loaded after this.
    decltype(&OPENSSL_init_crypto) init = nullptr;
    if (!get(init, "OPENSSL_init_crypto") || init(OPENSSL_INIT_NO_ATEXIT, nullptr) != 1) {
      failure = "OPENSSL_init_crypto failed";
      return;
    }
    if (!get(lib.md_ctx_new, "EVP_MD_CTX_new") || !get(lib.md_ctx_free, "EVP_MD_CTX_free") ||
        !get(lib.sha256, "EVP_sha256") || !get(lib.digest_init, "EVP_DigestInit_ex") ||
        !get(lib.digest_update, "EVP_DigestUpdate") ||
        !get(lib.digest_final, "EVP_DigestFinal_ex") || !get(lib.hmac, "HMAC") ||
        !get(lib.memcmp, "CRYPTO_memcmp") || !get(lib.pbkdf2, "PKCS5_PBKDF2_HMAC"))
      failure = "libcrypto.so.3 lacks a function isola needs";
  });
  if (!failure.empty()) throw error("libcrypto: " + failure);
  return lib;
}
}  // namespace

void load_libcrypto() { (void)crypto_lib(); }

struct sha256::context {
  EVP_MD_CTX* md = nullptr;
  ~context() {
    if (md) crypto_lib().md_ctx_free(md);
  }
};

sha256::sha256() : ctx_(std::make_unique<context>()) {
  const auto& c = crypto_lib();
  ctx_->md = c.md_ctx_new();
  if (!ctx_->md || c.digest_init(ctx_->md, c.sha256(), nullptr) != 1) fail("EVP_DigestInit_ex");
}

sha256::~sha256() = default;

void sha256::update(std::span<const std::byte> data) {
  if (crypto_lib().digest_update(ctx_->md, data.data(), data.size()) != 1) fail("EVP_DigestUpdate");
}

sha256_digest sha256::finish() {
  sha256_digest d{};
  unsigned n = 0;
  if (crypto_lib().digest_final(ctx_->md, d.data(), &n) != 1 || n != d.size()) fail("EVP_DigestFinal_ex");
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
  const auto& c = crypto_lib();
  if (!c.hmac(c.sha256(), k, static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(), d.data(), &n) ||
      n != d.size())
    fail("HMAC(SHA-256)");
  return d;
}

sha256_digest pbkdf2_hmac_sha256(std::string_view password, std::string_view salt,
                                 unsigned iterations) {
  sha256_digest d{};
  static const char empty = 0;
  const auto& c = crypto_lib();
  if (c.pbkdf2(password.empty() ? &empty : password.data(), static_cast<int>(password.size()),
               reinterpret_cast<const unsigned char*>(salt.empty() ? &empty : salt.data()),
               static_cast<int>(salt.size()), static_cast<int>(iterations), c.sha256(),
               static_cast<int>(d.size()), d.data()) != 1)
    fail("PKCS5_PBKDF2_HMAC");
  return d;
}

bool constant_time_equal(std::span<const std::uint8_t> a,
                         std::span<const std::uint8_t> b) noexcept {
  if (a.size() != b.size()) return false;
  try {
    return crypto_lib().memcmp(a.data(), b.data(), a.size()) == 0;
  } catch (...) {
    return false;  // no libcrypto: nothing was proved equal
  }
}

}  // namespace isola::detail
