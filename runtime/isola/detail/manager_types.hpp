// isola/detail/manager_types.hpp — user types served by a manager
// (manager::register_type, Python's BaseManager.register). Internal:
// included by isola/managed.hpp.
//
// A registration is a name, the type's constructor and deleter, and its
// methods by name, each a trampoline of the library's (registered in every
// process at start-up). The process that starts a manager hands it the
// registrations it has made so far, in the manager's start arguments; the
// manager checks every trampoline against its own registry and keeps the
// table. On the wire a client names a type and a method by name, with the
// type ids of its arguments and of the result it expects: nothing from the
// wire picks code, and a mismatch is a type_error reply.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "isola/codec.hpp"
#include "isola/detail/function_address.hpp"
#include "isola/type_name.hpp"

namespace isola::detail {

/// Constructs the type from its encoded constructor arguments.
using mgr_new_fn = void* (*)(std::span<const std::byte> args);
using mgr_delete_fn = void (*)(void* self);
/// Decodes the arguments, calls the method on self, returns the encoded result.
using mgr_method_fn = bytes (*)(void* self, std::span<const std::byte> args);

struct mgr_method_entry {
  std::string name;
  std::uint64_t args_type = 0;    // type id of the decayed parameter types
  std::uint64_t result_type = 0;  // type id of the result (of nothing for void)
  std::string signature;          // for messages: "int(int, std::string)"
  function_address fn;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, args_type, result_type, signature, fn);
  }
};

struct mgr_type_entry {
  std::string name;
  std::uint64_t type = 0;  // type id of T
  std::uint64_t ctor_args_type = 0;
  std::string ctor_signature;
  function_address make, destroy;
  std::vector<mgr_method_entry> methods;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, type, ctor_args_type, ctor_signature, make, destroy, methods);
  }
};

/// This process's registrations (a copy), in the order made.
std::vector<mgr_type_entry> registered_manager_types();
/// Adds (or replaces) a type; its methods are kept if the type is the same.
void register_manager_type(mgr_type_entry e);
/// Adds (or replaces) a method of a registered type.
void register_manager_method(const std::string& type_name, mgr_method_entry m);

template <class... T>
std::uint64_t mgr_type_id() {
  std::uint64_t h = 0x9e3779b97f4a7c15ull;
  ((h = (h ^ isola::type_tag<T>()) * 0x100000001b3ull), ...);
  return h;
}
template <class... T>
std::string mgr_type_names() {
  std::string s;
  ((s += (s.empty() ? "" : ", ") + isola::type_name<T>()), ...);
  return s;
}
template <class R>
std::uint64_t mgr_result_id() {
  if constexpr (std::is_void_v<R>)
    return mgr_type_id<>();
  else
    return mgr_type_id<R>();
}
template <class R>
std::string mgr_result_name() {
  if constexpr (std::is_void_v<R>)
    return "void";
  else
    return isola::type_name<R>();
}

template <class T, class... A>
void* mgr_new_trampoline(std::span<const std::byte> args) {
  auto t = decode<std::tuple<A...>>(args);
  return std::apply([](auto&... a) { return static_cast<void*>(new T(std::move(a)...)); }, t);
}
template <class T>
void mgr_delete_trampoline(void* self) {
  delete static_cast<T*>(self);
}

template <class M>
struct mgr_member;
#define ISOLA_DETAIL_MGR_MEMBER(QUAL)                                                      \
  template <class R, class C, class... P>                                                  \
  struct mgr_member<R (C::*)(P...) QUAL> {                                                 \
    using cls = C;                                                                         \
    using result = std::decay_t<R>;                                                        \
    using args = std::tuple<std::decay_t<P>...>;                                           \
    static std::uint64_t args_id() { return mgr_type_id<std::decay_t<P>...>(); }           \
    static std::string signature() {                                                       \
      return mgr_result_name<result>() + "(" + mgr_type_names<std::decay_t<P>...>() + ")"; \
    }                                                                                      \
  };
ISOLA_DETAIL_MGR_MEMBER()
ISOLA_DETAIL_MGR_MEMBER(const)
ISOLA_DETAIL_MGR_MEMBER(noexcept)
ISOLA_DETAIL_MGR_MEMBER(const noexcept)
#undef ISOLA_DETAIL_MGR_MEMBER

template <auto M>
bytes mgr_method_trampoline(void* self, std::span<const std::byte> args) {
  using traits = mgr_member<decltype(M)>;
  auto* obj = static_cast<typename traits::cls*>(self);
  auto t = decode<typename traits::args>(args);
  if constexpr (std::is_void_v<typename traits::result>) {
    std::apply([&](auto&... a) { (obj->*M)(a...); }, t);
    return {};
  } else {
    return encode(std::apply([&](auto&... a) { return (obj->*M)(a...); }, t));
  }
}

}  // namespace isola::detail
