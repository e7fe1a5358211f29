// isola/distributed/barrier.hpp — a barrier held by a coordinator actor, so
// that parties on other nodes can meet at it.
//
//   auto b = isola::distributed::barrier::create(3, &on_all_arrived, 5s);
//   isola::spawn(party, b);  isola::spawn(party, b);
//   int i = b.wait();                     // 0 .. parties-1, in arrival order
//
// The coordinator counts the arrivals; wait() is a request it answers when
// the last party arrives. The last party's process runs the action (a
// function pointer: every node runs the same program) before the others are
// released, so the action runs in exactly one process per cycle.
//
// What every party sees, as with Python's Barrier: a wait that times out, a
// party that dies while waiting, an action that throws, abort() or reset()
// -> every other waiter gets broken_barrier_error (never a hang), and later
// waits do too until reset(). If the coordinator dies, waits fail with
// actor_exited. isola::barrier is the same-host fast path.
#pragma once

#include <optional>

#include "isola/actor.hpp"
#include "isola/detail/coordination.hpp"
#include "isola/error.hpp"
#include "isola/node.hpp"

namespace isola::distributed {

class barrier : public detail::coord::client {
 public:
  using action_fn = void (*)();

  barrier() = default;

  /// Starts a coordinator on this host (root only). parties >= 1; action
  /// may be null; timeout is the default for wait() (none: wait forever).
  static barrier create(int parties, action_fn action = nullptr,
                        std::optional<duration> timeout = {}, spawn_options opts = {}) {
    check_args(parties, timeout);
    if (opts.name.empty()) opts.name = "isola.barrier";
    return barrier(spawn(opts, &detail::coord::barrier_coordinator, std::int32_t{parties}), parties,
                   action, timeout);
  }
  /// Starts the coordinator on node `where`.
  static barrier create(const node& where, int parties, action_fn action = nullptr,
                        std::optional<duration> timeout = {}, spawn_options opts = {}) {
    check_args(parties, timeout);
    if (opts.name.empty()) opts.name = "isola.barrier";
    return barrier(where.spawn(opts, &detail::coord::barrier_coordinator, std::int32_t{parties}),
                   parties, action, timeout);
  }

  /// Waits for the other parties (at most the default timeout); returns this
  /// party's arrival index.
  int wait() const { return wait_impl(timeout_); }
  /// As wait(), at most t.
  int wait(duration t) const {
    if (!(t.count() >= 0)) throw value_error("timeout must be a non-negative number of seconds");
    return wait_impl(t);
  }

  /// Breaks the barrier for the current waiters and makes it usable again.
  void reset() const { c().request<void>(detail::coord::br_reset{}).get(); }
  /// Breaks it until reset().
  void abort() const { c().request<void>(detail::coord::br_abort{}).get(); }
  int parties() const noexcept { return parties_; }
  int n_waiting() const {
    return c().request<detail::coord::br_state>(detail::coord::br_query{}).get().n_waiting;
  }
  bool broken() const {
    return c().request<detail::coord::br_state>(detail::coord::br_query{}).get().broken;
  }

  template <class Archive>
  void save(Archive& ar) const {
    ar(coord_, parties_,
       action_ ? detail::function_address::of(action_) : detail::function_address{},
       timeout_ ? timeout_->count() : -1.0);
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::function_address fa;
    double t = -1;
    ar(coord_, parties_, fa, t);
    // The action runs in this process: only a registered function will do.
    action_ = fa.fn ? fa.as<action_fn>("a barrier's action") : nullptr;
    timeout_.reset();
    if (t >= 0) timeout_ = duration(t);
  }

 private:
  barrier(actor a, int parties, action_fn action, std::optional<duration> timeout)
      : client(std::move(a)), parties_(parties), action_(action), timeout_(timeout) {}
  static void check_args(int parties, std::optional<duration> timeout) {
    if (parties < 1) throw value_error("isola::distributed::barrier: parties must be at least 1");
    if (timeout && !(timeout->count() >= 0))
      throw value_error(
          "isola::distributed::barrier: timeout must be a non-negative number of seconds");
  }
  const actor& c() const { return checked("barrier"); }
  int wait_impl(std::optional<duration> t) const {
    namespace co = detail::coord;
    const auto ticket = co::new_ticket();
    const auto r = co::ask<co::br_result>(c(), co::br_wait{ticket}, t, co::br_timed_out{ticket});
    if (r.st == co::broken)
      throw broken_barrier_error("isola::distributed::barrier: the barrier is broken");
    if (r.st == co::run_action) {
      if (action_) {
        try {
          action_();
        } catch (...) {
          c().send(co::br_action_done{false});
          throw;
        }
      }
      c().send(co::br_action_done{true});
    }
    return r.index;
  }

  int parties_ = 0;
  action_fn action_ = nullptr;
  std::optional<duration> timeout_;
};

}  // namespace isola::distributed
