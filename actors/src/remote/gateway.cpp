// The gateway: serves the requests of the nodes connected to this root
// (send, request, monitor, alive, spawn). One per listening root: a detached
// CAF actor, started by the first node::listen.
//
// It puts envelopes straight into the mailboxes of local actors, with the
// relay's inbox as sender; the relay (a root thread) reads the replies and
// down notices and sends them back over CAF, and sends back the requests that
// failed. What the other node sees: every request and monitor gets exactly
// one answer (a reply, an error with the failure's type and text, or a down
// notice), unless the connection is lost first, which its client reports; a
// send to an actor that has ended is dropped and counted, as locally.
//
// The gateway is one thread for every actor of this node, so it never waits
// for room in a mailbox: an envelope for a full one is parked (core/
// parking.hpp; at most gateway_parking_per_target per mailbox, in order) and
// retried on a timer while any are parked. A request that finds the parking
// full fails with queue_full; one whose deadline (it travels with the
// request) passes fails with timeout_error, and its record here is freed
// then; a send that cannot be parked is dropped and counted. So a stopped or
// stuck actor costs its own senders, never the traffic to the others.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/mailbox.hpp"
#include "core/parking.hpp"
#include "isola/detail/manager_wire.hpp"
#include "isola/logging.hpp"
#include "isola/node.hpp"
#include "remote/gateway.hpp"
#include "remote/node_internal.hpp"
#include "root/registry.hpp"

