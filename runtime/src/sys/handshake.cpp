// The handshake of handshake.hpp: proofs, the server's verdict and the
// blocking client.
#include "sys/handshake.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "sys/random.hpp"

namespace isola::detail::handshake {

namespace {
constexpr char okay[4] = {'O', 'K', 'A', 'Y'};
constexpr char fail[4] = {'F', 'A', 'I', 'L'};

// Waits for fd to be ready for `events` by the deadline: false on timeout.
bool ready(int fd, short events, const deadline& d) {
  for (;;) {
    int ms = -1;
    if (auto until = d.until()) {
      const auto now = wait_clock::now();
      if (*until <= now) {
        ms = 0;
      } else {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - now).count();
        ms = static_cast<int>(std::min<long long>(left, 1 << 30));
      }
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the read or write report it
  }
}

template <class Io>
bool exact(int fd, std::size_t n, short events, const deadline& d, bool* timed_out, Io io) {
  if (timed_out) *timed_out = false;
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = io(done);
    if (r > 0) {
      done += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (!ready(fd, events, d)) {
      if (timed_out) *timed_out = true;
      return false;
    }
  }
  return true;
}
}  // namespace

challenge new_challenge() { return random_value<challenge>(); }

namespace {
// Stretched keys, newest first: an append-only list published with one
// atomic pointer, never freed (a process has a handful of keys). Lookups
// take no lock, so a fork child of a thread-busy parent can never find one
// held; at most max_cached keys are kept, later ones are stretched each time.
struct stretched {
  std::string key, derived;
  const stretched* next;
  std::size_t depth;
};
std::atomic<const stretched*> stretched_keys{nullptr};
constexpr std::size_t max_cached = 32;
}  // namespace

std::string effective_key(std::string_view key) {
  if (key.size() >= min_key_size) return std::string(key);
  const stretched* head = stretched_keys.load(std::memory_order_acquire);
  for (auto* e = head; e; e = e->next)
    if (e->key == key) return e->derived;
  const auto d = pbkdf2_hmac_sha256(key, stretch_salt, stretch_iterations);
  std::string derived(reinterpret_cast<const char*>(d.data()), d.size());
  if (head && head->depth >= max_cached) return derived;
  auto* e = new stretched{std::string(key), derived, head, head ? head->depth + 1 : 1};
  // Another thread may have pushed meanwhile: retry on top of its entry (a
  // duplicate is harmless; both hold the same derivation).
  while (!stretched_keys.compare_exchange_weak(head, e, std::memory_order_acq_rel)) {
    e->next = head;
    e->depth = head ? head->depth + 1 : 1;
  }
  return derived;
}

sha256_digest proof(std::string_view key, std::string_view label,
                    std::span<const std::uint8_t, 32> challenge) {
  std::string msg(label);
  msg.append(reinterpret_cast<const char*>(challenge.data()), challenge.size());
  return hmac_sha256(effective_key(key), msg);
}

void send_busy(int fd) noexcept {
  (void)::send(fd, busy_notice.data(), busy_notice.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

std::array<std::uint8_t, hello_size> make_hello(const spec& s, const challenge& server_challenge) {
  std::array<std::uint8_t, hello_size> h{};
  std::memcpy(h.data(), s.magic.data(), s.magic.size());
  std::memcpy(h.data() + s.magic.size(), server_challenge.data(), server_challenge.size());
  return h;
}

std::optional<std::array<std::uint8_t, verdict_size>> make_verdict(
    const spec& s, std::string_view key, const challenge& server_challenge,
    std::span<const std::uint8_t> response) {
  if (response.size() != response_size(s)) return std::nullopt;
  auto expect = proof(key, s.client_label, server_challenge);
  if (!constant_time_equal(response.first(32), expect)) return std::nullopt;
  std::array<std::uint8_t, verdict_size> v{};
  std::memcpy(v.data(), okay, 4);
  auto mine = proof(key, s.server_label, response.subspan(32).first<32>());
  std::memcpy(v.data() + 4, mine.data(), mine.size());
  return v;
}

std::span<const std::uint8_t> response_extra(const spec& s,
                                             std::span<const std::uint8_t> response) {
  if (response.size() != response_size(s)) return {};
  return response.subspan(64, s.extra_bytes);
}

bool read_exact(int fd, void* buf, std::size_t n, const deadline& d, bool* timed_out) {
  auto* p = static_cast<std::uint8_t*>(buf);
  return exact(fd, n, POLLIN, d, timed_out,
               [&](std::size_t done) { return ::recv(fd, p + done, n - done, MSG_DONTWAIT); });
}

bool write_exact(int fd, const void* buf, std::size_t n, const deadline& d, bool* timed_out) {
  auto* p = static_cast<const std::uint8_t*>(buf);
  return exact(fd, n, POLLOUT, d, timed_out, [&](std::size_t done) {
    return ::send(fd, p + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
  });
}

outcome run_client(int fd, const spec& s, std::string_view key, std::span<const std::uint8_t> extra,
                   const deadline& d, transcript* t) {
  bool late = false;
  auto cut = [&] { return late ? outcome::timed_out : outcome::closed; };
  std::uint8_t hello[hello_size];
  // The first 8 bytes alone: a busy server sends only its notice, then closes.
  if (!read_exact(fd, hello, s.magic.size(), d, &late)) return cut();
  if (std::memcmp(hello, busy_notice.data(), busy_notice.size()) == 0) return outcome::busy;
  if (std::memcmp(hello, s.magic.data(), s.magic.size()) != 0) {
    if (s.other_magic != std::array<char, 8>{} &&
        std::memcmp(hello, s.other_magic.data(), s.other_magic.size()) == 0)
      return outcome::other_mode;
    return outcome::not_ours;
  }
  if (!read_exact(fd, hello + s.magic.size(), sizeof hello - s.magic.size(), d, &late))
    return cut();

  std::string response(response_size(s), '\0');
  auto mac = proof(key, s.client_label, std::span<const std::uint8_t, 32>(hello + 8, 32));
  const challenge mine = new_challenge();
  std::memcpy(response.data(), mac.data(), 32);
  std::memcpy(response.data() + 32, mine.data(), 32);
  // (memcpy from an empty span's null pointer is undefined, even for 0 bytes)
  if (!extra.empty())
    std::memcpy(response.data() + 64, extra.data(), std::min(extra.size(), s.extra_bytes));
  if (!write_exact(fd, response.data(), response.size(), d, &late)) return cut();

  std::uint8_t verdict[verdict_size];
  if (!read_exact(fd, verdict, 4, d, &late)) return cut();
  if (std::memcmp(verdict, okay, 4) != 0) return outcome::refused;
  if (!read_exact(fd, verdict + 4, 32, d, &late)) return cut();
  auto expect = proof(key, s.server_label, mine);
  if (!constant_time_equal(std::span<const std::uint8_t>(verdict + 4, 32), expect)) {
    if (s.client_confirms) write_exact(fd, fail, 4, d);
    return outcome::forged;
  }
  if (s.client_confirms && !write_exact(fd, okay, 4, d, &late)) return cut();
  if (t) {
    std::memcpy(t->server.data(), hello + 8, 32);
    t->client = mine;
  }
  return outcome::ok;
}

}  // namespace isola::detail::handshake
