// isola/detail/deadline.hpp — when a blocking call gives up.
//
// Every blocking call in isola has three forms: untimed, with a duration, and
// non-blocking. Each form becomes one deadline, computed once when the call
// starts, so a wait that sleeps, wakes and sleeps again never extends its
// caller's timeout. Queues, rings, locks, events, conditions, barriers and
// process joins all take this one type; the futex layer under them
// (runtime/src/sys/futex.hpp) turns it into absolute CLOCK_MONOTONIC sleeps.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace isola::detail {

/// steady_clock is CLOCK_MONOTONIC on Linux: the clock FUTEX_WAIT_BITSET and
/// pthread_mutex_clocklock take absolute times on.
using wait_clock = std::chrono::steady_clock;

struct deadline {
  enum mode_t : std::uint8_t { block, timed, nowait };
  mode_t mode = block;
  wait_clock::time_point at{};

  /// The untimed form: waits as long as it takes.
  static deadline forever() noexcept { return {}; }
  /// The non-blocking form: succeeds now or not at all.
  static deadline now() noexcept { return {nowait, {}}; }
  /// An absolute time (already computed by a caller).
  static deadline at_time(wait_clock::time_point t) noexcept { return {timed, t}; }
  /// Python's timeout argument: throws value_error for a negative or NaN
  /// timeout; one too large for the clock (more than ~100 years) is forever.
  static deadline after(std::chrono::duration<double> timeout);
  /// std's try_lock_for semantics: a timeout <= 0 (or NaN) is a try.
  static deadline after_clamped(std::chrono::duration<double> timeout) noexcept;

  bool expired() const noexcept {
    if (mode == block) return false;
    if (mode == nowait) return true;
    return wait_clock::now() >= at;
  }
  /// None for forever; the clock's minimum for now (already passed).
  std::optional<wait_clock::time_point> until() const noexcept {
    if (mode == block) return std::nullopt;
    if (mode == nowait) return wait_clock::time_point::min();
    return at;
  }
  /// The earlier of the deadline and now + slice: every sleep is capped, so
  /// that a process killed between changing a shared word and waking its
  /// sleepers cannot leave them asleep for ever.
  wait_clock::time_point capped(wait_clock::duration slice) const noexcept {
    auto cap = wait_clock::now() + slice;
    return mode == timed && at < cap ? at : cap;
  }
};

}  // namespace isola::detail
