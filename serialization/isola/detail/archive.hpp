// isola/detail/archive.hpp — the cereal archives isola encodes with.
//
// output_archive appends raw host-order bytes to a std::vector<std::byte>:
// no iostream underneath, so encoding a small message is a few stores.
//
// bounded_input_archive reads from a span and never trusts a length it reads:
// every container size is checked against the bytes still unread *before*
// cereal gets to resize anything, so a corrupt length prefix costs an
// exception, not gigabytes. Every failure is an isola::decode_error.
#pragma once

#include <cereal/cereal.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "isola/error.hpp"

namespace isola::detail {

class output_archive
    : public cereal::OutputArchive<output_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit output_archive(std::vector<std::byte>& out)
      : cereal::OutputArchive<output_archive, cereal::AllowEmptyClassElision>(this), out_(out) {}

  void save_binary(const void* data, std::size_t size) {
    auto p = static_cast<const std::byte*>(data);
    out_.insert(out_.end(), p, p + size);
  }

 private:
  std::vector<std::byte>& out_;
};

class bounded_input_archive
    : public cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit bounded_input_archive(std::span<const std::byte> in)
      : cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision>(this),
        in_(in) {}

  void load_binary(void* data, std::size_t size) {
    if (size > remaining())
      throw decode_error("truncated input: needed " + std::to_string(size) + " bytes, " +
                         std::to_string(remaining()) + " left");
    if (size != 0) std::memcpy(data, in_.data() + pos_, size);
    pos_ += size;
  }

  /// Reads a container's element count and rejects one that cannot fit in
  /// what is left: every element takes at least one byte on the wire, except
  /// elements of empty types, whose allocation is bounded the same way.
  std::uint64_t load_size() {
    std::uint64_t n = 0;
    load_binary(&n, sizeof n);
    if (n > remaining())
      throw decode_error("corrupt length: a container claims " + std::to_string(n) +
                         " elements but only " + std::to_string(remaining()) + " bytes are left");
    return n;
  }

  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  std::size_t position() const noexcept { return pos_; }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
};

// --- arithmetic ------------------------------------------------------------

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(output_archive& ar,
                                                                    const T& t) {
  ar.save_binary(std::addressof(t), sizeof(t));
}

template <class T>
std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> CEREAL_LOAD_FUNCTION_NAME(
    bounded_input_archive& ar, T& t) {
  ar.load_binary(std::addressof(t), sizeof(t));
}

// A bool is one byte that must be 0 or 1: any other value is corruption, and
// loading it into a bool would be undefined behaviour.
template <class T>
std::enable_if_t<std::is_same_v<T, bool>> CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar,
                                                                    T& t) {
  unsigned char b = 0;
  ar.load_binary(&b, 1);
  if (b > 1) throw decode_error("corrupt bool: byte value " + std::to_string(b));
  t = b == 1;
}

// --- vectors ----------------------------------------------------------------

// cereal loads a vector of non-arithmetic elements by resizing it to the
// claimed count before loading any element, so a forged count that passes
// load_size (at most one element per byte left) still costs sizeof(T) bytes
// per byte of input: a vector<std::array<char, 4096>> in a 1 MiB frame would
// allocate 4 GiB. Here the vector reserves no more memory than there are bytes
// left and grows only as elements actually arrive.
template <class T, class A>
std::enable_if_t<!std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> CEREAL_LOAD_FUNCTION_NAME(
    bounded_input_archive& ar, std::vector<T, A>& v) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  v.clear();
  v.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, ar.remaining() / sizeof(T))));
  for (cereal::size_type i = 0; i < n; ++i) {
    v.emplace_back();
    ar(v.back());
  }
}

// Byte vectors (isola::bytes, message payloads, bulk data) travel as one
// block, not element by element: std::byte is an enum, which cereal would
// otherwise encode one call per byte.
template <class A>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const std::vector<std::byte, A>& v) {
  std::uint64_t n = v.size();
  ar.save_binary(&n, sizeof n);
  ar.save_binary(v.data(), v.size());
}

template <class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::vector<std::byte, A>& v) {
  auto n = ar.load_size();  // never more than the bytes left
  v.resize(static_cast<std::size_t>(n));
  ar.load_binary(v.data(), v.size());
}

// --- cereal's wrappers -----------------------------------------------------

template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(bounded_input_archive, output_archive)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::SizeTag<T>& t) {
  std::uint64_t n = static_cast<std::uint64_t>(t.size);
  ar.save_binary(&n, sizeof n);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::SizeTag<T>& t) {
  auto n = ar.load_size();
  using size_type = std::remove_reference_t<T>;
  if (n > static_cast<std::uint64_t>(std::numeric_limits<size_type>::max()))
    throw decode_error("corrupt length: " + std::to_string(n) + " does not fit the size type");
  t.size = static_cast<size_type>(n);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::BinaryData<T>& bd) {
  ar.save_binary(bd.data, static_cast<std::size_t>(bd.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::BinaryData<T>& bd) {
  ar.load_binary(bd.data, static_cast<std::size_t>(bd.size));
}

}  // namespace isola::detail

CEREAL_REGISTER_ARCHIVE(isola::detail::output_archive)
CEREAL_REGISTER_ARCHIVE(isola::detail::bounded_input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(isola::detail::bounded_input_archive, isola::detail::output_archive)
