// TLS 1.3 with an external PSK over libssl (tls.hpp). Every libssl call and
// every translation of its errors into isola errors is here.
#include "sys/tls.hpp"

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <type_traits>

#include "isola/error.hpp"
#include "sys/crypto.hpp"
#include "sys/handshake.hpp"
#include "sys/os.hpp"

namespace isola::detail {

namespace {

/// The few libssl (and, through it, libcrypto) functions isola calls,
/// resolved once. Macros of ssl.h that expand to SSL_CTX_ctrl are spelled
/// out as ctx_ctrl calls: the program is not linked against libssl.
struct libssl {
  decltype(&TLS_client_method) client_method = nullptr;
  decltype(&TLS_server_method) server_method = nullptr;
  decltype(&SSL_CTX_new) ctx_new = nullptr;
  decltype(&SSL_CTX_ctrl) ctx_ctrl = nullptr;
  decltype(&SSL_CTX_set_ciphersuites) ctx_set_ciphersuites = nullptr;
  decltype(&SSL_CTX_set_num_tickets) ctx_set_num_tickets = nullptr;
  decltype(&SSL_CTX_set_options) ctx_set_options = nullptr;
  decltype(&SSL_new) ssl_new = nullptr;
  decltype(&SSL_free) ssl_free = nullptr;
  decltype(&SSL_set_fd) set_fd = nullptr;
  decltype(&SSL_set_connect_state) set_connect_state = nullptr;
  decltype(&SSL_set_accept_state) set_accept_state = nullptr;
  decltype(&SSL_do_handshake) do_handshake = nullptr;
  decltype(&SSL_read_ex) read_ex = nullptr;
  decltype(&SSL_write_ex) write_ex = nullptr;
  decltype(&SSL_get_error) get_error = nullptr;
  decltype(&SSL_pending) pending = nullptr;
  decltype(&SSL_has_pending) has_pending = nullptr;
  decltype(&SSL_shutdown) shutdown = nullptr;
  decltype(&SSL_set_ex_data) set_ex_data = nullptr;
  decltype(&SSL_get_ex_data) get_ex_data = nullptr;
  decltype(&SSL_set_psk_use_session_callback) set_use_session_cb = nullptr;
  decltype(&SSL_set_psk_find_session_callback) set_find_session_cb = nullptr;
  decltype(&SSL_CIPHER_find) cipher_find = nullptr;
  decltype(&SSL_CIPHER_get_handshake_digest) cipher_digest = nullptr;
  decltype(&SSL_SESSION_new) session_new = nullptr;
  decltype(&SSL_SESSION_free) session_free = nullptr;
  decltype(&SSL_SESSION_set1_master_key) session_set_key = nullptr;
  decltype(&SSL_SESSION_set_cipher) session_set_cipher = nullptr;
  decltype(&SSL_SESSION_set_protocol_version) session_set_version = nullptr;
  decltype(&ERR_get_error) err_get = nullptr;
  decltype(&ERR_clear_error) err_clear = nullptr;
  decltype(&ERR_error_string_n) err_string = nullptr;
  SSL_CTX* client_ctx = nullptr;
  SSL_CTX* server_ctx = nullptr;
};

/// libssl's reasons, oldest first, emptying this thread's error queue.
std::string drain_errors(const libssl& l) {
  std::string out;
  while (unsigned long e = l.err_get()) {
    char buf[256];
    l.err_string(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

SSL_CTX* make_ctx(libssl& l, bool server) {
  SSL_CTX* ctx = l.ctx_new(server ? l.server_method() : l.client_method());
  if (!ctx) return nullptr;
  bool ok = l.ctx_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3_VERSION, nullptr) == 1 &&
            l.ctx_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, TLS1_3_VERSION, nullptr) == 1 &&
            l.ctx_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256") == 1;
  // A partial write is reported (CAF's stream counts what went), and a retry
  // may come from a buffer that moved (CAF swaps its write buffers).
  l.ctx_ctrl(ctx, SSL_CTRL_MODE,
             SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, nullptr);
  // No resumption: every link has its own PSK, and a ticket would only be
  // an unsolicited record arriving after the handshake.
  l.ctx_set_options(ctx, SSL_OP_NO_TICKET);
  if (server) ok = ok && l.ctx_set_num_tickets(ctx, 0) == 1;
  return ok ? ctx : nullptr;
}

const libssl& ssl_lib() {
  static libssl lib;
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    // libcrypto first, so that its one initialisation is ours (crypto.cpp).
    try {
      load_libcrypto();
    } catch (const std::exception& e) {
      failure = e.what();
      return;
    }
    // The soname of the libssl the headers come from (OpenSSL 3 on bookworm).
    void* h = ::dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = ::dlerror();
      failure = std::string("cannot load libssl.so.3: ") + (e ? e : "unknown error");
      return;
    }
    bool ok = true;
    auto get = [h, &ok](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      if (!fn) ok = false;
    };
    get(lib.client_method, "TLS_client_method");
    get(lib.server_method, "TLS_server_method");
    get(lib.ctx_new, "SSL_CTX_new");
    get(lib.ctx_ctrl, "SSL_CTX_ctrl");
    get(lib.ctx_set_ciphersuites, "SSL_CTX_set_ciphersuites");
    get(lib.ctx_set_num_tickets, "SSL_CTX_set_num_tickets");
    get(lib.ctx_set_options, "SSL_CTX_set_options");
    get(lib.ssl_new, "SSL_new");
    get(lib.ssl_free, "SSL_free");
    get(lib.set_fd, "SSL_set_fd");
    get(lib.set_connect_state, "SSL_set_connect_state");
    get(lib.set_accept_state, "SSL_set_accept_state");
    get(lib.do_handshake, "SSL_do_handshake");
    get(lib.read_ex, "SSL_read_ex");
    get(lib.write_ex, "SSL_write_ex");
    get(lib.get_error, "SSL_get_error");
    get(lib.pending, "SSL_pending");
    get(lib.has_pending, "SSL_has_pending");
    get(lib.shutdown, "SSL_shutdown");
    get(lib.set_ex_data, "SSL_set_ex_data");
    get(lib.get_ex_data, "SSL_get_ex_data");
    get(lib.set_use_session_cb, "SSL_set_psk_use_session_callback");
    get(lib.set_find_session_cb, "SSL_set_psk_find_session_callback");
    get(lib.cipher_find, "SSL_CIPHER_find");
    get(lib.cipher_digest, "SSL_CIPHER_get_handshake_digest");
    get(lib.session_new, "SSL_SESSION_new");
    get(lib.session_free, "SSL_SESSION_free");
    get(lib.session_set_key, "SSL_SESSION_set1_master_key");
    get(lib.session_set_cipher, "SSL_SESSION_set_cipher");
    get(lib.session_set_version, "SSL_SESSION_set_protocol_version");
    // libcrypto's, found through libssl's dependencies.
    get(lib.err_get, "ERR_get_error");
    get(lib.err_clear, "ERR_clear_error");
    get(lib.err_string, "ERR_error_string_n");
    if (!ok) {
      failure = "libssl.so.3 lacks a function isola needs";
      return;
    }
    lib.client_ctx = make_ctx(lib, false);
    lib.server_ctx = make_ctx(lib, true);
    if (!lib.client_ctx || !lib.server_ctx)
      failure = "cannot set up a TLS 1.3 context: " + drain_errors(lib);
  });
  if (!failure.empty()) throw error("libssl: " + failure);
  return lib;
}