namespace isola {
namespace detail {

using namespace node_internal;

namespace {

using is_retry_atom = caf::atom_constant<caf::atom("isola_rtr")>;

struct gateway_core {
  std::shared_ptr<inbox> relay;  // the relay thread's inbox
  struct inflight {
    std::shared_ptr<future_state<void>> st;
    caf::actor requester;
    std::uint64_t ref;
  };
  std::mutex m;
  std::list<inflight> flights;
  std::atomic<std::size_t> in_flight{0};  // flights.size(), readable without m
  std::unordered_map<std::uint64_t, std::shared_ptr<peer>> peers;  // gateway thread only
  parking parked{{gateway_parking_per_target, std::size_t{64} << 20}};
  // Gateway thread only: whether a retry is scheduled, and its interval
  // (short while parked envelopes get in, longer while nothing moves).
  bool retry_scheduled = false;
  std::chrono::milliseconds retry_every{1};
};

// A failure crosses to the other node as error_info's fields (core/mailbox.cpp
// classifies it, and rebuilds the same exception type on the other side).
void send_error(const caf::actor& to, std::uint64_t ref, std::exception_ptr e) {
  error_info ei = describe_failure(e);
  caf::anon_send(to, is_err_atom::value, ref, static_cast<std::int32_t>(ei.what),
                 std::move(ei.type_name), std::move(ei.text), static_cast<std::int32_t>(ei.pid),
                 std::move(ei.process_name));
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
          bool done = false, error = false;
          {
            // Released before the erase, which may drop the last reference
            // to st and with it the mutex held here.
            std::lock_guard sl(it->st->m);
            done = it->st->done;
            error = it->st->error != nullptr;
          }
          if (done) {
            if (error) failed.push_back(*it);
            it = g->flights.erase(it);
            g->in_flight.fetch_sub(1, std::memory_order_relaxed);
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

void schedule_retry(caf::event_based_actor* self, gateway_core& g) {
  if (g.retry_scheduled) return;
  g.retry_scheduled = true;
  g.retry_every = std::chrono::milliseconds(1);
  self->delayed_send(self, g.retry_every, is_retry_atom::value);
}

/// Puts an envelope into p's mailbox, or parks it (never waits for room).
/// dropped: the parking for p is full (on_drop was told).
parking::result gateway_put(caf::event_based_actor* self, gateway_core& g,
                            const std::shared_ptr<peer>& p, env_kind kind, std::uint64_t ref,
                            std::uint64_t tag, std::span<const std::byte> payload,
                            std::optional<time_point> until, parking::on_drop_fn on_drop) {
  envelope_header h;
  h.kind = static_cast<std::uint8_t>(kind);
  h.sender = g.relay->id();
  h.ref = ref;
  h.tag = tag;
  auto r = g.parked.offer(p, h, payload, until, std::move(on_drop));
  if (r == parking::result::parked) schedule_retry(self, g);
  return r;
}

actor do_spawn(const std::string& identity, const std::string& blob) {
  const auto& mine = program_identity();
  if (identity.size() != mine.size() || std::memcmp(identity.data(), mine.data(), mine.size()) != 0)
    throw value_error(
        "isola::node::spawn: the node runs another program (or another build of it); a remote "
        "spawn sends make_behavior as an address, so both nodes must run the same executable");
  return spawn_from_blob(as_bytes_of(blob));
}

/// A request from another node: its reply (or failure) goes back to who,
/// tagged with the requester's ref. timeout_ns: the time the requester
/// still waits (-1: no deadline).
void serve_request(caf::event_based_actor* self, gateway_core* g, const caf::actor& who,
                   std::uint64_t ref, std::uint64_t id, std::uint64_t tag,
                   const std::string& payload, std::int64_t timeout_ns) {
  try {
    auto p = gateway_peer(*g, id);
    if (p->dead()) throw actor_exited(p->reason().to_string());
    std::optional<time_point> until;
    if (timeout_ns >= 0) until = clock::now() + std::chrono::nanoseconds(timeout_ns);
    auto st = std::make_shared<future_state<void>>();
    std::weak_ptr<future_state<void>> w = st;
    reply_fn on_reply = [who, ref, w](std::uint64_t tag, std::span<const std::byte> b) {
      caf::anon_send(who, is_ok_atom::value, ref, tag, as_string(b));
      if (auto s = w.lock()) s->succeed(std::monostate{});
    };
    // The relay fails the record when the deadline passes or the target
    // ends, whether the envelope is in the mailbox or still parked: then it
    // is freed, and the requester told.
    std::uint64_t r = g->relay->add_pending({p, st, std::move(on_reply), until, false});
    // Listed before the put, as the reply may come at once (and the relay
    // would then have to wait for the list).
    std::list<gateway_core::inflight>::iterator flight;
    {
      std::lock_guard lk(g->m);
      flight = g->flights.insert(g->flights.end(), {st, who, ref});
      g->in_flight.fetch_add(1, std::memory_order_relaxed);
    }
    parking::result put = parking::result::dropped;
    std::exception_ptr failed;
    try {
      put = gateway_put(self, *g, p, env_kind::request, r, tag, as_bytes_of(payload), until, {});
    } catch (...) {
      failed = std::current_exception();
    }
    if (put == parking::result::dropped && !failed)
      failed = std::make_exception_ptr(
          queue_full("the mailbox of actor " + std::to_string(id) +
                     " is full, and so are the messages waiting for room in it"));
    if (failed) {
      // Not delivered: no reply can come, so the record goes now and the
      // requester hears at once (unless the relay already answered it).
      g->relay->drop_pending(r);
      bool mine = false;
      {
        std::lock_guard lk(g->m);
        std::lock_guard sl(st->m);
        if (!st->done) {
          g->flights.erase(flight);
          g->in_flight.fetch_sub(1, std::memory_order_relaxed);
          mine = true;
        }
      }
      if (mine) send_error(who, ref, failed);
    }
  } catch (...) {
    send_error(who, ref, std::current_exception());
  }
}

void count_dropped(parking::drop_reason) noexcept {
  root_context().dropped.fetch_add(1, std::memory_order_relaxed);
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
          gateway_put(self, *g, p, k, 0, tag, as_bytes_of(payload), std::nullopt, &count_dropped);
        } catch (const std::exception& ex) {
          get_logger().warning(std::string("isola: a message from another node was dropped: ") +
                               ex.what());
        }
      },
      [self, g](is_req_atom, std::uint64_t ref, std::uint64_t id, std::uint64_t tag,
                const std::string& payload, std::int64_t timeout_ns) {
        serve_request(self, g, caf::actor_cast<caf::actor>(self->current_sender()), ref, id, tag,
                      payload, timeout_ns);
      },
      [self, g](is_retry_atom) {
        std::size_t before = g->parked.parked();
        if (!g->parked.retry()) {
          g->retry_scheduled = false;
          return;
        }
        // Something still waits: soon again if some got in, else back off
        // (a stopped actor's mailbox may stay full for long).
        if (g->parked.parked() < before)
          g->retry_every = std::chrono::milliseconds(1);
        else
          g->retry_every = std::min(g->retry_every * 2, std::chrono::milliseconds(16));
        self->delayed_send(self, g->retry_every, is_retry_atom::value);
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
        } catch (...) {}
        caf::anon_send(who, is_ok_atom::value, ref, type_tag<bool>(), as_string(encode(alive)));
      },
      [self](is_spawn_atom, std::uint64_t ref, const std::string& identity,
             const std::string& blob) {
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

gateway_core* the_gateway = nullptr;  // lives until exit
caf::actor* the_gateway_actor = nullptr;
std::atomic<gateway_core*> the_gateway_ready{nullptr};  // for gateway_table_sizes

/// The gateway and its relay thread (once per root).
gateway_core& gateway() {
  if (the_gateway) return *the_gateway;
  auto* g = new gateway_core;
  // Shared with the relay thread: it may still be inside notify_all() when
  // this function has returned (TSan saw the stack's mutex reused).
  struct handshake {
    std::mutex m;
    std::condition_variable cv;
  };
  auto hs = std::make_shared<handshake>();
  std::thread([g, hs] {
    auto ib = root_context().my_inbox();
    {
      std::lock_guard lk(hs->m);
      g->relay = ib;
      hs->cv.notify_all();
    }
    relay_loop(g);
  }).detach();
  {
    std::unique_lock lk(hs->m);
    hs->cv.wait(lk, [&] { return g->relay != nullptr; });
  }
  the_gateway_actor = new caf::actor(node_system().spawn<caf::detached>(gateway_fn, g));
  the_gateway = g;
  the_gateway_ready.store(g, std::memory_order_release);
  return *g;
}

}  // namespace

gateway_tables gateway_table_sizes() {
  gateway_tables t;
  if (gateway_core* g = the_gateway_ready.load(std::memory_order_acquire)) {
    t.in_flight = g->in_flight.load(std::memory_order_relaxed);
    t.parked = g->parked.parked();
    t.parked_bytes = g->parked.parked_bytes();
  }
  return t;
}

const caf::actor& node_internal::gateway_actor() {
  gateway();
  return *the_gateway_actor;
}

}  // namespace detail
}  // namespace isola
