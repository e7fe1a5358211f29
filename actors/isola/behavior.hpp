// isola/behavior.hpp — what an actor does with the messages it receives.
//
//   isola::behavior counter() {
//     return {
//         [n = 0](const add& a) mutable { n += a.value; },        // a send: no reply
//         [](const ping& p) { return pong{p.seq}; },              // a request: the reply
//     };
//   }
//
// A behavior is a set of handlers, each taking one message type by value or
// const reference (any cereal-serializable type, or isola::message to take
// anything not handled otherwise). Messages are dispatched on their type tag;
// the first handler for the type wins. What a handler returns is the reply
// to a request (void: an empty reply). A message no handler takes is an error
// back to a requester (type_error naming the type), and is dropped and logged
// when it was a plain send. A message whose payload does not decode as the
// handler's parameter type (a corrupt or forged message with a valid tag) is
// dropped, logged and counted (this_actor::undecodable_messages), a
// requester gets decode_error, and the actor serves on: only an exception of
// the user's function ends it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "isola/codec.hpp"
#include "isola/detail/callable_traits.hpp"
#include "isola/message.hpp"
#include "isola/type_name.hpp"

namespace isola {

namespace detail {
/// Thrown by a handler when the payload does not decode as its parameter
/// type, before the user's function runs: the actor loop tells a junk
/// message (dropped, counted, the actor serves on) from a handler that
/// failed (which ends the actor) by this type alone.
class payload_decode_error : public decode_error {
 public:
  using decode_error::decode_error;
};

template <class T>
T decode_payload(std::span<const std::byte> payload) {
  try {
    return decode<T>(payload);
  } catch (const decode_error& e) {
    throw payload_decode_error(e.what());
  }
}
}  // namespace detail

/// The reply of a handler that returns nothing (a request<void> gets it).
/// It travels as one byte: a vector of units (map over a void function)
/// must have as many bytes as elements, which is what the bounded archive
/// checks before it allocates.
struct unit {
  template <class Archive>
  void serialize(Archive& ar) {
    std::uint8_t zero = 0;
    ar(zero);
  }
};

class behavior {
 public:
  /// One handler: decodes the payload and calls the user's function. For a
  /// request (`reply` not null) it appends the encoding of what the function
  /// returned (the unit for void) to *reply; a plain send encodes nothing.
  /// Returns the reply's type tag.
  struct handler {
    std::uint64_t tag = 0;  // 0: takes any message
    std::string type_name;
    std::function<std::uint64_t(std::uint64_t tag, std::span<const std::byte> payload,
                                bytes* reply)>
        call;
  };

  behavior() = default;

  template <class... Fs>
  requires(sizeof...(Fs) > 0 && (!std::is_same_v<std::remove_cvref_t<Fs>, behavior> && ...))
      behavior(Fs&&... fs) {  // NOLINT: implicit, so that `return {lambda, lambda};` works
    (add(std::forward<Fs>(fs)), ...);
  }

  /// Adds a handler for the type of f's single parameter.
  template <class F>
  behavior& add(F&& f) {
    using traits = detail::callable_traits_t<std::decay_t<F>>;
    static_assert(traits::known && traits::arity == 1,
                  "isola::behavior: a handler takes exactly one parameter (the message)");
    using arg = std::remove_cvref_t<std::tuple_element_t<0, typename traits::args_tuple>>;
    using result = typename traits::result_type;
    handler h;
    if constexpr (std::is_same_v<arg, message>) {
      h.tag = 0;
      h.type_name = "isola.message";
    } else {
      static_assert(is_serializable_v<arg>,
                    "isola::behavior: a handler's parameter must be cereal-serializable");
      h.tag = type_tag<arg>();
      h.type_name = type_name<arg>();
    }
    h.call = [fn = std::forward<F>(f)](std::uint64_t tag, std::span<const std::byte> payload,
                                       bytes* reply) mutable -> std::uint64_t {
      auto invoke = [&]() -> decltype(auto) {
        if constexpr (std::is_same_v<arg, message>)
          return fn(message(tag, bytes(payload.begin(), payload.end())));
        else
          return fn(detail::decode_payload<arg>(payload));
      };
      if constexpr (std::is_void_v<result>) {
        invoke();
        if (reply) encode_into(unit{}, *reply);
        return type_tag<unit>();
      } else if constexpr (std::is_same_v<std::remove_cvref_t<result>, message>) {
        const message& m = invoke();
        if (reply) reply->insert(reply->end(), m.payload().begin(), m.payload().end());
        return m.type_tag();
      } else {
        using r = std::remove_cvref_t<result>;
        static_assert(is_serializable_v<r>,
                      "isola::behavior: a handler's result must be cereal-serializable");
        if (!reply) {
          invoke();
        } else {
          encode_into(static_cast<const r&>(invoke()), *reply);
        }
        return type_tag<r>();
      }
    };
    handlers_.push_back(std::move(h));
    return *this;
  }

  /// The handler for tag (a catch-all if none is specific), or null.
  handler* find(std::uint64_t tag) {
    handler* any = nullptr;
    for (auto& h : handlers_) {
      if (h.tag == tag) return &h;
      if (h.tag == 0 && !any) any = &h;
    }
    return any;
  }
  bool empty() const noexcept { return handlers_.empty(); }

 private:
  std::vector<handler> handlers_;
};

}  // namespace isola

ISOLA_TYPE_NAME(isola::unit, "isola.unit")
