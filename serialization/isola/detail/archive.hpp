// isola/detail/archive.hpp — the cereal archives isola encodes with.
//
// output_archive appends raw host-order bytes to a std::vector<std::byte>:
// no iostream underneath, so encoding a small message is a few stores.
//
// bounded_input_archive reads from a span and never trusts a length it reads:
// every container size is checked against the bytes still unread *before*
// anything is allocated, so a corrupt length prefix costs an exception, not
// gigabytes. Every failure is an isola::decode_error.
//
// cereal's own loaders for most containers resize to the claimed count first
// (deque, list, forward_list, valarray, vector of non-arithmetic elements) or
// reserve it (unordered_set): a count that passes "at most one element per
// byte left" still allocates sizeof(T) bytes per byte of input, 4 KiB per
// byte for a deque<array<char, 4096>>. This header therefore overloads the
// load of every size-prefixed standard container for the bounded archive
// (more specialised than cereal's templates, so these win wherever both are
// visible): elements of non-arithmetic type are constructed one at a time as
// they arrive, arithmetic ones are checked at sizeof(T) bytes each before
// the one allocation, and elements that take no bytes at all (empty types)
// share one budget of the input's size, so nesting cannot multiply it.
// std::stack, std::queue and std::priority_queue load their underlying
// container, so they are bounded through it; std::array and std::bitset have
// no length prefix.
#pragma once

#include <cereal/cereal.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <forward_list>
#include <limits>
#include <list>
#include <map>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <valarray>
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

  /// Reads the element count of a container of n elements of `element_size`
  /// bytes each on the wire (arithmetic types), and rejects one whose bytes
  /// are not all there: the allocation that follows is exact.
  std::uint64_t load_size_of(std::size_t element_size) {
    auto n = load_size();
    if (n > remaining() / element_size)
      throw decode_error("corrupt length: a container claims " + std::to_string(n) +
                         " elements of " + std::to_string(element_size) + " bytes but only " +
                         std::to_string(remaining()) + " bytes are left");
    return n;
  }

  /// Called after each container element is loaded, with the position it
  /// started at. An element that took no bytes (an empty type) is not bounded
  /// by the bytes left, and nested containers of them would multiply the
  /// bound (vector<vector<empty>>: a count every 8 bytes, each up to the
  /// bytes left): all such elements of one decode share a budget of the
  /// input's size.
  void element_loaded(std::size_t started_at) {
    if (pos_ == started_at && ++weightless_ > in_.size())
      throw decode_error("corrupt input: more elements that take no bytes (" +
                         std::to_string(weightless_) + ") than the input has bytes (" +
                         std::to_string(in_.size()) + ")");
  }

  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  std::size_t position() const noexcept { return pos_; }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  std::size_t weightless_ = 0;  // elements loaded so far that took no bytes
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
    const auto at = ar.position();
    v.emplace_back();
    ar(v.back());
    ar.element_loaded(at);
  }
}

// Arithmetic elements are sizeof(T) bytes each on the wire: the count is
// checked at that size, so the one allocation is never more than the bytes
// left (cereal's own loader allows sizeof(T) times that before it fails).
template <class T, class A>
std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> CEREAL_LOAD_FUNCTION_NAME(
    bounded_input_archive& ar, std::vector<T, A>& v) {
  auto n = static_cast<std::size_t>(ar.load_size_of(sizeof(T)));
  v.resize(n);
  ar.load_binary(v.data(), n * sizeof(T));
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

// --- strings ----------------------------------------------------------------

// As arithmetic vectors: a wstring or u32string is checked at the size of its
// characters, not at one byte each.
template <class C, class Tr, class A>
std::enable_if_t<std::is_arithmetic_v<C>> CEREAL_LOAD_FUNCTION_NAME(
    bounded_input_archive& ar, std::basic_string<C, Tr, A>& s) {
  auto n = static_cast<std::size_t>(ar.load_size_of(sizeof(C)));
  s.resize(n);
  ar.load_binary(s.data(), n * sizeof(C));
}

// --- other sequences --------------------------------------------------------

namespace bounded {
/// Loads n elements at the back of c, each constructed only when its turn
/// comes: what is allocated is what has arrived, plus one element.
template <class C>
void load_at_back(bounded_input_archive& ar, C& c, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto at = ar.position();
    c.emplace_back();
    ar(c.back());
    ar.element_loaded(at);
  }
}
}  // namespace bounded

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::deque<T, A>& d) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  d.clear();
  bounded::load_at_back(ar, d, n);
}

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::list<T, A>& l) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  l.clear();
  bounded::load_at_back(ar, l, n);
}

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::forward_list<T, A>& l) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  l.clear();
  auto last = l.before_begin();
  for (cereal::size_type i = 0; i < n; ++i) {
    const auto at = ar.position();
    last = l.emplace_after(last);
    ar(*last);
    ar.element_loaded(at);
  }
}

