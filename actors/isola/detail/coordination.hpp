// isola/detail/coordination.hpp — the messages between the clients of
// isola/distributed/ and their coordinator actors (actors/src/distributed.cpp).
//
// Every wait is a request the coordinator answers later (a
// response_promise). A client whose own deadline passes cannot simply walk
// away: the coordinator may have answered meanwhile (granted the lock, handed
// over an item, released the barrier). So each waiting request carries a
// ticket, and the client follows a timeout with a second, untimed request
// naming the ticket: the coordinator either withdraws the wait or repeats
// the answer it gave. Nothing is lost and nothing is granted twice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "isola/actor.hpp"
#include "isola/behavior.hpp"
#include "isola/codec.hpp"
#include "isola/detail/function_address.hpp"
#include "isola/error.hpp"

namespace isola::detail::coord {

/// A number no other wait of any process (of any node) uses: a random
/// per-process base plus a counter.
std::uint64_t new_ticket();
/// This thread's identity as a lock owner (random per process and thread).
std::uint64_t caller_token();

/// Asks the coordinator with msg, waiting at most t (none: untimed). If t
/// passes, asks again, untimed, with `again` (which names msg's ticket), and
/// returns that answer instead: see the top of this file.
template <class R, class M, class Again>
R ask(const actor& coordinator, const M& msg, std::optional<duration> t, const Again& again) {
  if (!t) return coordinator.request<R>(msg).get();
  try {
    return coordinator.request<R>(msg, *t).get();
  } catch (const timeout_error&) {
    return coordinator.request<R>(again).get();
  }
}

/// What each client (event, condition, barrier, queue) holds: its
/// coordinator's handle, empty until create() or decoding fills it.
class client {
 public:
  /// The coordinator actor (monitor it, stop it).
  const actor& coordinator() const noexcept { return coord_; }
  explicit operator bool() const noexcept { return static_cast<bool>(coord_); }

 protected:
  client() = default;
  explicit client(actor a) : coord_(std::move(a)) {}
  /// The handle, or value_error for an empty one; kind names the client.
  const actor& checked(const char* kind) const {
    if (!coord_)
      throw value_error(std::string("isola::distributed::") + kind + ": empty handle (use " + kind +
                        "::create())");
    return coord_;
  }

  actor coord_;
};

// Status codes in replies (handlers never throw: a throwing handler ends the
// coordinator).
enum status : std::int32_t { ok = 0, not_now = 1, not_owner = 2, broken = 3, run_action = 4 };

#define ISOLA_COORD_MSG0(name) \
  struct name {                \
    template <class A>         \
    void serialize(A&) {}      \
  };

// -- event
ISOLA_COORD_MSG0(ev_set)
ISOLA_COORD_MSG0(ev_clear)
ISOLA_COORD_MSG0(ev_is_set)
struct ev_wait {
  std::uint64_t ticket = 0;
  template <class A>
  void serialize(A& ar) {
    ar(ticket);
  }
};
struct ev_forget {
  std::uint64_t ticket = 0;
  template <class A>
  void serialize(A& ar) {
    ar(ticket);
  }
};

// -- condition (and its lock)
struct cv_acquire {
  std::uint64_t owner = 0, ticket = 0;
  bool blocking = true;
  template <class A>
  void serialize(A& ar) {
    ar(owner, ticket, blocking);
  }
};
struct cv_release {
  std::uint64_t owner = 0;
  template <class A>
  void serialize(A& ar) {
    ar(owner);
  }
};
struct cv_wait {
  std::uint64_t owner = 0, ticket = 0;
  template <class A>
  void serialize(A& ar) {
    ar(owner, ticket);
  }
};
/// The client's acquire or wait timed out: withdraw it (not_now), or say it
/// was granted meanwhile (ok). A withdrawn wait still re-acquires the lock
/// before this is answered, as Python's wait(timeout) does.
struct cv_timed_out {
  std::uint64_t ticket = 0;
  bool was_wait = false;
  template <class A>
  void serialize(A& ar) {
    ar(ticket, was_wait);
  }
};
struct cv_notify {
  std::uint64_t owner = 0;
  std::int64_t n = 1;  // < 0: all
  template <class A>
  void serialize(A& ar) {
    ar(owner, n);
  }
};

// -- barrier
struct br_wait {
  std::uint64_t ticket = 0;
  template <class A>
  void serialize(A& ar) {
    ar(ticket);
  }
};
struct br_result {
  std::int32_t st = ok;  // ok, broken, run_action
  std::int32_t index = 0;
  template <class A>
  void serialize(A& ar) {
    ar(st, index);
  }
};
struct br_action_done {
  bool ok = true;
  template <class A>
  void serialize(A& ar) {
    ar(ok);
  }
};
struct br_timed_out {
  std::uint64_t ticket = 0;
  template <class A>
  void serialize(A& ar) {
    ar(ticket);
  }
};
ISOLA_COORD_MSG0(br_reset)
ISOLA_COORD_MSG0(br_abort)
ISOLA_COORD_MSG0(br_query)
struct br_state {
  std::int32_t parties = 0, n_waiting = 0;
  bool broken = false;
  template <class A>
  void serialize(A& ar) {
    ar(parties, n_waiting, broken);
  }
};

// -- queue
// `timed`: the client may give up before the answer arrives, so the
// coordinator remembers what it answered (the item handed over, the put
// accepted) for the follow-up that names the ticket, even when it answered
// at once: the client's deadline can pass while the request still waits in
// the coordinator's mailbox.
struct q_put {
  std::uint64_t ticket = 0;
  bool blocking = true;
  bool timed = false;
  bytes item;
  template <class A>
  void serialize(A& ar) {
    ar(ticket, blocking, timed, item);
  }
};
struct q_get {
  std::uint64_t ticket = 0;
  bool blocking = true;
  bool timed = false;
  template <class A>
  void serialize(A& ar) {
    ar(ticket, blocking, timed);
  }
};
struct q_item {
  std::int32_t st = ok;  // ok (item), not_now (empty)
  bytes item;
  template <class A>
  void serialize(A& ar) {
    ar(st, item);
  }
};
struct q_put_timed_out {
  std::uint64_t ticket = 0;
  template <class A>
  void serialize(A& ar) {
    ar(ticket);
  }
};
struct q_get_timed_out {
  std::uint64_t ticket = 0;
  template <class A>
  void serialize(A& ar) {
    ar(ticket);
  }
};
ISOLA_COORD_MSG0(q_size)
ISOLA_COORD_MSG0(q_maxsize)

#undef ISOLA_COORD_MSG0

// The coordinators' behaviors (spawned by the clients' create()).
behavior event_coordinator();
behavior condition_coordinator();
behavior barrier_coordinator(std::int32_t parties);
behavior queue_coordinator(std::int64_t maxsize);

}  // namespace isola::detail::coord
