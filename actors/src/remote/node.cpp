// isola::node: roots that reach each other's actors over CAF's middleman.
// See isola/node.hpp and docs/decisions.md ("Nodes").
//
// - The gatekeeper (listening side) accepts TCP connections on its own
//   thread and runs the HMAC handshake on each; only an authenticated socket
//   is handed to CAF: a doorman of ours, added to the BASP broker with
//   publish, turns it into a scribe and a new_connection_msg, so that BASP
//   starts its server handshake on it exactly as on a connection it accepted
//   itself. BASP itself never listens on a port.
// - The connecting side authenticates on a blocking socket and gives it to
//   the BASP broker as the middleman actor gives it a fresh connection
//   (connect_atom with the scribe); the reply is the gateway's proxy.
// - The gateway (one per listening root, a detached CAF actor) takes
//   (op, actor id, type tag, payload) messages and puts envelopes straight
//   into the mailboxes of local actors, with the relay's inbox as sender;
//   the relay (a root thread) reads the replies and down notices and sends
//   them back over CAF. The connecting side's client actor completes the
//   futures, and fails them all when CAF reports the gateway down (the
//   connection closed or timed out: heartbeats).
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/doorman.hpp>
#include <caf/io/network/default_multiplexer.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/mailbox.hpp"
#include "isola/detail/manager_wire.hpp"
#include "sys/crypto.hpp"
#include "isola/logging.hpp"
#include "isola/node.hpp"
#include "root/registry.hpp"
#include "sys/os.hpp"

