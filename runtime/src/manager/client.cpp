// The client side of a managed proxy: one connection per process and thread
// and manager, opened and authenticated on first use; requests and replies.
#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>

#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/manager_wire.hpp"
#include "manager/protocol.hpp"
#include "sys/crypto.hpp"
#include "sys/tls.hpp"

namespace isola::detail {

std::string manager_address::describe() const {
  if (!socket.empty()) return "the manager (pid " + std::to_string(pid) + ")";
  return "the manager at " + host + ":" + std::to_string(port);
}

std::int64_t to_timeout_ns(std::chrono::duration<double> t) {
  if (t.count() < 0) throw value_error("a timeout must not be negative");
  double ns = t.count() * 1e9;
  if (ns > 9e18) return -1;
  return static_cast<std::int64_t>(ns);
}

// --- program identity ---------------------------------------------------------

namespace {
int find_build_id(dl_phdr_info* info, std::size_t, void* data) {
  auto* out = static_cast<std::string*>(data);
  // The first object is the main program.
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    auto* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    auto* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      auto* nh = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const char* name = p + sizeof(ElfW(Nhdr));
      const char* desc = name + ((nh->n_namesz + 3) & ~3u);
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0 &&
          desc + nh->n_descsz <= end) {
        out->assign(desc, nh->n_descsz);
        return 1;
      }
      p = desc + ((nh->n_descsz + 3) & ~3u);
    }
  }
  return 1;  // only the first object
}
}  // namespace

const std::array<std::uint8_t, 32>& program_identity() {
  static const std::array<std::uint8_t, 32> id = [] {
    std::string build_id;
    ::dl_iterate_phdr(&find_build_id, &build_id);
    sha256 h;
    if (!build_id.empty()) {
      h.update("build-id:");
      h.update(build_id);
    } else {
      char path[4096];
      ssize_t n = ::readlink("/proc/self/exe", path, sizeof path);
      struct stat st {};
      ::stat("/proc/self/exe", &st);
      h.update("exe:");
      if (n > 0) h.update(std::string_view(path, static_cast<std::size_t>(n)));
      h.update(std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
               std::to_string(st.st_mtim.tv_nsec));
    }
    return h.finish();
  }();
  return id;
}

// --- connecting ---------------------------------------------------------------

