// isola/response_promise.hpp — answering a request later.
//
//   isola::behavior gate() {
//     return {
//         [waiting = std::vector<isola::response_promise<int>>{}](const wait_open&) mutable {
//           waiting.push_back(isola::this_actor::make_response_promise<int>());
//         },                                        // no reply yet
//         [&](const open&) { for (auto& p : waiting) p.deliver(1); waiting.clear(); },
//     };
//   }
//
// A handler that calls this_actor::make_response_promise<R>() while it
// handles a request takes the answer upon itself: when it returns, nothing is
// sent, and the requester's future completes when the promise delivers a
// value of type R (or an error), from this or any later handler. Waiting is
// then a request answered later: the coordinators of isola/distributed/ are
// built on it.
//
// What the requester is guaranteed: exactly one answer. A promise destroyed
// without delivering answers with an error (remote_error of type
// "isola.broken_promise"), so no requester waits for a promise that has gone;
// an actor that dies with promises pending fails their requests with
// actor_exited, as for any request. A requester whose own deadline passed
// drops the late answer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "isola/actor.hpp"
#include "isola/behavior.hpp"
#include "isola/codec.hpp"
#include "isola/error.hpp"

namespace isola {

namespace detail {
/// Marks the request being handled as answered later and returns its
/// (sender, ref); value_error outside a request handler in an actor process.
current_request defer_current_request();
void deliver_deferred(std::uint64_t sender, std::uint64_t ref, std::uint64_t tag,
                      std::span<const std::byte> payload) noexcept;
void deliver_deferred_error(std::uint64_t sender, std::uint64_t ref, const std::string& type_name,
                            const std::string& what) noexcept;
}  // namespace detail

template <class R>
class response_promise {
  static_assert(std::is_void_v<R> || is_serializable_v<R>,
                "isola::response_promise<R>: R must be cereal-serializable (or void)");

 public:
  /// An empty promise (answers nobody).
  response_promise() = default;
  response_promise(response_promise&& o) noexcept
      : sender_(std::exchange(o.sender_, 0)), ref_(std::exchange(o.ref_, 0)) {}
  response_promise& operator=(response_promise&& o) noexcept {
    if (this != &o) {
      break_if_pending();
      sender_ = std::exchange(o.sender_, 0);
      ref_ = std::exchange(o.ref_, 0);
    }
    return *this;
  }
  response_promise(const response_promise&) = delete;
  response_promise& operator=(const response_promise&) = delete;
  ~response_promise() { break_if_pending(); }

  /// Whether it still owes an answer.
  bool pending() const noexcept { return sender_ != 0; }
  /// The id of whoever asked (an actor's id, or a root thread's inbox).
  std::uint64_t requester_id() const noexcept { return sender_; }

  /// Answers the request with v. value_error if it was already answered.
  template <class V = R>
  requires(!std::is_void_v<V>) void deliver(const V& v) {
    auto b = encode(static_cast<const R&>(v));
    detail::deliver_deferred(take(), ref_, type_tag<R>(), b);
  }
  /// Answers a request<void>.
  template <class V = R>
  requires(std::is_void_v<V>) void deliver() {
    auto b = encode(unit{});
    detail::deliver_deferred(take(), ref_, type_tag<unit>(), b);
  }
  /// Fails the request: the requester's future throws remote_error with this
  /// type name and text.
  void deliver_error(const std::string& type_name, const std::string& what) {
    detail::deliver_deferred_error(take(), ref_, type_name, what);
  }

 private:
  template <class V>
  friend response_promise<V> this_actor_make_response_promise();

  response_promise(std::uint64_t sender, std::uint64_t ref) : sender_(sender), ref_(ref) {}

  std::uint64_t take() {
    if (!sender_) throw value_error("isola::response_promise: already answered (or empty)");
    return std::exchange(sender_, 0);
  }
  void break_if_pending() noexcept {
    if (sender_)
      detail::deliver_deferred_error(std::exchange(sender_, 0), ref_, "isola.broken_promise",
                                     "the actor dropped the request without answering it");
  }

  std::uint64_t sender_ = 0;
  std::uint64_t ref_ = 0;
};

template <class R>
response_promise<R> this_actor_make_response_promise() {
  auto r = detail::defer_current_request();
  return response_promise<R>(r.sender, r.ref);
}

namespace this_actor {
/// In a handler answering a request: the answer will be given later, through
/// the returned promise (what the handler returns is then not sent).
/// value_error outside a request handler.
template <class R>
response_promise<R> make_response_promise() {
  return this_actor_make_response_promise<R>();
}
}  // namespace this_actor

}  // namespace isola
