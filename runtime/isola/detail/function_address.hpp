// isola/detail/function_address.hpp — a function pointer that survives the
// trip to a child process under every start method.
//
// Under fork and forkserver the child has the same address space layout and
// the pointer is valid as is; across the exec of spawn it is not (ASLR), so
// the address travels as (loaded object, offset) and is resolved again in the
// child, the way process targets travel.
//
// What a receiver guarantees: decoding a reference calls nothing; a decoded
// reference is only ever called through as<Fp>() (or require_registered),
// which accepts only a function of this process's registry
// (function_registry.hpp) registered as Fp: a forged or corrupt reference is
// a value_error where it is used, never a jump, and the rest of the message
// it came in is unharmed.
#pragma once

#include <cstdint>
#include <string>

#include "isola/detail/function_registry.hpp"

namespace isola::detail {

void describe_function(const void* fn, std::string& module, std::uint64_t& offset);
/// The address at (module, offset) in this process, or null if no such
/// object is loaded. Not a check: see function_address::as.
const void* resolve_function(const std::string& module, std::uint64_t offset) noexcept;

struct function_address {
  const void* fn = nullptr;

  /// The reference to f, registered in this process (inheritable), so that
  /// the children it starts from now on may call it.
  template <class Fp>
  static function_address of(Fp f) noexcept {
    register_function_address(reinterpret_cast<const void*>(f), fn_type_of<Fp>(), nullptr, true);
    return function_address{reinterpret_cast<const void*>(f)};
  }
  /// A reference to an entry point or trampoline of the library: registered
  /// in every process during static initialisation.
  template <auto F>
  static function_address of_static() noexcept {
    (void)static_function_registered<F>;
    return function_address{reinterpret_cast<const void*>(F)};
  }
  /// The function, callable as Fp: value_error unless it is registered as Fp.
  template <class Fp>
  Fp as(const char* what) const {
    return reinterpret_cast<Fp>(const_cast<void*>(require_registered(fn, fn_type_of<Fp>(), what)));
  }

  template <class Archive>
  void save(Archive& ar) const {
    bool present = fn != nullptr;
    ar(present);
    if (!present) return;
    std::string module;
    std::uint64_t offset = 0;
    describe_function(fn, module, offset);
    ar(module, offset);
  }
  template <class Archive>
  void load(Archive& ar) {
    bool present = false;
    ar(present);
    fn = nullptr;
    if (!present) return;
    std::string module;
    std::uint64_t offset = 0;
    ar(module, offset);
    fn = resolve_function(module, offset);
  }
};

}  // namespace isola::detail
