// isola/type_name.hpp — stable names and 64-bit tags for message types.
//
// Every frame carries the tag of its payload's type: a 64-bit FNV-1a hash of
// the type's name. Two processes of one build always agree on it. The name
// comes from the compiler unless pinned with ISOLA_TYPE_NAME, which makes it
// portable across compilers and builds; the fundamental types and the common
// standard containers have pinned names already ("int32", "string", ...), so
// a `long` sent is a `long long` received where both are 64 bits.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace isola {

namespace detail {

constexpr std::uint64_t fnv1a64(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

template <class T>
constexpr std::string_view compiler_type_name() noexcept {
  std::string_view f = __PRETTY_FUNCTION__;
  // GCC: "... [with T = int; std::string_view = ...]"; clang: "... [T = int]"
  auto start = f.find("T = ");
  if (start == std::string_view::npos) return f;
  start += 4;
  auto end = f.find(';', start);
  if (end == std::string_view::npos) end = f.rfind(']');
  return f.substr(start, end - start);
}

/// Records tag -> name so that a type_error can name a type it did not expect.
/// Called once per type at static-initialisation time; thread-safe.
std::uint64_t register_type_name(std::uint64_t tag, std::string_view name);

}  // namespace detail

/// The name a type travels under. Specialise with ISOLA_TYPE_NAME.
template <class T>
struct type_name_of {
  static std::string value() { return std::string(detail::compiler_type_name<T>()); }
};

/// Human-readable name for a tag seen on the wire: the registered name, or
/// "unknown type (tag 0x...)" for a type this program never used.
std::string type_name_for_tag(std::uint64_t tag);

template <class T>
std::string type_name() {
  return type_name_of<T>::value();
}

namespace detail {
template <class T>
std::uint64_t register_type() {
  return register_type_name(fnv1a64(type_name<T>()), type_name<T>());
}
// Registers every type the program names at start-up, so that a type_error
// can name a type this process has not sent or received yet.
template <class T>
inline const std::uint64_t type_tag_value = register_type<T>();
}  // namespace detail

/// The 64-bit tag of T on the wire. Right even when called during static
/// initialisation (a global message, a dispatch table), before
/// detail::type_tag_value<T> has been initialised.
template <class T>
std::uint64_t type_tag() {
  static const std::uint64_t tag = detail::register_type<T>();
  (void)&detail::type_tag_value<T>;  // instantiate the start-up registration
  return tag;
}

}  // namespace isola

/// Pins the wire name of T, making its tag portable across compilers. Use at
/// global scope: ISOLA_TYPE_NAME(my::point, "my.point")
#define ISOLA_TYPE_NAME(T, NAME)                \
  template <>                                   \
  struct isola::type_name_of<T> {               \
    static std::string value() { return NAME; } \
  };

ISOLA_TYPE_NAME(bool, "bool")
ISOLA_TYPE_NAME(char, "char")
ISOLA_TYPE_NAME(signed char, "int8")
ISOLA_TYPE_NAME(unsigned char, "uint8")
ISOLA_TYPE_NAME(short, "int16")
ISOLA_TYPE_NAME(unsigned short, "uint16")
ISOLA_TYPE_NAME(int, "int32")
ISOLA_TYPE_NAME(unsigned int, "uint32")
ISOLA_TYPE_NAME(long, "int" + std::to_string(sizeof(long) * 8))
ISOLA_TYPE_NAME(unsigned long, "uint" + std::to_string(sizeof(long) * 8))
ISOLA_TYPE_NAME(long long, "int64")
ISOLA_TYPE_NAME(unsigned long long, "uint64")
ISOLA_TYPE_NAME(float, "float32")
ISOLA_TYPE_NAME(double, "float64")
ISOLA_TYPE_NAME(std::string, "string")
ISOLA_TYPE_NAME(std::byte, "byte")

template <class T, class A>
struct isola::type_name_of<std::vector<T, A>> {
  static std::string value() { return "vector<" + isola::type_name<T>() + ">"; }
};
template <class T, std::size_t N>
struct isola::type_name_of<std::array<T, N>> {
  static std::string value() {
    return "array<" + isola::type_name<T>() + "," + std::to_string(N) + ">";
  }
};
template <class K, class V, class C, class A>
struct isola::type_name_of<std::map<K, V, C, A>> {
  static std::string value() {
    return "map<" + isola::type_name<K>() + "," + isola::type_name<V>() + ">";
  }
};
template <class K, class V, class H, class E, class A>
struct isola::type_name_of<std::unordered_map<K, V, H, E, A>> {
  static std::string value() {
    return "unordered_map<" + isola::type_name<K>() + "," + isola::type_name<V>() + ">";
  }
};
template <class T, class C, class A>
struct isola::type_name_of<std::set<T, C, A>> {
  static std::string value() { return "set<" + isola::type_name<T>() + ">"; }
};
template <class T>
struct isola::type_name_of<std::optional<T>> {
  static std::string value() { return "optional<" + isola::type_name<T>() + ">"; }
};
template <class A, class B>
struct isola::type_name_of<std::pair<A, B>> {
  static std::string value() {
    return "pair<" + isola::type_name<A>() + "," + isola::type_name<B>() + ">";
  }
};
template <class... Ts>
struct isola::type_name_of<std::tuple<Ts...>> {
  static std::string value() {
    std::string s = "tuple<";
    ((s += isola::type_name<Ts>() + ","), ...);
    if (s.back() == ',') s.pop_back();
    return s + ">";
  }
};
