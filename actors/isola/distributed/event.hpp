// isola/distributed/event.hpp — an event whose state lives in a coordinator
// actor, so that processes on other nodes can share it.
//
//   auto ev = isola::distributed::event::create();        // coordinator here
//   auto ev = isola::distributed::event::create(node_b);  // ... or on node B
//   isola::spawn(waiter, ev);                             // a handle travels
//   ev.set();                                             // wakes every waiter
//
// The coordinator (an actor process: see detail/coordination.hpp) holds the
// flag; wait() is a request it answers when the flag is set, so a waiter
// costs nothing while it waits and works wherever the coordinator's handle
// does: this root, its actor processes (given the event as an argument or in
// a message), and the root of another node and its actors. Not a plain
// isola::process child: it has no way to reach actors (give it the
// same-host form). The same holds for condition, barrier and queue in this
// folder. isola::event is the same-host
// fast path (a futex in shared memory, ~10x faster); use this one when the
// parties are not all on one host.
//
// What every process sees: set() and clear() return after the coordinator
// applied them, so a later is_set() from anywhere agrees; every waiter
// waiting when set() happens wakes with true. A waiter that dies is
// forgotten. If the coordinator dies, every call fails with actor_exited.
#pragma once

#include "isola/actor.hpp"
#include "isola/detail/coordination.hpp"
#include "isola/node.hpp"

namespace isola::distributed {

class event : public detail::coord::client {
 public:
  /// An empty handle (what a message decodes into before it is filled).
  event() = default;

  /// Starts a coordinator on this host (root only) and returns its event.
  static event create(spawn_options opts = {}) {
    if (opts.name.empty()) opts.name = "isola.event";
    return event(spawn(opts, &detail::coord::event_coordinator));
  }
  /// Starts the coordinator on node `where` (its own process there).
  static event create(const node& where, spawn_options opts = {}) {
    if (opts.name.empty()) opts.name = "isola.event";
    return event(where.spawn(opts, &detail::coord::event_coordinator));
  }

  void set() const { c().request<void>(detail::coord::ev_set{}).get(); }
  void clear() const { c().request<void>(detail::coord::ev_clear{}).get(); }
  bool is_set() const { return c().request<bool>(detail::coord::ev_is_set{}).get(); }

  /// Waits until the flag is set.
  void wait() const {
    c().request<bool>(detail::coord::ev_wait{detail::coord::new_ticket()}).get();
  }
  /// Waits at most t; returns the flag (true: it was set).
  bool wait(duration t) const {
    const auto ticket = detail::coord::new_ticket();
    return detail::coord::ask<bool>(c(), detail::coord::ev_wait{ticket}, t,
                                    detail::coord::ev_forget{ticket});
  }
  /// is_set(), as the non-blocking form of wait().
  bool try_wait() const { return is_set(); }

  template <class Archive>
  void serialize(Archive& ar) {
    ar(coord_);
  }

 private:
  explicit event(actor a) : client(std::move(a)) {}
  const actor& c() const { return checked("event"); }
};

}  // namespace isola::distributed