/// The PSK's identity on the wire (both ends know the key already; the
/// identity only names the scheme).
constexpr unsigned char psk_identity[] = "isola-link-v1";
constexpr std::size_t psk_identity_size = sizeof psk_identity - 1;
/// TLS_AES_128_GCM_SHA256: the suite the PSK is declared for (its hash,
/// SHA-256, is what matters: ChaCha20-Poly1305 shares it).
constexpr unsigned char psk_suite[2] = {0x13, 0x01};

SSL_SESSION* psk_session(const libssl& l, SSL* ssl, const tls_psk& key) {
  const SSL_CIPHER* c = l.cipher_find(ssl, psk_suite);
  if (!c) return nullptr;
  SSL_SESSION* s = l.session_new();
  if (!s) return nullptr;
  if (l.session_set_key(s, key.data(), key.size()) != 1 || l.session_set_cipher(s, c) != 1 ||
      l.session_set_version(s, TLS1_3_VERSION) != 1) {
    l.session_free(s);
    return nullptr;
  }
  return s;
}

const tls_psk* key_of(const libssl& l, SSL* ssl) {
  return static_cast<const tls_psk*>(l.get_ex_data(ssl, 0));
}

// The client offers the PSK (OpenSSL takes ownership of the session).
int use_session(SSL* ssl, const EVP_MD* md, const unsigned char** id, std::size_t* idlen,
                SSL_SESSION** sess) {
  const auto& l = ssl_lib();
  *sess = nullptr;
  *id = nullptr;
  *idlen = 0;
  const SSL_CIPHER* c = l.cipher_find(ssl, psk_suite);
  if (!c) return 0;
  // A second call (after a HelloRetryRequest) names the digest chosen.
  if (md && md != l.cipher_digest(c)) return 1;
  const tls_psk* key = key_of(l, ssl);
  if (!key) return 0;
  *sess = psk_session(l, ssl, *key);
  if (!*sess) return 0;
  *id = psk_identity;
  *idlen = psk_identity_size;
  return 1;
}