// A valarray cannot grow: arithmetic elements are checked at their size
// before the one allocation; others are loaded into a vector first (bounded
// as above), then moved in.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::valarray<T>& v) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    auto n = static_cast<std::size_t>(ar.load_size_of(sizeof(T)));
    v.resize(n);
    if (n != 0) ar.load_binary(std::begin(v), n * sizeof(T));
  } else {
    cereal::size_type n = 0;
    ar(cereal::make_size_tag(n));
    std::vector<T> tmp;
    tmp.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, ar.remaining() / sizeof(T))));
    bounded::load_at_back(ar, tmp, n);
    v.resize(tmp.size());
    std::move(tmp.begin(), tmp.end(), std::begin(v));
  }
}

// cereal saves an arithmetic valarray as binary_data(&v[0], ...), which
// indexes an empty one (undefined behaviour: UBSan reports a null reference).
// The same bytes, without the index.
template <class T>
std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> CEREAL_SAVE_FUNCTION_NAME(
    output_archive& ar, const std::valarray<T>& v) {
  std::uint64_t n = v.size();
  ar.save_binary(&n, sizeof n);
  if (n != 0) ar.save_binary(std::begin(v), n * sizeof(T));
}

// --- sets and maps ------------------------------------------------------------

// Node-based: cereal inserts one element at a time already; these add the
// budget for elements that take no bytes (a multiset of an empty type), and
// the unordered ones reserve no more buckets than there are bytes left.

namespace bounded {
template <class S>
void load_set(bounded_input_archive& ar, S& s) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  s.clear();
  // A bucket is a pointer: the bucket array stays within the bytes left.
  if constexpr (requires { s.reserve(std::size_t{}); })
    s.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, ar.remaining() / sizeof(void*))));
  for (cereal::size_type i = 0; i < n; ++i) {
    const auto at = ar.position();
    typename S::key_type key{};
    ar(key);
    ar.element_loaded(at);
    if constexpr (requires { s.reserve(std::size_t{}); })
      s.emplace(std::move(key));
    else
      s.emplace_hint(s.end(), std::move(key));
  }
}

template <class M>
void load_map(bounded_input_archive& ar, M& m) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  m.clear();
  for (cereal::size_type i = 0; i < n; ++i) {
    const auto at = ar.position();
    typename M::key_type key{};
    typename M::mapped_type value{};
    ar(cereal::make_map_item(key, value));
    ar.element_loaded(at);
    if constexpr (requires { m.reserve(std::size_t{}); })
      m.emplace(std::move(key), std::move(value));
    else
      m.emplace_hint(m.end(), std::move(key), std::move(value));
  }
}
}  // namespace bounded

template <class K, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::set<K, C, A>& s) {
  bounded::load_set(ar, s);
}
template <class K, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::multiset<K, C, A>& s) {
  bounded::load_set(ar, s);
}
template <class K, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::unordered_set<K, H, E, A>& s) {
  bounded::load_set(ar, s);
}
template <class K, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar,
                               std::unordered_multiset<K, H, E, A>& s) {
  bounded::load_set(ar, s);
}
template <class K, class V, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::map<K, V, C, A>& m) {
  bounded::load_map(ar, m);
}
template <class K, class V, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::multimap<K, V, C, A>& m) {
  bounded::load_map(ar, m);
}
template <class K, class V, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::unordered_map<K, V, H, E, A>& m) {
  bounded::load_map(ar, m);
}
template <class K, class V, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar,
                               std::unordered_multimap<K, V, H, E, A>& m) {
  bounded::load_map(ar, m);
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
