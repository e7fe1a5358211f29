// Random bytes from the kernel (getrandom), for challenges, tokens and
// tickets that another process must not guess. One wrapper with one error
// policy: a failure throws isola::error; nothing falls back to a guessable
// value and nothing loops on an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace isola::detail {

/// Fills out with random bytes. Retries only an interrupted or short read
/// (progress is made every time); any other failure throws isola::error.
void random_bytes(std::span<std::byte> out);

/// A random value of a trivially copyable type (an integer, an array).
template <class T>
T random_value() {
  static_assert(std::is_trivially_copyable_v<T>);
  T v;
  random_bytes(std::as_writable_bytes(std::span(&v, 1)));
  return v;
}

}  // namespace isola::detail
