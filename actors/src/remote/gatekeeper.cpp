// The gatekeeper: node::listen, accepting connections, and the HMAC
// handshake each one passes before the socket goes to CAF's BASP broker.
//
// The gatekeeper accepts TCP connections on its own thread and runs the
// handshake on each; only an authenticated socket is handed to CAF: a
// doorman of ours, added to the BASP broker with publish, turns it into a
// scribe and a new_connection_msg, so that BASP starts its server handshake
// on it exactly as on a connection it accepted itself. BASP itself never
// listens on a port.
//
// What another process sees: a peer that connects reads the magic and a
// challenge; one that does not prove it knows the key within 5 s is told
// FAIL (where it answered wrong) and dropped, and never reaches BASP or the
// gateway. At most 128 handshakes wait at once, 16 from one source address
// (node_internal.hpp); a connection over either cap is told busy and closed
// at once (its node::connect tries again until its deadline), and a pending
// handshake is never evicted, so a flood cannot push out a real node half
// way through. A pending handshake holds its descriptor and a fixed 64-byte
// buffer. Out of descriptors (EMFILE), the gatekeeper sheds connections
// through a reserve descriptor instead of spinning on a readable listener;
// on another accept error it stops accepting for 100 ms.
// node::stats counts what happened.
//
// With listen_options::tls the hello opens with the TLS magic, and an
// authenticated connection then runs a TLS 1.3 handshake keyed by the HMAC
// handshake's challenges (sys/tls.hpp), on this thread, stepped by the same
// poll loop and under the same 5 s deadline: a peer that stops half way
// through holds its own slot and nothing else. BASP then gets a TLS scribe
// (tls_scribe.hpp) instead of a plain one.
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/doorman.hpp>
#include <caf/io/network/default_multiplexer.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "isola/logging.hpp"
#include "isola/node.hpp"
#include "remote/node_internal.hpp"
#include "root/registry.hpp"
#include "remote/tls_scribe.hpp"
#include "sys/net.hpp"
#include "sys/tls.hpp"

namespace isola {
namespace detail {

using namespace node_internal;

namespace {

// ---------------------------------------------------------------- the doorman

namespace cio = caf::io;
namespace cnet = caf::io::network;

/// A doorman that accepts nothing by itself: the gatekeeper gives it
/// authenticated sockets, and it announces each to the BASP broker as a new
/// connection (on the multiplexer thread, where the broker runs).
class auth_doorman final : public cio::doorman {
 public:
  auth_doorman(cnet::default_multiplexer& mx, int id, std::uint16_t port)
      : cio::doorman(cio::accept_handle::from_int(id)), mx_(mx), port_(port) {}

  bool new_connection() override { return false; }
  void graceful_shutdown() override { detach(&mx_, false); }
  void launch() override {}
  std::string addr() const override { return "0.0.0.0"; }
  std::uint16_t port() const override { return port_; }
  void add_to_loop() override {}
  void remove_from_loop() override {}

  /// On the multiplexer thread. tls: the established session over fd, or
  /// none for a plain link.
  void adopt(int fd, std::shared_ptr<tls_session> tls) {
    if (detached()) {
      ::close(fd);
      return;
    }
    auto sp = tls ? make_tls_scribe(mx_, fd, std::move(tls)) : mx_.new_scribe(fd);
    auto hdl = sp->hdl();
    parent()->add_scribe(std::move(sp));
    cio::doorman::new_connection(&mx_, hdl);
  }

 private:
  cnet::default_multiplexer& mx_;
  std::uint16_t port_;
};

// ---------------------------------------------------------------- the gatekeeper

struct stats_counters {
  std::atomic<std::uint64_t> accepted{0}, authenticated{0}, auth_failures{0}, dropped{0},
      refused{0};
};

class gatekeeper {
 public:
  gatekeeper(int lfd, std::uint16_t port, std::string key, cio::doorman_ptr d, bool tls)
      : lfd_(lfd), port_(port), key_(std::move(key)), door_(std::move(d)), tls_(tls) {}

  void run() {
    std::thread([this] { loop(); }).detach();  // lives as long as the process
  }
  std::uint16_t port() const { return port_; }
  stats_counters counters;

 private:
  struct hs {
    int fd = -1;
    int stage = 0;              // 0: reading the response; 1: reading the confirmation; 2: TLS
    std::uint8_t buf[64] = {};  // the response (no extra bytes), then the confirmation
    std::size_t have = 0;
    handshake::challenge challenge{};
    handshake::challenge client_challenge{};  // from the response: half the TLS key
    std::shared_ptr<tls_session> tls;         // stage 2
    short events = POLLIN;                    // what the next step waits for
    clock::time_point deadline;
    std::string peer;
    std::string source;  // net::source_of its address: the per-source cap
  };

