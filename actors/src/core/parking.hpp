// Parking: envelopes that found their target's mailbox full, held for the
// root's threads that deliver on behalf of others (the gateway, for other
// nodes; the registry, for down and exit notices and forwarded answers).
// One of those threads serves many mailboxes, so it must never wait on one:
// a stopped or stuck actor would stall everyone else's traffic. Instead an
// envelope that does not fit at once is parked, behind any already parked for
// the same target (so the order of arrival is the order of delivery), and
// retried later by the owner (retry()). Parking is bounded, per target and in
// bytes overall; an envelope that cannot be parked, whose deadline passes, or
// whose target ends is dropped and its owner told why (on_drop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>

#include "core/mailbox.hpp"

namespace isola::detail {

class parking {
 public:
  /// Why a parked (or refused) envelope was dropped.
  enum class drop_reason { full, timeout, dead };
  using on_drop_fn = std::function<void(drop_reason)>;

  struct limits {
    std::size_t per_target = 256;                // envelopes parked for one mailbox
    std::size_t total_bytes = std::size_t{64} << 20;  // payloads, all targets together
  };

  explicit parking(limits l) : limits_(l) {}
  parking(const parking&) = delete;
  parking& operator=(const parking&) = delete;

  enum class result { put, parked, dropped };
  /// Puts the envelope into target's mailbox at once if it has room and
  /// nothing is parked for it; otherwise parks a copy until `until`
  /// (nullopt: until it fits or the target ends). dropped: no room to park
  /// it (on_drop was called with full, before this returns). Throws what the
  /// ring's put throws (value_error for a message larger than the mailbox).
  result offer(const std::shared_ptr<peer>& target, const envelope_header& h,
               std::span<const std::byte> payload, std::optional<time_point> until,
               on_drop_fn on_drop);

  /// Tries the parked envelopes again, in order per target, and drops those
  /// whose deadline passed or whose target ended. Never waits for room.
  /// Returns whether any are still parked (then call it again soon).
  bool retry();

  std::size_t parked() const;        // envelopes
  std::size_t parked_bytes() const;  // their payloads

 private:
  struct parked_env {
    envelope_header h;
    bytes payload;
    std::optional<time_point> until;
    on_drop_fn on_drop;
  };
  struct lane {
    std::shared_ptr<peer> target;
    std::deque<parked_env> q;
  };
  struct dropping {
    on_drop_fn fn;
    drop_reason why;
  };
  static void tell(std::vector<dropping>& out) noexcept;

  const limits limits_;
  mutable std::mutex m_;
  std::unordered_map<std::uint64_t, lane> lanes_;  // by target id; never empty lanes
  std::size_t count_ = 0, bytes_ = 0;
};

}  // namespace isola::detail