namespace {

using clk = std::chrono::steady_clock;

[[noreturn]] void unreachable(const manager_address& a, const std::string& why) {
  throw manager_error("cannot reach " + a.describe() + ": " + why +
                          (a.socket.empty() ? "" : " (it has shut down or died)"),
                      a.pid);
}

int connect_socket(const manager_address& a, const deadline& d) {
  if (!a.socket.empty()) {
    auto c = net::unix_connect(a.socket, d);
    if (!c) unreachable(a, c.what);
    return c.fd.release();
  }
  // The same deadline as the handshake after it: a host that drops SYNs
  // fails the call within handshake_timeout, not the kernel's ~2 minutes.
  auto c = net::tcp_connect(a.host, a.port, d, false);
  if (!c)
    unreachable(a, c.err == EINVAL      ? c.what
                   : c.err == ETIMEDOUT ? std::string("no answer to the connect in time")
                                        : std::string(std::strerror(c.err)));
  const int fd = c.fd.release();
  int one = 1;
  // A host that vanishes without a reset: fail blocked calls within ~10 s.
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  int idle = 5, intvl = 1, cnt = 5;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  return fd;
}

/// ok or busy (the caller tries again); anything else throws.
handshake::outcome client_handshake(int fd, const manager_address& a, const deadline& d,
                                    handshake::transcript& t) {
  const auto identity = program_identity();
  switch (auto o = handshake::run_client(fd, manager_spec(a.tls), a.authkey, identity, d, &t)) {
    case handshake::outcome::ok:
    case handshake::outcome::busy: return o;
    case handshake::outcome::other_mode:
      unreachable(a, a.tls ? "it does not use TLS (it was started without manager_options::tls), "
                             "and this connection asked for it"
                           : "it requires TLS (started with manager_options::tls): connect with "
                             "manager_connect_options::tls");
    case handshake::outcome::timed_out: unreachable(a, "no answer to the handshake");
    case handshake::outcome::closed: unreachable(a, "the connection closed during the handshake");
    case handshake::outcome::not_ours:
      unreachable(a, "what answers there is not an isola manager");
    case handshake::outcome::refused:
      throw authentication_error(a.describe() +
                                 " refused the authentication key (the digest did "
                                 "not match): use the key the manager was started or served with");
    case handshake::outcome::forged:
      throw authentication_error(a.describe() +
                                 " did not prove it knows the authentication key: the connection "
                                 "was dropped");
  }
  unreachable(a, "the handshake ended oddly");
}

// --- the connection cache -----------------------------------------------------

class channel {
 public:
  explicit channel(const manager_address& a) {
    // Connect and handshake within one deadline. A manager at its cap of
    // pending handshakes says busy: we try again, backing off, until then.
    const auto d = deadline::after(handshake_timeout);
    auto pause = std::chrono::milliseconds(5);
    for (;;) {
      fd_ = connect_socket(a, d);
      handshake::outcome o{};
      handshake::transcript t;
      try {
        o = client_handshake(fd_, a, d, t);
        if (o == handshake::outcome::ok && a.tls) {
          // TLS keyed by this handshake, within the same deadline.
          tls_ = std::make_unique<tls_session>(
              fd_, tls_session::role::client,
              derive_tls_psk(a.authkey, manager_tls_handshake.magic, t.server, t.client));
          try {
            tls_->handshake(d, "cannot reach " + a.describe());
          } catch (const timeout_error&) {
            unreachable(a, "the TLS handshake did not finish in time");
          } catch (const os_error& e) {
            unreachable(a, std::string("the TLS handshake failed: ") + e.what());
          }
        }
      } catch (...) {
        tls_.reset();
        ::close(fd_);
        fd_ = -1;
        throw;
      }
      if (o == handshake::outcome::ok) break;
      ::close(fd_);
      fd_ = -1;
      const auto left = *d.until() - clk::now();
      if (left <= clk::duration::zero())
        throw manager_error("cannot reach " + a.describe() +
                                ": it is busy (too many connections wait to authenticate; "
                                "it refused this one each time for " +
                                std::to_string(handshake_timeout.count()) + " s)",
                            a.pid);
      std::this_thread::sleep_for(std::min<clk::duration>(pause, left));
      pause = std::min(pause * 2, std::chrono::milliseconds(200));
    }
    // A fork child of this process closes it (isola::process under fork).
    register_handle_fd(fd_, this, &channel::released);
  }
  ~channel() { close(); }
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  void close() noexcept {
    tls_.reset();
    if (fd_ < 0) return;
    unregister_handle_fd(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  bool usable() const noexcept { return fd_ >= 0; }

  /// The reply's payload; throws manager_error (the channel is then closed).
  std::span<const std::byte> call(const manager_address& a, mgr_op op, std::uint64_t object,
                                  std::int64_t timeout_ns, std::span<const std::byte> x,
                                  std::span<const std::byte> y, mgr_status& status) {
    std::uint64_t id = ++next_id_;
    request_header h{};
    h.length = static_cast<std::uint32_t>(sizeof(request_header) - 4 + x.size() + y.size());
    h.id = id;
    h.op = static_cast<std::uint8_t>(op);
    h.alen = static_cast<std::uint32_t>(x.size());
    h.object = object;
    h.timeout_ns = timeout_ns;
    if (x.size() + y.size() > max_frame_payload)
      throw value_error("a managed object's request is larger than the manager accepts");
    out_.resize(sizeof h + x.size() + y.size());
    std::memcpy(out_.data(), &h, sizeof h);
    if (!x.empty()) std::memcpy(out_.data() + sizeof h, x.data(), x.size());
    if (!y.empty()) std::memcpy(out_.data() + sizeof h + x.size(), y.data(), y.size());
    std::size_t off = 0;
    while (off < out_.size()) {
      if (tls_) {
        std::size_t n = 0;
        const auto r = tls_->write_some(out_.data() + off, out_.size() - off, n);
        if (r == tls_io::done) {
          off += n;
        } else if (r == tls_io::want_write || r == tls_io::want_read) {
          pollfd pf{fd_, static_cast<short>(r == tls_io::want_write ? POLLOUT : POLLIN), 0};
          if (::poll(&pf, 1, -1) < 0 && errno != EINTR) gone(a, op);
        } else {
          gone(a, op, tls_failure(r));
        }
        continue;
      }
      ssize_t r = ::send(fd_, out_.data() + off, out_.size() - off, MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EINTR) continue;
        gone(a, op);
      }
      off += static_cast<std::size_t>(r);
    }
    // Timed waits are decided by the manager; we wait that long and a margin.
    std::optional<clk::time_point> deadline;
    if (timeout_ns >= 0)
      deadline = clk::now() + std::chrono::nanoseconds(timeout_ns) + std::chrono::seconds(30);
    for (;;) {
      // Drop the previous reply's bytes.
      if (rpos_ > 0) {
        std::memmove(in_.data(), in_.data() + rpos_, rend_ - rpos_);
        rend_ -= rpos_;
        rpos_ = 0;
      }
      while (rend_ < 4 || rend_ < 4 + frame_length()) {
        std::size_t need = rend_ < 4 ? 4 : 4 + frame_length();
        if (rend_ >= 4 && frame_length() > max_frame_payload + 64) gone(a, op, "a corrupt reply");
        if (in_.size() < std::max<std::size_t>(need, 65536))
          in_.resize(std::max<std::size_t>(need, 65536));
        if (tls_) {
          // Bytes libssl holds are read before waiting on the socket.
          std::size_t n = 0;
          const auto r = tls_->read_some(in_.data() + rend_, in_.size() - rend_, n);
          if (r == tls_io::done) {
            rend_ += n;
            continue;
          }
          if (r != tls_io::want_read && r != tls_io::want_write) gone(a, op, tls_failure(r));
          int ms = -1;
          if (deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline -
                                                                              clk::now())
                            .count();
            if (left <= 0) gone(a, op, "no reply in time");
            ms = static_cast<int>(std::min<long long>(left + 1, 1 << 30));
          }
          pollfd pf{fd_, static_cast<short>(r == tls_io::want_read ? POLLIN : POLLOUT), 0};
          if (::poll(&pf, 1, ms) < 0 && errno != EINTR) gone(a, op);
          continue;
        }
        if (deadline) {
          auto left =
              std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clk::now()).count();
          if (left <= 0) gone(a, op, "no reply in time");
          pollfd pf{fd_, POLLIN, 0};
          int rc = ::poll(&pf, 1, static_cast<int>(std::min<long long>(left + 1, 1 << 30)));
          if (rc < 0 && errno != EINTR) gone(a, op);
          if (rc <= 0) continue;
        }
        ssize_t r = ::recv(fd_, in_.data() + rend_, in_.size() - rend_, 0);
        if (r < 0) {
          if (errno == EINTR) continue;
          gone(a, op);
        }
        if (r == 0) gone(a, op);
        rend_ += static_cast<std::size_t>(r);
      }
      std::size_t len = frame_length();
      reply_header rh{};
      if (len < sizeof rh - 4) gone(a, op, "a corrupt reply");
      std::memcpy(&rh, in_.data(), sizeof rh);
      rpos_ = 4 + len;
      if (rh.id != id) continue;  // a stale reply (a call abandoned earlier)
      status = static_cast<mgr_status>(rh.status);
      return std::span<const std::byte>(in_.data() + sizeof rh, len - (sizeof rh - 4));
    }
  }