  static std::string describe(const sockaddr_storage& ss) {
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    ::getnameinfo(reinterpret_cast<const sockaddr*>(&ss), sizeof ss, host, sizeof host, serv,
                  sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    return std::string(host) + ":" + serv;
  }

  /// Counts, then tells the peer `say` (if any), logs and closes: a peer
  /// told FAIL finds the failure already counted.
  void drop(hs& h, const std::string& why, bool auth, const char* say = nullptr) {
    if (auth)
      counters.auth_failures.fetch_add(1);
    else
      counters.dropped.fetch_add(1);
    if (say) ::send(h.fd, say, std::strlen(say), MSG_NOSIGNAL);
    if (auth) {
      get_logger().warning("isola::node: authentication_error: " + h.peer + ": " + why +
                           "; the connection was dropped");
    } else {
      get_logger().warning("isola::node: dropped " + h.peer + " before authentication: " + why);
    }
    h.tls.reset();
    ::close(h.fd);
    h.fd = -1;
  }

  void accept_all() {
    // Pending handshakes per source, counted afresh (there are at most 128).
    std::unordered_map<std::string, std::size_t> by_source;
    for (auto& h : pending_) ++by_source[h.source];
    for (;;) {
      sockaddr_storage ss{};
      int fd = -1;
      switch (reserve_.accept(lfd_, fd, ss, handshake::busy_notice)) {
        case net::accept_reserve::result::accepted: break;
        case net::accept_reserve::result::shed:
          counters.accepted.fetch_add(1);
          counters.refused.fetch_add(1);
          continue;
        case net::accept_reserve::result::empty: return;
        case net::accept_reserve::result::failed: {
          const int e = errno;
          get_logger().warning(std::string("isola::node: accept: ") + std::strerror(e) +
                               "; not accepting for 100 ms");
          paused_until_ = clock::now() + std::chrono::milliseconds(100);
          return;
        }
      }
      counters.accepted.fetch_add(1);
      std::string source = net::source_of(ss);
      auto& from_source = by_source[source];
      if (pending_.size() >= max_pending_handshakes || from_source >= max_pending_per_source) {
        // Refused, not queued, and nobody evicted: the handshakes under way
        // go on; the client is told busy and tries again.
        counters.refused.fetch_add(1);
        handshake::send_busy(fd);
        ::close(fd);
        continue;
      }
      hs h;
      h.fd = fd;
      h.peer = describe(ss);
      h.source = std::move(source);
      h.deadline = clock::now() + handshake_timeout;
      h.challenge = handshake::new_challenge();
      const auto hello = handshake::make_hello(node_spec(tls_), h.challenge);
      if (::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(hello.size())) {
        drop(h, "could not send the challenge", false);
        continue;
      }
      ++from_source;
      pending_.push_back(std::move(h));
    }
  }

  /// Reads what the handshake expects next; returns false when h was
  /// dropped or handed over.
  bool step(hs& h) {
    static_assert(sizeof h.buf >= 64);
    if (h.stage == 2) return tls_step(h);
    std::size_t want =
        h.stage == 0 ? handshake::response_size(node_handshake) : handshake::confirm_size;
    ssize_t r = ::recv(h.fd, h.buf + h.have, want - h.have, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      drop(h, std::strerror(errno), false);
      return false;
    }
    if (r == 0) {
      drop(h,
           h.stage == 0 ? "closed before answering the challenge"
                        : "closed after our proof (it does not know the key, or gave up)",
           h.stage == 1);
      return false;
    }
    h.have += static_cast<std::size_t>(r);
    if (h.have < want) return true;
    if (h.stage == 0) {
      auto verdict = handshake::make_verdict(node_handshake, key_, h.challenge,
                                             std::span<const std::uint8_t>(h.buf, want));
      if (!verdict) {
        drop(h, "the peer's digest does not match the key (or the peer is not an isola node)", true,
             "FAIL");
        return false;
      }
      if (::send(h.fd, verdict->data(), verdict->size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(verdict->size())) {
        drop(h, "could not send our proof", false);
        return false;
      }
      std::memcpy(h.client_challenge.data(), h.buf + 32, 32);
      h.stage = 1;
      h.have = 0;
      return true;
    }
    if (std::memcmp(h.buf, "OKAY", 4) != 0) {
      drop(h, "the peer rejected our proof (it holds another key)", true);
      return false;
    }
    if (tls_) {
      // The key is proved both ways; TLS next, keyed by this handshake.
      try {
        h.tls = std::make_shared<tls_session>(
            h.fd, tls_session::role::server,
            derive_tls_psk(key_, node_tls_handshake.magic, h.challenge, h.client_challenge));
      } catch (const std::exception& e) {
        drop(h, e.what(), false);
        return false;
      }
      h.stage = 2;
      return tls_step(h);  // its ClientHello may be here already
    }
    hand_over(h);
    return false;
  }

  /// One step of the TLS handshake; false when h was dropped or handed over.
  bool tls_step(hs& h) {
    switch (h.tls->handshake_step()) {
      case tls_io::done: hand_over(h); return false;
      case tls_io::want_read: h.events = POLLIN; return true;
      case tls_io::want_write: h.events = POLLOUT; return true;
      case tls_io::closed:
        drop(h, "closed during the TLS handshake (" + h.tls->why() + "); does it use TLS?", false);
        return false;
      case tls_io::failed:
        // The key was proved, yet the TLS key differs: not the peer that
        // answered the challenge, or bytes altered on the way.
        drop(h,
             "the TLS handshake failed (" + h.tls->why() +
                 "): a relay in between, or bytes altered on the way",
             true);
        return false;
    }
    return false;
  }

  /// Authenticated (and TLS established, with TLS): from here on the socket
  /// is BASP's.
  void hand_over(hs& h) {
    counters.authenticated.fetch_add(1);
    set_nodelay_cloexec(h.fd);
    auto d = door_;
    int fd = h.fd;
    h.fd = -1;
    auto tls = std::move(h.tls);
    auto& mx = dynamic_cast<cnet::default_multiplexer&>(node_system().middleman().backend());
    mx.post([d, fd, tls] { static_cast<auth_doorman*>(d.get())->adopt(fd, tls); });
  }

  void loop() {
    for (;;) {
      std::vector<pollfd> pfs;
      auto now = clock::now();
      int timeout = -1;
      // A paused listener is left out of the poll (a negative fd is skipped).
      const bool paused = paused_until_ && now < *paused_until_;
      if (paused)
        timeout = static_cast<int>(
            std::chrono::ceil<std::chrono::milliseconds>(*paused_until_ - now).count());
      else
        paused_until_.reset();
      pfs.push_back({paused ? -1 : lfd_, POLLIN, 0});
      for (auto& h : pending_) {
        pfs.push_back({h.fd, h.events, 0});
        auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(h.deadline - now).count() + 1;
        if (timeout < 0 || ms < timeout) timeout = static_cast<int>(std::max<long long>(0, ms));
      }
      int n = ::poll(pfs.data(), pfs.size(), timeout);
      if (n < 0 && errno != EINTR) {
        get_logger().error(std::string("isola::node: poll: ") + std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      std::vector<hs> keep;
      now = clock::now();
      for (std::size_t i = 0; i < pending_.size(); ++i) {
        auto& h = pending_[i];
        bool alive = true;
        if (pfs[i + 1].revents) alive = step(h);
        if (alive && now >= h.deadline) {
          drop(h,
               h.stage == 2 ? "the TLS handshake did not finish within 5 s"
                            : "no complete answer within 5 s",
               false);
          alive = false;
        }
        if (alive) keep.push_back(std::move(h));
      }
      pending_.swap(keep);
      if (pfs[0].revents & POLLIN) accept_all();
    }
  }

  int lfd_;
  std::uint16_t port_;
  std::string key_;
  cio::doorman_ptr door_;
  bool tls_;
  std::vector<hs> pending_;
  net::accept_reserve reserve_;
  std::optional<clock::time_point> paused_until_;
};

std::mutex listen_m;
gatekeeper* the_gatekeeper = nullptr;  // lives until exit

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------- isola::node

std::uint16_t node::listen(std::uint16_t port, std::string_view authkey,
                           const listen_options& opts) {
  using namespace detail;
  if (in_actor_process()) throw value_error("isola::node::listen: only the root process listens");
  if (authkey.empty()) throw value_error("isola::node::listen: the authentication key is empty");
  std::lock_guard lk(listen_m);
  if (the_gatekeeper)
    throw value_error("isola::node::listen: this root already listens on port " +
                      std::to_string(the_gatekeeper->port()));
  // The listening socket.
  auto listener = detail::net::tcp_listen(opts.host, port, true);
  if (!listener) throw os_error(listener.err, "isola::node::listen: " + listener.what);
  const std::uint16_t bound = listener.port;
  const int fd = listener.fd.release();
  // The gateway, published at `bound` through our doorman.
  const caf::actor& gw = gateway_actor();
  auto& sys = node_system();
  auto& mx = dynamic_cast<caf::io::network::default_multiplexer&>(sys.middleman().backend());
  caf::io::doorman_ptr d{new auth_doorman(mx, fd, bound)};
  auto basp = sys.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  {
    caf::scoped_actor self{sys};
    self->send(basp, caf::publish_atom::value, d, bound, caf::actor_cast<caf::strong_actor_ptr>(gw),
               std::set<std::string>{});
  }
  the_gatekeeper = new gatekeeper(fd, bound, std::string(authkey), d, opts.tls);
  the_gatekeeper->run();
  return bound;
}

std::uint16_t node::listening_port() {
  std::lock_guard lk(detail::listen_m);
  return detail::the_gatekeeper ? detail::the_gatekeeper->port() : 0;
}

node_stats node::stats() {
  std::lock_guard lk(detail::listen_m);
  node_stats s;
  if (auto* g = detail::the_gatekeeper) {
    s.accepted = g->counters.accepted;
    s.authenticated = g->counters.authenticated;
    s.auth_failures = g->counters.auth_failures;
    s.dropped = g->counters.dropped;
    s.refused_busy = g->counters.refused;
  }
  return s;
}

}  // namespace isola
