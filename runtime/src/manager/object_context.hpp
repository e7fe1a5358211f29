// What an object kind's op handlers work with: the request being answered,
// and the server's services — replies, parking a blocked call as a waiter
// with its deadline, running update()'s function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "isola/codec.hpp"
#include "isola/detail/manager_wire.hpp"
#include "manager/peers.hpp"
#include "manager/timers.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

/// One decoded request frame.
struct request {
  std::uint64_t peer = 0;  // who asks
  std::uint64_t id = 0;    // its request id, echoed in the reply
  std::uint8_t raw_op = 0;
  mgr_op op{};
  std::uint64_t object = 0;
  std::int64_t timeout_ns = -1;  // -1 forever, 0 now
  std::span<const std::byte> a, b;
  bool same_program = false;  // may send update() functions by address
};

inline std::span<const std::byte> text(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
inline std::string key(std::span<const std::byte> a) {
  return std::string(reinterpret_cast<const char*>(a.data()), a.size());
}
/// The element list format (see manager_wire.hpp): u64 count, then u32
/// length + bytes per element.
void put_u64(bytes& b, std::uint64_t v);
void put_element(bytes& b, std::span<const std::byte> e);

class object_context {
 public:
  object_context(peer_table& peers, deadlines& timers) : peers_(peers), timers_(timers) {}

  void reply(std::uint64_t peer, std::uint64_t req, mgr_status st,
             std::span<const std::byte> payload = {}) {
    peers_.reply(peer, req, st, payload);
  }
  void reply(const request& r, mgr_status st, std::span<const std::byte> payload = {}) {
    peers_.reply(r.peer, r.id, st, payload);
  }
  void reply_text(const request& r, mgr_status st, const std::string& s) { reply(r, st, text(s)); }
  template <class T>
  void reply_value(const request& r, const T& v) {
    scratch_.clear();
    encode_into(v, scratch_);
    reply(r, mgr_status::ok, scratch_);
  }
  /// For an op its kind does not know.
  void reply_unknown(const request& r) {
    reply_text(r, mgr_status::value_error, "unknown manager request " + std::to_string(r.raw_op));
  }
  /// A buffer for building one reply.
  bytes& scratch() noexcept { return scratch_; }

  /// Parks r in q until it can be answered; nullptr (after replying timeout)
  /// when r would not wait.
  waiter* park(waiter_queue& q, const request& r);
  /// The first waiter of q, its deadline cancelled.
  waiter take_front(waiter_queue& q);
  /// Drops peer_id's waiters from q (it died).
  void forget_waiters(waiter_queue& q, std::uint64_t peer_id);
  /// Answers timeout to waiter wid if it is in q (its deadline, already
  /// taken, passed); false if it is not there.
  bool expire(waiter_queue& q, std::uint64_t wid);

  /// Runs an update's trampoline on a copy of the value (current, or the
  /// spec's initial one); the result, or nothing after replying an error.
  std::optional<bytes> apply(const request& r, const bytes* current, bytes& slot);

  std::uint64_t owner_deaths = 0;  // locks released by a holder's death

 private:
  peer_table& peers_;
  deadlines& timers_;
  bytes scratch_;
};

}  // namespace isola::detail::mgr