 private:
  std::size_t frame_length() const {
    std::uint32_t n;
    std::memcpy(&n, in_.data(), 4);
    return n;
  }
  const char* tls_failure(tls_io r) {
    tls_why_ = r == tls_io::closed ? "its connection closed"
                                   : "a TLS record did not decrypt (" + tls_->why() +
                                         "): bytes altered on the way";
    return tls_why_.c_str();
  }
  [[noreturn]] void gone(const manager_address& a, mgr_op op, const char* why = nullptr) {
    close();
    std::string what = a.describe() + " is gone: " +
                       (why ? std::string(why) : std::string("its connection closed")) +
                       " during " + op_name(op) + " (it has shut down, died or was killed)";
    throw manager_error(what, a.pid);
  }

  static void released(void* self) noexcept { static_cast<channel*>(self)->fd_ = -1; }

  int fd_ = -1;
  std::unique_ptr<tls_session> tls_;  // a TLS connection's session
  std::string tls_why_;
  std::uint64_t next_id_ = 0;
  bytes out_;
  bytes in_;
  std::size_t rpos_ = 0, rend_ = 0;
};

struct channel_cache {
  pid_t pid = 0;
  std::unordered_map<std::string, std::unique_ptr<channel>> m;
};

channel_cache& cache() {
  thread_local channel_cache c;
  pid_t me = ::getpid();
  if (c.pid != me) {
    // A fork child: these are the parent's connections (closed already if
    // the child was started by isola::process); never use them.
    for (auto& [k, ch] : c.m) ch->close();
    c.m.clear();
    c.pid = me;
  }
  return c;
}

}  // namespace

std::span<const std::byte> manager_call(const manager_address& addr, mgr_op op,
                                        std::uint64_t object, std::int64_t timeout_ns,
                                        std::span<const std::byte> a, std::span<const std::byte> b,
                                        mgr_status& status) {
  auto& c = cache();
  auto key = addr.cache_key();
  auto it = c.m.find(key);
  if (it == c.m.end() || !it->second->usable()) {
    if (it != c.m.end()) c.m.erase(it);
    it = c.m.emplace(key, std::make_unique<channel>(addr)).first;
  }
  try {
    return it->second->call(addr, op, object, timeout_ns, a, b, status);
  } catch (const manager_error&) {
    c.m.erase(key);
    throw;
  }
}

void manager_forget(const manager_address& addr) noexcept {
  try {
    cache().m.erase(addr.cache_key());
  } catch (...) {}
}

void check_reply(const manager_address& addr, mgr_status status, std::span<const std::byte> p) {
  std::string text(reinterpret_cast<const char*>(p.data()), p.size());
  switch (status) {
    case mgr_status::ok:
    case mgr_status::owner_died:
    case mgr_status::timeout: return;
    case mgr_status::key_error:
      throw key_error(text.empty() ? "the key is not in the managed dict" : text);
    case mgr_status::index_error: throw index_error(text);
    case mgr_status::value_error: throw value_error(text);
    case mgr_status::type_error: throw type_error(text);
    case mgr_status::remote_error: {
      auto nl = text.find('\n');
      std::string type = nl == std::string::npos ? "std::exception" : text.substr(0, nl);
      std::string what = nl == std::string::npos ? text : text.substr(nl + 1);
      throw remote_error(type, what, addr.pid, "manager");
    }
    case mgr_status::error:
    default: throw manager_error(addr.describe() + ": " + text, addr.pid);
  }
}

}  // namespace isola::detail
