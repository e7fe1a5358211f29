// isola/codec.hpp — encode and decode values with cereal.
//
// encode(v) produces the bytes another process of the same program (or any
// program that agrees on the type's serialize functions) turns back into v
// with decode<T>. Decoding is bounded: no length read from the input can make
// it allocate more elements than there are bytes left, and every failure —
// truncated, corrupt, oversize, trailing garbage — is an isola::decode_error.
// Decoding never runs code other than T's own load/serialize functions.
#pragma once

#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "isola/detail/archive.hpp"
#include "isola/error.hpp"

namespace isola {

using bytes = std::vector<std::byte>;

/// True when T can be encoded and decoded by isola (cereal-serializable and
/// default-constructible).
template <class T>
inline constexpr bool is_serializable_v =
    cereal::traits::is_output_serializable<T, detail::output_archive>::value&&
        cereal::traits::is_input_serializable<T, detail::bounded_input_archive>::value&&
            std::is_default_constructible_v<T>;

namespace detail {
/// Called from a catch block: rethrows the in-flight exception as an
/// isola::decode_error. The one place cereal's and the allocator's errors are
/// translated.
[[noreturn]] void rethrow_as_decode_error();
}  // namespace detail

/// Appends the encoding of v to out.
template <class T>
void encode_into(const T& v, bytes& out) {
  static_assert(cereal::traits::is_output_serializable<T, detail::output_archive>::value,
                "isola::encode: T is not cereal-serializable; give it a serialize() "
                "function or save()/load() pair");
  detail::output_archive ar(out);
  ar(v);
}

/// The encoding of v.
template <class T>
bytes encode(const T& v) {
  bytes out;
  encode_into(v, out);
  return out;
}

/// Decodes into an existing object; throws decode_error on any malformed input
/// (including bytes left over after the value).
template <class T>
void decode_into(std::span<const std::byte> in, T& out) {
  static_assert(cereal::traits::is_input_serializable<T, detail::bounded_input_archive>::value,
                "isola::decode: T is not cereal-serializable");
  try {
    detail::bounded_input_archive ar(in);
    ar(out);
    if (ar.remaining() != 0)
      throw decode_error("trailing garbage: " + std::to_string(ar.remaining()) +
                         " bytes left after the value");
  } catch (...) {
    detail::rethrow_as_decode_error();
  }
}

/// The value encoded in `in`; throws decode_error.
template <class T>
T decode(std::span<const std::byte> in) {
  T out{};
  decode_into(in, out);
  return out;
}

/// Non-throwing twin of decode: nullopt where decode would throw.
template <class T>
std::optional<T> try_decode(std::span<const std::byte> in) noexcept {
  try {
    return decode<T>(in);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace isola
