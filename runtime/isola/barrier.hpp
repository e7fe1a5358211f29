// isola/barrier.hpp — parties processes wait for each other (Python's
// multiprocessing.Barrier).
//
//   isola::barrier b(3);                          // Barrier(3)
//   isola::barrier b2(2, on_trip, 5s);            // Barrier(2, action, timeout=5)
//   isola::process p(worker, b);                  // a copy goes to the child
//   std::size_t i = b.wait();                     // 0 .. parties-1, in arrival order
//   b.wait(1s);                                   // broken_barrier_error if it times out
//
// This is the same-host form: the barrier's state lives in a memfd shared by
// every process that has it (forkserver and spawn children receive it as a
// process argument). The form that works between hosts is
// isola::distributed::barrier (a coordinator actor); see docs/decisions.md,
// "Sync and shared state".
//
// What every process sees:
// - wait() returns once parties callers (processes or threads) have called
//   it; each gets its arrival index, 0 for the first. The barrier then starts
//   over for the next round.
// - The action, if any, runs once per round in exactly one process: the last
//   to arrive, before anyone is released. If it throws, the barrier breaks:
//   that caller gets the exception, the others broken_barrier_error. Under
//   forkserver and spawn the action must be a function (or a captureless
//   lambda), because it must be callable in whichever process arrives last; a
//   closure works under fork only (a forkserver or spawn child given a
//   barrier with a closure fails to start with a clear decode_error).
// - Broken: a wait that times out (the timeout given to wait(), or else the
//   barrier's), abort(), reset() while others wait, an action that throws, or
//   a waiter that dies (SIGKILL) while others wait: every waiter then gets
//   broken_barrier_error (the one that timed out too), and so does every
//   later wait() until reset(). Never a hang: sleeping waiters check every
//   few milliseconds that the waiters before them are alive (each holds a
//   robust mutex while it waits, which the kernel releases when it dies), and
//   the last arrival checks all of them before it releases the round.
// - A party that dies before it reaches wait() cannot be told from one that
//   is late: give the barrier (or the wait) a timeout where that matters.
// - A timeout cannot end a wait while the action runs (it runs under the
//   barrier's lock, as in Python); a process killed in the action breaks the
//   barrier.
// - At most 65536 parties.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "isola/detail/function_address.hpp"
#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/sync_segment.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

namespace detail {
struct barrier_cell;
}

class barrier {
 public:
  static constexpr unsigned max_parties = 65536;

  /// A barrier for parties callers (value_error for 0 or more than
  /// max_parties), with a default timeout for wait() (none: wait forever).
  explicit barrier(unsigned parties, std::optional<duration> timeout = std::nullopt)
      : barrier(parties, nullptr, {}, timeout) {}
  /// The same with an action run by the last arrival of each round. A
  /// function pointer or captureless lambda works under every start method;
  /// another callable under fork only.
  template <class F>
  requires(std::is_invocable_v<F&> && !std::is_convertible_v<F, std::optional<duration>>)
      barrier(unsigned parties, F&& action, std::optional<duration> timeout = std::nullopt)
      : barrier(parties, portable(action), callable(std::forward<F>(action)), timeout) {}
  /// A barrier for one party: only for decoding into.
  barrier() : barrier(1) {}

  /// Waits for the round to fill; returns this caller's arrival index.
  /// broken_barrier_error if the barrier is or becomes broken (or the
  /// default timeout passes).
  std::size_t wait();
  /// The same, with this timeout instead of the barrier's.
  std::size_t wait(duration timeout);

  /// Breaks the current round (its waiters get broken_barrier_error) and
  /// makes the barrier usable again, empty.
  void reset();
  /// Breaks the barrier: current and later waits fail until reset().
  void abort();

  unsigned parties() const;
  /// How many wait in the current round.
  unsigned n_waiting() const;
  bool broken() const;

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    bool closure = !fn_ && action_;
    ar(segment().export_fd(), fn_ ? detail::function_address::of(fn_) : detail::function_address{},
       closure);
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    detail::function_address f;
    bool closure = false;
    ar(index, f, closure);
    // The action runs in this process: only a registered function will do.
    adopt(index, f.fn ? f.as<fn_t>("a barrier's action") : nullptr, closure);
  }

 private:
  using fn_t = void (*)();
  template <class F>
  static fn_t portable(const F& f) {
    if constexpr (std::is_convertible_v<const F&, fn_t>)
      return static_cast<fn_t>(f);
    else
      return nullptr;
  }
  template <class F>
  static std::function<void()> callable(F&& f) {
    if constexpr (std::is_convertible_v<F, fn_t>) {
      return {};
    } else {
      return std::function<void()>(std::forward<F>(f));
    }
  }
  barrier(unsigned parties, fn_t fn, std::function<void()> action, std::optional<duration> timeout);
  std::size_t wait_impl(const detail::deadline& d);
  void adopt(std::uint32_t index, fn_t fn, bool closure);
  void run_action();
  detail::sync_segment& segment() const;
  detail::barrier_cell& cell() const;

  std::shared_ptr<detail::sync_segment> seg_;
  detail::barrier_cell* cell_ = nullptr;
  fn_t fn_ = nullptr;             // a portable action
  std::function<void()> action_;  // any other action (fork only)
};

}  // namespace isola