// The server accepts only our identity; anything else ends the handshake.
int find_session(SSL* ssl, const unsigned char* id, std::size_t idlen, SSL_SESSION** sess) {
  const auto& l = ssl_lib();
  *sess = nullptr;
  if (idlen != psk_identity_size || std::memcmp(id, psk_identity, idlen) != 0) return 1;
  const tls_psk* key = key_of(l, ssl);
  if (!key) return 0;
  *sess = psk_session(l, ssl, *key);
  return *sess ? 1 : 0;
}

}  // namespace

tls_psk derive_tls_psk(std::string_view authkey, std::span<const char, 8> magic,
                       std::span<const std::uint8_t, 32> server_challenge,
                       std::span<const std::uint8_t, 32> client_challenge) {
  std::string msg = "isola-tls-psk-v1";
  msg.append(magic.data(), magic.size());
  msg.append(reinterpret_cast<const char*>(server_challenge.data()), server_challenge.size());
  msg.append(reinterpret_cast<const char*>(client_challenge.data()), client_challenge.size());
  return hmac_sha256(handshake::effective_key(authkey), msg);
}

struct tls_session::ssl_handle {
  SSL* ssl = nullptr;
  ~ssl_handle() {
    if (ssl) ssl_lib().ssl_free(ssl);
  }
};

