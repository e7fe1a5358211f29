// isola/message.hpp — a value of any serializable type, tagged with its type.
//
// What Python does with "any picklable object" on a queue or a pipe, isola
// does with message: the sender wraps any T, the receiver asks is<T>(),
// get<T>() or match()es handlers on the type. The payload stays encoded until
// asked for, and decoding never runs code other than T's own serialization.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "isola/codec.hpp"
#include "isola/detail/callable_traits.hpp"
#include "isola/frame.hpp"
#include "isola/type_name.hpp"

namespace isola {

class message {
 public:
  /// An empty message (no type).
  message() = default;

  /// Wraps v. Implicit, so a queue<message> takes any serializable value.
  template <class T>
  requires(!std::same_as<std::remove_cvref_t<T>, message>) message(const T& v)
      : tag_(isola::type_tag<T>()), payload_(encode(v)) {}  // NOLINT

  /// From an already-validated tag and payload.
  message(std::uint64_t tag, bytes payload) : tag_(tag), payload_(std::move(payload)) {}

  /// Parses a whole frame; throws decode_error on corruption.
  static message from_frame(std::span<const std::byte> frame) {
    auto v = parse_frame(frame);
    return message(v.tag, bytes(v.payload.begin(), v.payload.end()));
  }

  bool empty() const noexcept { return tag_ == 0; }
  std::uint64_t type_tag() const noexcept { return tag_; }
  std::string type_name() const { return empty() ? "empty message" : type_name_for_tag(tag_); }
  std::span<const std::byte> payload() const noexcept { return payload_; }

  template <class T>
  bool is() const {
    return tag_ == isola::type_tag<T>();
  }

  /// The value, if this message holds a T; type_error naming both types
  /// otherwise (the message is unchanged and can be asked again).
  template <class T>
  T get() const {
    if (!is<T>()) detail::throw_type_mismatch(isola::type_tag<T>(), isola::type_name<T>(), tag_);
    return decode<T>(payload_);
  }

  /// Calls the first handler whose parameter type is the type held, and
  /// returns what it returns. A handler taking `const message&` matches
  /// anything. No match is a type_error.
  template <class... Fs>
  decltype(auto) match(Fs&&... fs) const {
    using first = std::remove_cvref_t<std::tuple_element_t<0, std::tuple<Fs...>>>;
    using R = typename detail::callable_traits_t<first>::result_type;
    return match_impl<R>(std::forward<Fs>(fs)...);
  }

  /// This message as a frame.
  bytes to_frame() const {
    bytes out;
    append_frame(tag_, payload_, out);
    return out;
  }

  friend bool operator==(const message& a, const message& b) {
    return a.tag_ == b.tag_ && a.payload_ == b.payload_;
  }

  template <class Archive>
  void save(Archive& ar) const {
    ar(tag_, payload_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(tag_, payload_);
  }

 private:
  template <class R>
  R match_impl() const {
    throw type_error("message::match: no handler takes " + type_name());
  }

  template <class R, class F, class... Fs>
  R match_impl(F&& f, Fs&&... rest) const {
    using traits = detail::callable_traits_t<F>;
    static_assert(traits::known && traits::arity == 1,
                  "message::match: each handler takes exactly one parameter");
    using arg = std::remove_cvref_t<std::tuple_element_t<0, typename traits::args_tuple>>;
    if constexpr (std::is_same_v<arg, message>) {
      return static_cast<R>(f(*this));
    } else {
      if (is<arg>()) return static_cast<R>(f(decode<arg>(payload_)));
      return match_impl<R>(std::forward<Fs>(rest)...);
    }
  }

  std::uint64_t tag_ = 0;
  bytes payload_;
};

}  // namespace isola

ISOLA_TYPE_NAME(isola::message, "isola.message")