namespace isola {
namespace detail {

namespace {

using is_send_atom = caf::atom_constant<caf::atom("isola_snd")>;
using is_req_atom = caf::atom_constant<caf::atom("isola_req")>;
using is_mon_atom = caf::atom_constant<caf::atom("isola_mon")>;
using is_alive_atom = caf::atom_constant<caf::atom("isola_alv")>;
using is_spawn_atom = caf::atom_constant<caf::atom("isola_spn")>;
using is_ok_atom = caf::atom_constant<caf::atom("isola_ok")>;
using is_err_atom = caf::atom_constant<caf::atom("isola_err")>;
using is_down_atom = caf::atom_constant<caf::atom("isola_dwn")>;
using is_timeout_atom = caf::atom_constant<caf::atom("isola_tmo")>;

// ---------------------------------------------------------------- handshake

constexpr char magic[8] = {'I', 'S', 'O', 'L', 'A', '-', 'N', '1'};
constexpr std::size_t hello_size = 8 + 32;     // magic, server challenge
constexpr std::size_t response_size = 32 + 32;  // client mac, client challenge
constexpr std::size_t verdict_size = 4 + 32;    // "OKAY" + server mac (or "FAIL")
constexpr std::size_t confirm_size = 4;         // the client's "OKAY"/"FAIL"
constexpr auto handshake_timeout = std::chrono::seconds(5);
constexpr std::size_t max_pending_handshakes = 64;

using challenge_t = std::array<std::uint8_t, 32>;

challenge_t random_challenge() {
  challenge_t c;
  std::size_t got = 0;
  while (got < c.size()) {
    ssize_t r = ::getrandom(c.data() + got, c.size() - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("getrandom");
    }
    got += static_cast<std::size_t>(r);
  }
  return c;
}

sha256_digest proof(std::string_view key, std::string_view label, const std::uint8_t* challenge) {
  std::string msg(label);
  msg.append(reinterpret_cast<const char*>(challenge), 32);
  return hmac_sha256(key, msg);
}

constexpr std::string_view client_label = "isola-node-client";
constexpr std::string_view server_label = "isola-node-server";

void set_nodelay_cloexec(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

// Blocking I/O with a deadline, for the connecting side.
bool io_exact(int fd, void* buf, std::size_t n, bool writing, clock::time_point deadline) {
  auto* p = static_cast<std::uint8_t*>(buf);
  while (n > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) throw timeout_error("isola::node::connect: the handshake did not finish in time");
    pollfd pf{fd, static_cast<short>(writing ? POLLOUT : POLLIN), 0};
    int pr = ::poll(&pf, 1, static_cast<int>(left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t r = writing ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    if (r == 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// ---------------------------------------------------------------- the doorman

namespace cio = caf::io;
namespace net = caf::io::network;

/// A doorman that accepts nothing by itself: the gatekeeper gives it
/// authenticated sockets, and it announces each to the BASP broker as a new
/// connection (on the multiplexer thread, where the broker runs).
class auth_doorman final : public cio::doorman {
 public:
  auth_doorman(net::default_multiplexer& mx, int id, std::uint16_t port)
      : cio::doorman(cio::accept_handle::from_int(id)), mx_(mx), port_(port) {}

  bool new_connection() override { return false; }
  void graceful_shutdown() override { detach(&mx_, false); }
  void launch() override {}
  std::string addr() const override { return "0.0.0.0"; }
  std::uint16_t port() const override { return port_; }
  void add_to_loop() override {}
  void remove_from_loop() override {}

  /// On the multiplexer thread.
  void adopt(int fd) {
    if (detached()) {
      ::close(fd);
      return;
    }
    auto sp = mx_.new_scribe(fd);
    auto hdl = sp->hdl();
    parent()->add_scribe(std::move(sp));
    cio::doorman::new_connection(&mx_, hdl);
  }

 private:
  net::default_multiplexer& mx_;
  std::uint16_t port_;
};

// ---------------------------------------------------------------- the gateway

struct gateway_core {
  std::shared_ptr<inbox> relay;  // the relay thread's inbox
  struct inflight {
    std::shared_ptr<future_state<void>> st;
    caf::actor requester;
    std::uint64_t ref;
  };
  std::mutex m;
  std::list<inflight> flights;
  std::unordered_map<std::uint64_t, std::shared_ptr<peer>> peers;  // gateway thread only
};

// A failure crosses to the other node as error_info's fields (core.cpp
// classifies it, and rebuilds the same exception type on the other side).
void send_error(const caf::actor& to, std::uint64_t ref, std::exception_ptr e) {
  error_info ei = describe_failure(e);
  caf::anon_send(to, is_err_atom::value, ref, static_cast<std::int32_t>(ei.what),
                 std::move(ei.type_name), std::move(ei.text), static_cast<std::int32_t>(ei.pid),
                 std::move(ei.process_name));
}

std::exception_ptr rebuild_error(std::int32_t k, const std::string& type_name, const std::string& text,
                                 std::int32_t pid, const std::string& proc) {
  error_info ei{error_info::kind::other, type_name, text, pid, proc};
  if (k >= 0 && k <= static_cast<std::int32_t>(error_info::kind::other))
    ei.what = static_cast<error_info::kind>(k);
  return to_exception(ei);
}

std::string as_string(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}
std::span<const std::byte> as_bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// The relay: reads its inbox (replies and down notices for remote
/// requesters, routed by the inbox to the callbacks that send them back) and
/// sends back the requests that failed (error replies, dead targets).
void relay_loop(gateway_core* g) {
  for (;;) {
    try {
      g->relay->pump(std::nullopt);
      std::vector<gateway_core::inflight> failed;
      {
        std::lock_guard lk(g->m);
        for (auto it = g->flights.begin(); it != g->flights.end();) {
          std::lock_guard sl(it->st->m);
          if (it->st->done) {
            if (it->st->error) failed.push_back(*it);
            it = g->flights.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (auto& f : failed) send_error(f.requester, f.ref, f.st->error);
    } catch (const std::exception& ex) {
      get_logger().error(std::string("isola: node relay: ") + ex.what());
    }
  }
}

std::shared_ptr<peer> gateway_peer(gateway_core& g, std::uint64_t id) {
  auto it = g.peers.find(id);
  if (it != g.peers.end()) {
    if (!it->second->dead()) return it->second;
    g.peers.erase(it);
  }
  auto p = root_context().lookup(id);
  if (!p->dead()) {
    if (g.peers.size() > 4096) g.peers.clear();
    g.peers.emplace(id, p);
  }
  return p;
}

bool gateway_put(gateway_core& g, peer& p, env_kind kind, std::uint64_t ref, std::uint64_t tag,
                 std::span<const std::byte> payload) {
  envelope_header h;
  h.kind = static_cast<std::uint8_t>(kind);
  h.sender = g.relay->id();
  h.ref = ref;
  h.tag = tag;
  return put_envelope(p, h, payload);
}

actor do_spawn(const std::string& identity, const std::string& blob) {
  const auto& mine = program_identity();
  if (identity.size() != mine.size() || std::memcmp(identity.data(), mine.data(), mine.size()) != 0)
    throw value_error(
        "isola::node::spawn: the node runs another program (or another build of it); a remote "
        "spawn sends make_behavior as an address, so both nodes must run the same executable");
  return spawn_from_blob(as_bytes_of(blob));
}

caf::behavior gateway_fn(caf::event_based_actor* self, gateway_core* g) {
  return {
      [self, g](is_send_atom, std::uint64_t id, std::uint64_t tag, std::int32_t kind,
                const std::string& payload) {
        try {
          auto p = gateway_peer(*g, id);
          if (p->dead()) {
            root_context().dropped.fetch_add(1, std::memory_order_relaxed);
            return;
          }
          auto k = static_cast<env_kind>(kind);
          if (k != env_kind::send && k != env_kind::stop) return;
          if (!gateway_put(*g, *p, k, 0, tag, as_bytes_of(payload)))
            root_context().dropped.fetch_add(1, std::memory_order_relaxed);
        } catch (const std::exception& ex) {
          get_logger().warning(std::string("isola: a message from another node was dropped: ") + ex.what());
        }
        (void)self;
      },
      [self, g](is_req_atom, std::uint64_t ref, std::uint64_t id, std::uint64_t tag,
                const std::string& payload) {
        auto who = caf::actor_cast<caf::actor>(self->current_sender());
        try {
          auto p = gateway_peer(*g, id);
          if (p->dead()) throw actor_exited(p->reason().to_string());
          auto st = std::make_shared<future_state<void>>();
          std::weak_ptr<future_state<void>> w = st;
          reply_fn on_reply = [who, ref, w](std::uint64_t tag, std::span<const std::byte> b) {
            caf::anon_send(who, is_ok_atom::value, ref, tag, as_string(b));
            if (auto s = w.lock()) s->succeed(std::monostate{});
          };
          {
            std::lock_guard lk(g->m);
            g->flights.push_back({st, who, ref});
          }
          std::uint64_t r = g->relay->add_pending({p, st, std::move(on_reply), std::nullopt, false});
          if (!gateway_put(*g, *p, env_kind::request, r, tag, as_bytes_of(payload))) {
            g->relay->drop_pending(r);
            st->fail(std::make_exception_ptr(actor_exited(p->reason().to_string())));
          }
        } catch (...) {
          send_error(who, ref, std::current_exception());
        }
      },
      [self, g](is_mon_atom, std::uint64_t ref, std::uint64_t id) {
        auto who = caf::actor_cast<caf::actor>(self->current_sender());
        reply_fn on_down = [who, ref](std::uint64_t, std::span<const std::byte> b) {
          caf::anon_send(who, is_down_atom::value, ref, as_string(b));
        };
        try {
          auto p = root_context().lookup(id);
          auto st = std::make_shared<future_state<void>>();
          std::uint64_t r = g->relay->add_pending({p, st, std::move(on_down), std::nullopt, true});
          root_context().add_monitor(id, g->relay->id(), r);
        } catch (...) {
          down d{actor(id, 0, {}), exit_reason{exit_reason::kind::unknown, 0, "no such actor"}};
          on_down(0, encode(d));
        }
      },
      [self](is_alive_atom, std::uint64_t ref, std::uint64_t id) {
        auto who = caf::actor_cast<caf::actor>(self->current_sender());
        bool alive = false;
        try {
          alive = !root_context().lookup(id)->dead();
        } catch (...) {
        }
        caf::anon_send(who, is_ok_atom::value, ref, type_tag<bool>(), as_string(encode(alive)));
      },
      [self](is_spawn_atom, std::uint64_t ref, const std::string& identity, const std::string& blob) {
        auto who = caf::actor_cast<caf::actor>(self->current_sender());
        try {
          actor a = do_spawn(identity, blob);
          caf::anon_send(who, is_ok_atom::value, ref, type_tag<actor>(), as_string(encode(a)));
        } catch (...) {
          send_error(who, ref, std::current_exception());
        }
      },
  };
}

// ---------------------------------------------------------------- the gatekeeper

struct stats_counters {
  std::atomic<std::uint64_t> accepted{0}, authenticated{0}, auth_failures{0}, dropped{0};
};

class gatekeeper {
 public:
  gatekeeper(int lfd, std::uint16_t port, std::string key, cio::doorman_ptr d)
      : lfd_(lfd), port_(port), key_(std::move(key)), door_(std::move(d)) {}

  void run() {
    std::thread([this] { loop(); }).detach();  // lives as long as the process
  }
  std::uint16_t port() const { return port_; }
  stats_counters counters;

 private:
  struct hs {
    int fd = -1;
    int stage = 0;  // 0: reading the response; 1: reading the confirmation
    std::uint8_t buf[response_size] = {};
    std::size_t have = 0;
    challenge_t challenge{};
    clock::time_point deadline;
    std::string peer;
  };

  static std::string describe(const sockaddr_storage& ss) {
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    ::getnameinfo(reinterpret_cast<const sockaddr*>(&ss), sizeof ss, host, sizeof host, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV);
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
    ::close(h.fd);
    h.fd = -1;
  }

  void accept_all() {
    for (;;) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      int fd = ::accept4(lfd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      counters.accepted.fetch_add(1);
      hs h;
      h.fd = fd;
      h.peer = describe(ss);
      h.deadline = clock::now() + handshake_timeout;
      h.challenge = random_challenge();
      std::uint8_t hello[hello_size];
      std::memcpy(hello, magic, sizeof magic);
      std::memcpy(hello + sizeof magic, h.challenge.data(), 32);
      if (::send(fd, hello, sizeof hello, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello)) {
        drop(h, "could not send the challenge", false);
        continue;
      }
      if (pending_.size() >= max_pending_handshakes) {
        drop(pending_.front(), "too many handshakes at once", false);
        pending_.erase(pending_.begin());
      }
      pending_.push_back(std::move(h));
    }
  }

  /// Reads what the handshake expects next; returns false when h was
  /// dropped or handed over.
  bool step(hs& h) {
    std::size_t want = h.stage == 0 ? response_size : confirm_size;
    ssize_t r = ::recv(h.fd, h.buf + h.have, want - h.have, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      drop(h, std::strerror(errno), false);
      return false;
    }
    if (r == 0) {
      drop(h, h.stage == 0 ? "closed before answering the challenge"
                           : "closed after our proof (it does not know the key, or gave up)",
           h.stage == 1);
      return false;
    }
    h.have += static_cast<std::size_t>(r);
    if (h.have < want) return true;
    if (h.stage == 0) {
      auto expect = proof(key_, client_label, h.challenge.data());
      if (!constant_time_equal(std::span<const std::uint8_t>(h.buf, 32), expect)) {
        drop(h, "the peer's digest does not match the key (or the peer is not an isola node)", true, "FAIL");
        return false;
      }
      std::uint8_t verdict[verdict_size];
      std::memcpy(verdict, "OKAY", 4);
      auto mine = proof(key_, server_label, h.buf + 32);
      std::memcpy(verdict + 4, mine.data(), 32);
      if (::send(h.fd, verdict, sizeof verdict, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof verdict)) {
        drop(h, "could not send our proof", false);
        return false;
      }
      h.stage = 1;
      h.have = 0;
      return true;
    }
    if (std::memcmp(h.buf, "OKAY", 4) != 0) {
      drop(h, "the peer rejected our proof (it holds another key)", true);
      return false;
    }
    // Authenticated: from here on the socket is BASP's.
    counters.authenticated.fetch_add(1);
    set_nodelay_cloexec(h.fd);
    auto d = door_;
    int fd = h.fd;
    h.fd = -1;
    auto& mx = dynamic_cast<net::default_multiplexer&>(node_system().middleman().backend());
    mx.post([d, fd] { static_cast<auth_doorman*>(d.get())->adopt(fd); });
    return false;
  }

  void loop() {
    for (;;) {
      std::vector<pollfd> pfs;
      pfs.push_back({lfd_, POLLIN, 0});
      auto now = clock::now();
      int timeout = -1;
      for (auto& h : pending_) {
        pfs.push_back({h.fd, POLLIN, 0});
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(h.deadline - now).count() + 1;
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
          drop(h, "no complete answer within 5 s", false);
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
  std::vector<hs> pending_;
};

std::mutex listen_m;
gatekeeper* the_gatekeeper = nullptr;  // lives until exit
gateway_core* the_gateway = nullptr;   // lives until exit
caf::actor* the_gateway_actor = nullptr;

/// The gateway and its relay thread (once per root).
gateway_core& gateway() {
  if (the_gateway) return *the_gateway;
  auto* g = new gateway_core;
  std::mutex m;
  std::condition_variable cv;
  std::thread([g, &m, &cv] {
    auto ib = root_context().my_inbox();
    {
      std::lock_guard lk(m);
      g->relay = ib;
    }
    cv.notify_all();
    relay_loop(g);
  }).detach();
  {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return g->relay != nullptr; });
  }
  the_gateway_actor = new caf::actor(node_system().spawn<caf::detached>(gateway_fn, g));
  the_gateway = g;
  return *g;
}

// ---------------------------------------------------------------- the client side

}  // namespace

struct remote_link : std::enable_shared_from_this<remote_link> {
  std::uint64_t index = 0;
  std::string host;
  std::uint16_t port = 0;
  caf::actor gateway;
  caf::actor client;
  struct pend {
    std::shared_ptr<future_core> st;
    reply_fn on_reply;
    bool is_monitor = false;
    actor who;
  };
  std::mutex m;
  std::unordered_map<std::uint64_t, pend> pending;
  std::uint64_t next_ref = 1;
  bool lost = false;
  std::string lost_why;

  std::string describe() const { return "the node at " + host + ":" + std::to_string(port); }

  std::optional<pend> take(std::uint64_t ref) {
    std::lock_guard lk(m);
    auto it = pending.find(ref);
    if (it == pending.end()) return std::nullopt;
    pend p = std::move(it->second);
    pending.erase(it);
    return p;
  }

  void lose(const std::string& why) {
    std::unordered_map<std::uint64_t, pend> all;
    std::string text;
    {
      std::lock_guard lk(m);
      if (lost) return;
      lost = true;
      lost_why = describe() + " was lost (" + why + ")";
      text = lost_why;
      all.swap(pending);
    }
    get_logger().warning("isola::node: " + text);
    for (auto& [ref, p] : all) {
      if (p.is_monitor) {
        down d{p.who, exit_reason{exit_reason::kind::unknown, 0, text}};
        p.on_reply(type_tag<down>(), encode(d));
      } else {
        p.st->fail(std::make_exception_ptr(actor_exited(text)));
      }
    }
  }

  /// Registers a pending request or monitor; 0 when the node is lost (then
  /// st is failed, or the monitor gets its down, at once).
  std::uint64_t add(pend p) {
    std::string why;
    {
      std::lock_guard lk(m);
      if (!lost) {
        std::uint64_t ref = next_ref++;
        pending.emplace(ref, std::move(p));
        return ref;
      }
      why = lost_why;
    }
    if (p.is_monitor) {
      down d{p.who, exit_reason{exit_reason::kind::unknown, 0, why}};
      p.on_reply(type_tag<down>(), encode(d));
    } else {
      p.st->fail(std::make_exception_ptr(actor_exited(why)));
    }
    return 0;
  }
};

namespace {

std::mutex links_m;
std::unordered_map<std::uint64_t, std::shared_ptr<remote_link>> links;  // never shrinks: handles name them
std::uint64_t next_link = 1;

std::shared_ptr<remote_link> link_of(std::uint64_t index) {
  if (in_actor_process())
    throw value_error(
        "isola: this operation on another node works only in the root process that connected "
        "to it (an actor process can send, request, monitor and ask alive(); node::spawn and "
        "the rest belong to the root)");
  std::lock_guard lk(links_m);
  auto it = links.find(index);
  if (it == links.end()) throw value_error("isola: no connection to another node numbered " + std::to_string(index));
  return it->second;
}

caf::behavior client_fn(caf::event_based_actor* self, std::shared_ptr<remote_link> l) {
  self->monitor(l->gateway);
  self->set_down_handler([self, l](caf::down_msg& dm) {
    l->lose(self->system().render(dm.reason));
    self->quit();
  });
  return {
      [l](is_ok_atom, std::uint64_t ref, std::uint64_t tag, const std::string& payload) {
        if (auto p = l->take(ref)) {
          remote_handle_scope scope(remote_handle_scope::mode::decode_from, l->index);
          p->on_reply(tag, as_bytes_of(payload));
        }
      },
      [l](is_err_atom, std::uint64_t ref, std::int32_t kind, const std::string& type_name,
          const std::string& text, std::int32_t pid, const std::string& proc) {
        if (auto p = l->take(ref)) p->st->fail(rebuild_error(kind, type_name, text, pid, proc));
      },
      [l](is_down_atom, std::uint64_t ref, const std::string& payload) {
        auto p = l->take(ref);
        if (!p) return;
        try {
          auto d = decode<down>(as_bytes_of(payload));
          d.who = p->who;
          p->on_reply(type_tag<down>(), encode(d));
        } catch (...) {
          p->st->fail(std::current_exception());
        }
      },
      [l](is_timeout_atom, std::uint64_t ref) {
        if (auto p = l->take(ref))
          p->st->fail(std::make_exception_ptr(timeout_error("no reply within the request's timeout")));
      },
  };
}

void wire_cancel(const std::shared_ptr<future_core>& st, const std::shared_ptr<remote_link>& l,
                 std::uint64_t ref) {
  std::weak_ptr<remote_link> w = l;
  std::lock_guard lk(st->m);
  st->on_cancel = [w, ref] {
    if (auto x = w.lock()) x->take(ref);
  };
}

}  // namespace

// ---------------------------------------------------------------- spawn blobs

namespace {
struct spawn_entries {
  std::mutex m;
  std::unordered_set<const void*> known;
};
spawn_entries& entries() {
  static spawn_entries e;  // registered into during static initialisation
  return e;
}
}  // namespace

bool register_spawn_entry(remote_spawn_fn e) noexcept {
  try {
    auto& r = entries();
    std::lock_guard lk(r.m);
    r.known.insert(reinterpret_cast<const void*>(e));
  } catch (...) {
  }
  return true;
}

bool known_spawn_entry(const void* e) noexcept {
  auto& r = entries();
  std::lock_guard lk(r.m);
  return r.known.count(e) != 0;
}

bytes spawn_blob(const spawn_options& o, function_address entry, function_address fn, bytes args) {
  if (o.method && *o.method == start_method::fork)
    throw start_method_error("isola::spawn: actors never start with fork; use forkserver or spawn");
  std::int32_t method = o.method ? static_cast<std::int32_t>(*o.method) : -1;
  return encode(std::make_tuple(entry, fn, o.name, method, o.daemon,
                                static_cast<std::uint64_t>(o.mailbox_bytes), std::move(args)));
}

actor spawn_from_blob(std::span<const std::byte> blob) {
  function_address entry, fn;
  std::string name;
  std::int32_t method = -1;
  bool daemon = true;
  std::uint64_t mailbox = 0;
  bytes args;
  auto t = decode<std::tuple<function_address, function_address, std::string, std::int32_t, bool,
                             std::uint64_t, bytes>>(blob);
  std::tie(entry, fn, name, method, daemon, mailbox, args) = std::move(t);
  if (!entry.fn || !known_spawn_entry(entry.fn))
    throw value_error("isola::spawn: the request names no spawn entry point of this program "
                      "(corrupt, or from another build)");
  spawn_options o;
  o.name = std::move(name);
  if (method >= 0) o.method = static_cast<start_method>(method);
  o.daemon = daemon;
  if (mailbox) o.mailbox_bytes = static_cast<std::size_t>(mailbox);
  auto e = reinterpret_cast<remote_spawn_fn>(const_cast<void*>(entry.fn));
  return e(o, fn, args);
}

// ---------------------------------------------------------------- entry points

// In an actor process each entry point below goes through the root
// (forward_remote in core.cpp; the root's side is forward_for_actor).
using rop = ctl_request::remote_op;

bool remote_post(std::uint64_t node, std::uint64_t target, env_kind kind, std::uint64_t tag,
                 std::span<const std::byte> payload) {
  if (in_actor_process()) {
    // Whether the link is up is the root's to know: a lost one drops it
    // there (counted), as a send to an ended actor is dropped.
    forward_remote(kind == env_kind::stop ? rop::stop : rop::send, node, target, tag, payload,
                   std::nullopt, nullptr, {});
    return true;
  }
  auto l = link_of(node);
  {
    std::lock_guard lk(l->m);
    if (l->lost) {
      root_context().dropped.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  }
  caf::send_as(l->client, l->gateway, is_send_atom::value, target, tag,
               static_cast<std::int32_t>(kind), as_string(payload));
  return true;
}

void remote_request(std::uint64_t node, std::uint64_t target, std::uint64_t tag,
                    std::span<const std::byte> payload, std::optional<clock::time_point> deadline,
                    const std::shared_ptr<future_core>& st, reply_fn on_reply) {
  if (in_actor_process()) {
    // The root passes the reply's bytes on as they came: they are decoded
    // here, where the handles in them become handles of that node.
    reply_fn in_scope = [node, f = std::move(on_reply)](std::uint64_t tag,
                                                        std::span<const std::byte> b) {
      remote_handle_scope scope(remote_handle_scope::mode::decode_from, node);
      f(tag, b);
    };
    forward_remote(rop::request, node, target, tag, payload, deadline, st, std::move(in_scope));
    return;
  }
  auto l = link_of(node);
  std::uint64_t ref = l->add({st, std::move(on_reply), false, {}});
  if (!ref) return;
  wire_cancel(st, l, ref);
  caf::send_as(l->client, l->gateway, is_req_atom::value, ref, target, tag, as_string(payload));
  if (deadline) {
    auto dt = *deadline - clock::now();
    if (dt < clock::duration::zero()) dt = clock::duration::zero();
    caf::delayed_anon_send(l->client, std::chrono::duration_cast<std::chrono::nanoseconds>(dt),
                           is_timeout_atom::value, ref);
  }
}

void remote_monitor(std::uint64_t node, std::uint64_t target, const std::shared_ptr<future_core>& st,
                    reply_fn on_down) {
  if (in_actor_process()) {
    forward_remote(rop::monitor, node, target, 0, {}, std::nullopt, st, std::move(on_down));
    return;
  }
  auto l = link_of(node);
  actor who(target, 0, {}, node);
  std::uint64_t ref = l->add({st, std::move(on_down), true, who});
  if (!ref) return;
  wire_cancel(st, l, ref);
  caf::send_as(l->client, l->gateway, is_mon_atom::value, ref, target);
}

namespace {
// Asks the other node whether target runs; the answer (an encoded bool)
// goes to on_reply, a lost connection to st.
void remote_alive_async(std::uint64_t node, std::uint64_t target,
                        const std::shared_ptr<future_core>& st, reply_fn on_reply) {
  auto l = link_of(node);
  {
    std::unique_lock lk(l->m);
    if (l->lost) {
      lk.unlock();
      on_reply(type_tag<bool>(), encode(false));
      return;
    }
  }
  std::uint64_t ref = l->add({st, std::move(on_reply), false, {}});
  if (!ref) return;
  caf::send_as(l->client, l->gateway, is_alive_atom::value, ref, target);
}

/// The root's side of a forwarded request: its failure goes back to the
/// actor process as an error reply.
struct forward_state final : future_core {
  std::function<void(const std::exception_ptr&)> pass_on;
  void failed(const std::exception_ptr& e) noexcept override {
    try {
      pass_on(e);
    } catch (...) {
    }
  }
};
}  // namespace

bool remote_alive(std::uint64_t node, std::uint64_t target) {
  auto st = std::make_shared<future_state<bool>>();
  std::weak_ptr<future_state<bool>> w = st;
  reply_fn on_reply = [w](std::uint64_t, std::span<const std::byte> b) {
    if (auto s = w.lock()) s->succeed(decode<bool>(b));
  };
  if (in_actor_process())
    forward_remote(rop::alive, node, target, 0, {}, std::nullopt, st, std::move(on_reply));
  else
    remote_alive_async(node, target, st, std::move(on_reply));
  try {
    return future<bool>(st).get(duration(30));
  } catch (const actor_exited&) {
    return false;
  }
}

void forward_for_actor(std::uint64_t who, const ctl_request& rq) {
  const std::uint64_t ref = rq.ref;
  auto answer = [who, ref](env_kind k) {
    return [who, ref, k](std::uint64_t tag, std::span<const std::byte> b) {
      node_post_answer(who, k, ref, tag, bytes(b.begin(), b.end()));
    };
  };
  auto fail_back = [who, ref](const std::exception_ptr& e) {
    node_post_answer(who, env_kind::error_reply, ref, type_tag<error_info>(),
                     encode(describe_failure(e)));
  };
  const auto payload = as_bytes_of(rq.payload);
  try {
    switch (rq.rop) {
      case rop::send:
      case rop::stop:
        remote_post(rq.node, rq.id, rq.rop == rop::stop ? env_kind::stop : env_kind::send, rq.tag,
                    payload);
        return;
      case rop::request:
      case rop::monitor:
      case rop::alive:
        break;
    }
    auto st = std::make_shared<forward_state>();
    st->pass_on = fail_back;
    if (rq.rop == rop::monitor) {
      // A monitor that cannot be set up still ends in a down notice (what
      // actor::monitor's future and a behavior's down handler both expect).
      st->pass_on = [who, ref, node = rq.node, target = rq.id](const std::exception_ptr& e) {
        down d{actor(target, 0, {}, node), {exit_reason::kind::unknown, 0, describe_failure(e).text}};
        node_post_answer(who, env_kind::down, ref, type_tag<down>(), encode(d));
      };
    }
    if (rq.rop == rop::request) {
      std::optional<clock::time_point> deadline;
      if (rq.timeout_ns >= 0) deadline = clock::now() + std::chrono::nanoseconds(rq.timeout_ns);
      remote_request(rq.node, rq.id, rq.tag, payload, deadline, st, answer(env_kind::reply));
    } else if (rq.rop == rop::monitor) {
      remote_monitor(rq.node, rq.id, st, answer(env_kind::down));
    } else {
      remote_alive_async(rq.node, rq.id, st, answer(env_kind::reply));
    }
  } catch (const std::exception& ex) {
    if (rq.rop == rop::send || rq.rop == rop::stop) {
      root_context().dropped.fetch_add(1, std::memory_order_relaxed);
      get_logger().warning(std::string("isola: dropped a message an actor sent to another node: ") +
                           ex.what());
      return;
    }
    if (rq.rop == rop::monitor) {
      down d{actor(rq.id, 0, {}, rq.node), {exit_reason::kind::unknown, 0, ex.what()}};
      node_post_answer(who, env_kind::down, ref, type_tag<down>(), encode(d));
      return;
    }
    fail_back(std::current_exception());
  }
}

actor remote_spawn(remote_link& lr, const spawn_options& o, function_address entry, function_address fn,
                   bytes args) {
  auto l = lr.shared_from_this();
  bytes blob = spawn_blob(o, entry, fn, std::move(args));
  const auto& id = program_identity();
  std::string identity(reinterpret_cast<const char*>(id.data()), id.size());
  auto st = std::make_shared<future_state<actor>>();
  std::weak_ptr<future_state<actor>> w = st;
  std::uint64_t index = l->index;
  std::uint64_t ref = l->add({st,
                              [w, index](std::uint64_t, std::span<const std::byte> b) {
                                if (auto s = w.lock()) {
                                  try {
                                    auto a = decode<actor>(b);
                                    s->succeed(actor(a.id(), a.pid(), a.name(), index));
                                  } catch (...) {
                                    s->fail(std::current_exception());
                                  }
                                }
                              },
                              false,
                              {}});
  if (ref) caf::send_as(l->client, l->gateway, is_spawn_atom::value, ref, identity, as_string(blob));
  return future<actor>(st).get(duration(60));
}

}  // namespace detail

// ---------------------------------------------------------------- isola::node

std::uint16_t node::listen(std::uint16_t port, std::string_view authkey, const listen_options& opts) {
  using namespace detail;
  if (in_actor_process()) throw value_error("isola::node::listen: only the root process listens");
  if (authkey.empty()) throw value_error("isola::node::listen: the authentication key is empty");
  std::lock_guard lk(listen_m);
  if (the_gatekeeper)
    throw value_error("isola::node::listen: this root already listens on port " +
                      std::to_string(the_gatekeeper->port()));
  // The listening socket.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string ps = std::to_string(port);
  int rc = ::getaddrinfo(opts.host.empty() ? nullptr : opts.host.c_str(), ps.c_str(), &hints, &res);
  if (rc != 0) throw os_error(EINVAL, "isola::node::listen: " + opts.host + ": " + ::gai_strerror(rc));
  int fd = -1, err = 0;
  for (auto* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 128) == 0) break;
    err = errno;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0)
    throw os_error(err, "isola::node::listen: cannot listen on " + opts.host + ":" + ps + ": " +
                            std::strerror(err));
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  std::uint16_t bound = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                       : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  // The gateway, published at `bound` through our doorman.
  auto& g = gateway();
  (void)g;
  auto& sys = node_system();
  auto& mx = dynamic_cast<caf::io::network::default_multiplexer&>(sys.middleman().backend());
  caf::io::doorman_ptr d{new auth_doorman(mx, fd, bound)};
  auto basp = sys.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  {
    caf::scoped_actor self{sys};
    self->send(basp, caf::publish_atom::value, d, bound,
               caf::actor_cast<caf::strong_actor_ptr>(*the_gateway_actor), std::set<std::string>{});
  }
  the_gatekeeper = new gatekeeper(fd, bound, std::string(authkey), d);
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
  }
  return s;
}

node node::connect(const std::string& host, std::uint16_t port, std::string_view authkey, duration timeout) {
  using namespace detail;
  if (in_actor_process()) throw value_error("isola::node::connect: only the root process connects");
  if (authkey.empty()) throw value_error("isola::node::connect: the authentication key is empty");
  auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(timeout);
  std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string ps = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), ps.c_str(), &hints, &res);
  if (rc != 0) throw os_error(EINVAL, "isola::node::connect: " + host + ": " + ::gai_strerror(rc));
  int fd = -1, err = ECONNREFUSED;
  for (auto* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      err = errno;
      ::close(fd);
      fd = -1;
      continue;
    }
    pollfd pf{fd, POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    int pr = ::poll(&pf, 1, static_cast<int>(std::max<long long>(0, left)));
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (pr <= 0) {
      err = ETIMEDOUT;
    } else {
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
      if (soerr == 0) break;
      err = soerr;
    }
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    if (err == ETIMEDOUT) throw timeout_error("isola::node::connect: " + where + " did not answer in time");
    throw os_error(err, "isola::node::connect: " + where + ": " + std::strerror(err));
  }
  unique_fd guard(fd);
  // The handshake: their challenge, our proof and challenge, their verdict
  // and proof, our verdict.
  std::uint8_t hello[hello_size];
  if (!io_exact(fd, hello, sizeof hello, false, deadline))
    throw os_error(ECONNRESET, "isola::node::connect: " + where + " closed the connection before the handshake");
  if (std::memcmp(hello, magic, sizeof magic) != 0)
    throw authentication_error("isola::node::connect: what answers at " + where + " is not an isola node");
  std::string key(authkey);
  std::uint8_t resp[response_size];
  auto mac = proof(key, client_label, hello + sizeof magic);
  std::memcpy(resp, mac.data(), 32);
  challenge_t mine = random_challenge();
  std::memcpy(resp + 32, mine.data(), 32);
  if (!io_exact(fd, resp, sizeof resp, true, deadline))
    throw os_error(ECONNRESET, "isola::node::connect: " + where + " closed the connection during the handshake");
  std::uint8_t verdict[verdict_size];
  if (!io_exact(fd, verdict, 4, false, deadline) || std::memcmp(verdict, "OKAY", 4) != 0)
    throw authentication_error("isola::node::connect: " + where +
                               " refused the authentication key (the digest did not match): use the "
                               "key the node listens with");
  if (!io_exact(fd, verdict + 4, 32, false, deadline))
    throw os_error(ECONNRESET, "isola::node::connect: " + where + " cut the handshake short");
  auto expect = proof(key, server_label, mine.data());
  if (!constant_time_equal(std::span<const std::uint8_t>(verdict + 4, 32), expect)) {
    io_exact(fd, const_cast<char*>("FAIL"), 4, true, deadline);
    throw authentication_error("isola::node::connect: " + where +
                               " did not prove it knows the authentication key: the connection was "
                               "dropped");
  }
  if (!io_exact(fd, const_cast<char*>("OKAY"), 4, true, deadline))
    throw os_error(ECONNRESET, "isola::node::connect: " + where + " closed the connection after the handshake");
  // Authenticated: the socket becomes a BASP connection.
  set_nodelay_cloexec(fd);
  auto& sys = node_system();
  auto& mm = sys.middleman();
  auto basp = mm.named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  auto sp = mm.backend().new_scribe(guard.release());
  caf::strong_actor_ptr gw;
  std::string failure;
  {
    caf::scoped_actor self{sys};
    auto left = deadline - clock::now();
    if (left < std::chrono::seconds(1)) left = std::chrono::seconds(1);
    self->request(basp, std::chrono::duration_cast<std::chrono::milliseconds>(left), caf::connect_atom::value,
                  std::move(sp), port)
        .receive(
            [&](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>&) { gw = std::move(ptr); },
            [&](caf::error& e) { failure = sys.render(e); });
  }
  if (!gw)
    throw os_error(ECONNRESET, "isola::node::connect: " + where + ": the BASP handshake failed" +
                                   (failure.empty() ? std::string() : ": " + failure));
  auto l = std::make_shared<remote_link>();
  l->host = host;
  l->port = port;
  l->gateway = caf::actor_cast<caf::actor>(gw);
  {
    std::lock_guard lk(links_m);
    l->index = next_link++;
    links.emplace(l->index, l);
  }
  l->client = sys.spawn(client_fn, l);
  return node(l);
}

detail::remote_link& node::checked() const {
  if (!link_) throw value_error("isola::node: empty handle (default-constructed)");
  return *link_;
}
bool node::connected() const {
  auto& l = checked();
  std::lock_guard lk(l.m);
  return !l.lost;
}
const std::string& node::host() const { return checked().host; }
std::uint16_t node::port() const { return checked().port; }
std::uint64_t node::id() const { return checked().index; }

}  // namespace isola
