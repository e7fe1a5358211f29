// The client side of isola::node: node::connect, and what handles of another
// node's actors do (send, request, monitor, alive, spawn), in the root and,
// through the root, in actor processes.
//
// connect authenticates on a blocking socket and gives it to the BASP broker
// as the middleman actor gives it a fresh connection (connect_atom with the
// scribe); the reply is the gateway's proxy. A client actor per connection
// completes the futures, and fails them all when CAF reports the gateway
// down (the connection closed or timed out: heartbeats).
//
// What the callers see: when the connection is lost every pending request
// fails with actor_exited and every monitor gets its down notice, and so do
// later ones at once; a send over a lost connection is dropped and counted,
// as a send to an ended actor; handles that came in a reply name actors of
// the node they came from. An actor process forwards each operation to its
// root (the root's side is forward_for_actor).
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/network/default_multiplexer.hpp>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/mailbox.hpp"
#include "isola/detail/manager_wire.hpp"
#include "isola/logging.hpp"
#include "isola/node.hpp"
#include "remote/gateway.hpp"
#include "remote/node_internal.hpp"
#include "remote/tls_scribe.hpp"
#include "root/registry.hpp"
#include "sys/net.hpp"
#include "sys/tls.hpp"

namespace isola {
namespace detail {

using namespace node_internal;

namespace {

std::exception_ptr rebuild_error(std::int32_t k, const std::string& type_name,
                                 const std::string& text, std::int32_t pid,
                                 const std::string& proc) {
  error_info ei{error_info::kind::other, type_name, text, pid, proc};
  if (k >= 0 && k <= static_cast<std::int32_t>(error_info::kind::other))
    ei.what = static_cast<error_info::kind>(k);
  return to_exception(ei);
}

}  // namespace

void forget_link(std::uint64_t index);

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
    forget_link(index);
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

// The links that are up, by index. A lost link leaves the table (a program
// that connects and loses nodes for ever must not grow it); handles that
// still name it get a stand-in that says it was lost (link_of).
std::mutex links_m;
std::unordered_map<std::uint64_t, std::shared_ptr<remote_link>> links;
std::uint64_t next_link = 1;

std::shared_ptr<remote_link> link_of(std::uint64_t index) {
  if (in_actor_process())
    throw value_error(
        "isola: this operation on another node works only in the root process that connected "
        "to it (an actor process can send, request, monitor and ask alive(); node::spawn and "
        "the rest belong to the root)");
  std::lock_guard lk(links_m);
  auto it = links.find(index);
  if (it != links.end()) return it->second;
  if (index == 0 || index >= next_link)
    throw value_error("isola: no connection to another node numbered " + std::to_string(index));
  auto gone = std::make_shared<remote_link>();
  gone->index = index;
  gone->lost = true;
  gone->lost_why = "the connection to another node numbered " + std::to_string(index) + " was lost";
  return gone;
}

}  // namespace

void forget_link(std::uint64_t index) {
  std::lock_guard lk(links_m);
  links.erase(index);
}

std::size_t linked_node_count() {
  std::lock_guard lk(links_m);
  return links.size();
}

namespace {

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
          p->st->fail(
              std::make_exception_ptr(timeout_error("no reply within the request's timeout")));
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

// ---------------------------------------------------------------- entry points

// In an actor process each entry point below goes through the root
// (forward_remote in core/mailbox.cpp; the root's side is forward_for_actor).
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
  // The deadline travels too (as the time left; -1: none), so that the
  // other node stops waiting for the reply, and frees what it holds for the
  // request, when we do.
  std::int64_t left_ns = -1;
  if (deadline) {
    auto dt = *deadline - clock::now();
    if (dt < clock::duration::zero()) dt = clock::duration::zero();
    left_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count();
  }
  caf::send_as(l->client, l->gateway, is_req_atom::value, ref, target, tag, as_string(payload),
               left_ns);
  if (deadline)
    caf::delayed_anon_send(l->client, std::chrono::nanoseconds(left_ns), is_timeout_atom::value,
                           ref);
}

void remote_monitor(std::uint64_t node, std::uint64_t target,
                    const std::shared_ptr<future_core>& st, reply_fn on_down) {
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
    } catch (...) {}
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
      case rop::alive: break;
    }
    auto st = std::make_shared<forward_state>();
    st->pass_on = fail_back;
    if (rq.rop == rop::monitor) {
      // A monitor that cannot be set up still ends in a down notice (what
      // actor::monitor's future and a behavior's down handler both expect).
      st->pass_on = [who, ref, node = rq.node, target = rq.id](const std::exception_ptr& e) {
        down d{actor(target, 0, {}, node),
               {exit_reason::kind::unknown, 0, describe_failure(e).text}};
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

actor remote_spawn(remote_link& lr, const spawn_options& o, function_address entry,
                   function_address fn, bytes args) {
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
  if (ref)
    caf::send_as(l->client, l->gateway, is_spawn_atom::value, ref, identity, as_string(blob));
  return future<actor>(st).get(duration(60));
}

namespace {

/// A TCP connection to host:port, within the deadline.
int dial(const std::string& host, std::uint16_t port, const std::string& where,
         clock::time_point deadline) {
  auto c = detail::net::tcp_connect(host, port, detail::deadline::at_time(deadline), true);
  if (c) return c.fd.release();
  if (c.err == ETIMEDOUT)
    throw timeout_error("isola::node::connect: " + where + " did not answer in time");
  if (c.err == EINVAL) throw os_error(EINVAL, "isola::node::connect: " + c.what);
  throw os_error(c.err, "isola::node::connect: " + where + ": " + std::strerror(c.err));
}

/// The handshake (sys/handshake.hpp): their challenge, our proof and
/// challenge, their verdict and proof, our confirmation. Returns ok, or busy
/// (the node is at its cap of pending handshakes: try again). Throws where
/// the peer is no isola node, or holds another key.
handshake::outcome prove_key(int fd, const std::string& where, std::string_view authkey, bool tls,
                             clock::time_point deadline, handshake::transcript& t) {
  const std::string pre = "isola::node::connect: " + where;
  switch (auto o = handshake::run_client(fd, node_spec(tls), authkey, {},
                                         detail::deadline::at_time(deadline), &t)) {
    case handshake::outcome::ok:
    case handshake::outcome::busy: return o;
    case handshake::outcome::other_mode:
      throw os_error(EPROTO, tls ? pre +
                                       " does not use TLS (it listens without "
                                       "listen_options::tls), and this connect asked for it"
                                 : pre +
                                       " requires TLS (it listens with listen_options::tls): "
                                       "connect with connect_options::tls");
    case handshake::outcome::timed_out:
      throw timeout_error("isola::node::connect: the handshake did not finish in time");
    case handshake::outcome::closed:
      throw os_error(ECONNRESET, pre + " closed the connection during the handshake");
    case handshake::outcome::not_ours:
      throw authentication_error("isola::node::connect: what answers at " + where +
                                 " is not an isola node");
    case handshake::outcome::refused:
      throw authentication_error(
          pre +
          " refused the authentication key (the digest did not match): use the "
          "key the node listens with");
    case handshake::outcome::forged:
      throw authentication_error(
          pre +
          " did not prove it knows the authentication key: the connection was "
          "dropped");
  }
  throw os_error(EPROTO, pre + ": the handshake ended oddly");
}

/// join_basp lost CAF's connect/heartbeat race (see there): connect again.
struct basp_tick_race {};

/// Authenticated: the socket becomes a BASP connection; the gateway's proxy.
caf::strong_actor_ptr join_basp(unique_fd guard, std::shared_ptr<tls_session> tls,
                                std::uint16_t port, const std::string& where,
                                clock::time_point deadline) {
  int fd = guard.get();
  set_nodelay_cloexec(fd);
  // CAF 0.17.6's basp_broker creates an outgoing connection's context with
  // last_seen at the clock's epoch and sets it only when the first bytes
  // arrive, so a heartbeat tick between our connect_atom and the server's
  // handshake closes the link as connection_timeout. The server writes its
  // BASP handshake as soon as its gatekeeper hands the socket over: waiting
  // for those bytes here shrinks that window from a round trip to one turn
  // of the multiplexer, and node::connect retries the rare loss.
  if (!tls || !tls->has_pending()) {
    pollfd p{fd, POLLIN, 0};
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      if (left.count() <= 0) break;  // the request below reports it
      int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
      if (rc != 0 && !(rc < 0 && errno == EINTR)) break;
    }
  }
  auto& sys = node_system();
  auto& mm = sys.middleman();
  auto basp = mm.named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  auto sp =
      tls ? make_tls_scribe(dynamic_cast<caf::io::network::default_multiplexer&>(mm.backend()),
                            guard.release(), std::move(tls))
          : mm.backend().new_scribe(guard.release());
  caf::strong_actor_ptr gw;
  std::string failure;
  bool tick_race = false;
  {
    caf::scoped_actor self{sys};
    auto left = deadline - clock::now();
    if (left < std::chrono::seconds(1)) left = std::chrono::seconds(1);
    self->request(basp, std::chrono::duration_cast<std::chrono::milliseconds>(left),
                  caf::connect_atom::value, std::move(sp), port)
        .receive([&](caf::node_id&, caf::strong_actor_ptr& ptr,
                     std::set<std::string>&) { gw = std::move(ptr); },
                 [&](caf::error& e) {
                   failure = sys.render(e);
                   tick_race = e == caf::sec::connection_timeout;
                 });
  }
  if (!gw && tick_race) throw basp_tick_race{};
  if (!gw)
    throw os_error(ECONNRESET, "isola::node::connect: " + where + ": the BASP handshake failed" +
                                   (failure.empty() ? std::string() : ": " + failure));
  return gw;
}

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------- isola::node

node node::connect(const std::string& host, std::uint16_t port, std::string_view authkey,
                   duration timeout) {
  return connect(host, port, authkey, connect_options{}, timeout);
}

node node::connect(const std::string& host, std::uint16_t port, std::string_view authkey,
                   const connect_options& opts, duration timeout) {
  using namespace detail;
  if (in_actor_process()) throw value_error("isola::node::connect: only the root process connects");
  if (authkey.empty()) throw value_error("isola::node::connect: the authentication key is empty");
  auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(timeout);
  std::string where = host + ":" + std::to_string(port);
  caf::strong_actor_ptr gw;
  for (int attempt = 0;; ++attempt) {
    unique_fd guard;
    handshake::transcript transcript;
    // A node at its cap of pending handshakes says busy: try again, backing
    // off, until the deadline (a flood delays a real node, never fails it as a
    // wrong key).
    for (auto pause = std::chrono::milliseconds(5);;
         pause = std::min(pause * 2, std::chrono::milliseconds(200))) {
      guard.reset(dial(host, port, where, deadline));
      if (prove_key(guard.get(), where, authkey, opts.tls, deadline, transcript) ==
          handshake::outcome::ok)
        break;
      guard.reset();
      const auto left = deadline - clock::now();
      if (left <= clock::duration::zero())
        throw timeout_error("isola::node::connect: " + where +
                            " stayed busy until the deadline (too many connections wait to "
                            "authenticate there; it refused this one each time)");
      std::this_thread::sleep_for(std::min<clock::duration>(pause, left));
    }
    std::shared_ptr<tls_session> tls;
    if (opts.tls) {
      // TLS keyed by the handshake just done; the deadline covers both.
      tls = std::make_shared<tls_session>(
          guard.get(), tls_session::role::client,
          derive_tls_psk(authkey, node_tls_handshake.magic, transcript.server, transcript.client));
      tls->handshake(detail::deadline::at_time(deadline), "isola::node::connect: " + where);
    }
    try {
      gw = join_basp(std::move(guard), std::move(tls), port, where, deadline);
      break;
    } catch (const basp_tick_race&) {
      if (attempt >= 3 || clock::now() >= deadline)
        throw os_error(ECONNRESET,
                       "isola::node::connect: " + where +
                           ": the BASP handshake failed: system_error(connection_timeout)");
    }
  }
  auto& sys = node_system();
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