tls_session::tls_session(int fd, role r, const tls_psk& key)
    : fd_(fd), role_(r), key_(key), ssl_(std::make_unique<ssl_handle>()) {
  const auto& l = ssl_lib();
  // libssl writes with write(2): a peer that is gone must be EPIPE, not a
  // SIGPIPE death (a handler the program installed is left alone).
  ignore_sigpipe();
  l.err_clear();
  ssl_->ssl = l.ssl_new(r == role::server ? l.server_ctx : l.client_ctx);
  if (!ssl_->ssl) throw error("libssl: SSL_new failed: " + drain_errors(l));
  if (l.set_fd(ssl_->ssl, fd) != 1) throw error("libssl: SSL_set_fd failed: " + drain_errors(l));
  l.set_ex_data(ssl_->ssl, 0, &key_);
  if (r == role::server) {
    l.set_find_session_cb(ssl_->ssl, find_session);
    l.set_accept_state(ssl_->ssl);
  } else {
    l.set_use_session_cb(ssl_->ssl, use_session);
    l.set_connect_state(ssl_->ssl);
  }
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

tls_session::~tls_session() = default;

tls_io tls_session::classify(int rc) {
  const auto& l = ssl_lib();
  const int saved = errno;
  switch (l.get_error(ssl_->ssl, rc)) {
    case SSL_ERROR_WANT_READ: return tls_io::want_read;
    case SSL_ERROR_WANT_WRITE: return tls_io::want_write;
    case SSL_ERROR_ZERO_RETURN:
      why_ = "the peer closed the TLS session";
      return tls_io::closed;
    case SSL_ERROR_SYSCALL: {
      std::string q = drain_errors(l);
      if (q.empty() && (saved == 0 || saved == ECONNRESET || saved == EPIPE)) {
        why_ = saved ? std::strerror(saved) : "the peer closed the connection";
        return tls_io::closed;
      }
      why_ = q.empty() ? std::strerror(saved) : q;
      return tls_io::failed;
    }
    default: {
      std::string q = drain_errors(l);
      // OpenSSL 3 reports a bare EOF in the middle of a record as a protocol
      // error ("unexpected eof while reading"): the peer went away.
      why_ = q.empty() ? "TLS protocol error" : q;
      if (q.find("unexpected eof") != std::string::npos) return tls_io::closed;
      return tls_io::failed;
    }
  }
}

tls_io tls_session::handshake_step() {
  if (established_) return tls_io::done;
  const auto& l = ssl_lib();
  l.err_clear();
  const int rc = l.do_handshake(ssl_->ssl);
  if (rc == 1) {
    established_ = true;
    return tls_io::done;
  }
  return classify(rc);
}

void tls_session::throw_failure(tls_io r, std::string_view who) const {
  const std::string w(who);
  if (r == tls_io::closed)
    throw os_error(ECONNRESET, w + ": the peer closed the connection during the TLS handshake (" +
                                   why_ + "); does it use TLS?");
  throw authentication_error(
      w + ": the TLS handshake failed (" + why_ +
      "): the peer does not hold this link's key (a relay in between, bytes altered on the way, "
      "or a peer that does not use TLS)");
}

void tls_session::handshake(const deadline& d, std::string_view who) {
  for (;;) {
    const tls_io r = handshake_step();
    if (r == tls_io::done) return;
    if (r != tls_io::want_read && r != tls_io::want_write) throw_failure(r, who);
    int ms = -1;
    if (auto until = d.until()) {
      const auto now = wait_clock::now();
      if (*until <= now)
        throw timeout_error(std::string(who) + ": the TLS handshake did not finish in time");
      ms = static_cast<int>(std::min<long long>(
          std::chrono::ceil<std::chrono::milliseconds>(*until - now).count(), 1 << 30));
    }
    pollfd p{fd_, static_cast<short>(r == tls_io::want_read ? POLLIN : POLLOUT), 0};
    const int n = ::poll(&p, 1, ms);
    if (n < 0 && errno != EINTR) throw_errno(std::string(who) + ": poll");
    // n == 0 loops to the deadline check; readiness or an error, to the step.
  }
}

tls_io tls_session::read_some(void* buf, std::size_t n, std::size_t& moved) {
  moved = 0;
  if (n == 0) return tls_io::done;
  const auto& l = ssl_lib();
  l.err_clear();
  std::size_t got = 0;
  const int rc = l.read_ex(ssl_->ssl, buf, n, &got);
  if (rc == 1) {
    moved = got;
    return tls_io::done;
  }
  return classify(rc);
}

tls_io tls_session::write_some(const void* buf, std::size_t n, std::size_t& moved) {
  moved = 0;
  if (n == 0) return tls_io::done;
  const auto& l = ssl_lib();
  l.err_clear();
  std::size_t put = 0;
  const int rc = l.write_ex(ssl_->ssl, buf, n, &put);
  if (rc == 1) {
    moved = put;
    return tls_io::done;
  }
  return classify(rc);
}

bool tls_session::has_pending() const noexcept {
  const auto& l = ssl_lib();
  return l.pending(ssl_->ssl) > 0 || l.has_pending(ssl_->ssl) == 1;
}

void tls_session::close() noexcept {
  if (!established_) return;
  try {
    const auto& l = ssl_lib();
    l.err_clear();
    (void)l.shutdown(ssl_->ssl);  // non-blocking socket: one try
    l.err_clear();
  } catch (...) {}
}

}  // namespace isola::detail
