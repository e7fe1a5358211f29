// isola/detail/function_registry.hpp — the functions this process will call
// on another process's say.
//
// A function travels between processes as (loaded object, offset) (see
// function_address.hpp), but the receiver never calls an address because the
// wire names it: it calls only a function in its own registry, registered
// with the type it is called through. The registry is built at start-up:
// - during static initialisation, for every trampoline and entry point the
//   library instantiates (templates register themselves), every captureless
//   lambda passed to a pool, and every function named by
//   ISOLA_REGISTER_FUNCTION (isola/function_registry.hpp);
// - from the parent, for a child: functions a process passed to isola's APIs
//   are registered in it ("inheritable") and reach the children it starts
//   afterwards (fork copies them; forkserver and spawn children get them in
//   their start request, which only their parent can send).
// An actor process may also ask its root, over its private control channel,
// whether the root registered a function (a pool task given to workers that
// already run): the root answers from its own registry, never from the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <typeinfo>
#include <vector>

namespace isola::detail {

/// The type a function is registered with: equal in every process of one
/// build (libstdc++ hashes the mangled name).
using fn_type = std::size_t;
template <class Fp>
fn_type fn_type_of() noexcept {
  return typeid(Fp).hash_code();
}

/// Adds fn, callable as type t, to this process's registry. inheritable: the
/// children this process starts from now on get it too. Never throws.
bool register_function_address(const void* fn, fn_type t, const char* name,
                               bool inheritable) noexcept;

/// fn, checked: throws value_error unless fn is registered as type t here
/// (or, in an actor process, in its root). `what` names the use in the message.
const void* require_registered(const void* fn, fn_type t, const char* what);

/// fn, checked for registration of any type (the caller checks the type
/// later, where it is known): value_error otherwise.
const void* require_registered_any(const void* fn, const char* what);

/// Whether fn is registered (any type). Never throws.
bool is_registered_function(const void* fn) noexcept;

/// In an actor process: asks the root whether it registered the function at
/// (module, offset); returns its type, or 0. Installed by the actor layer.
using registry_query_fn = fn_type (*)(const std::string& module, std::uint64_t offset);
void set_registry_query(registry_query_fn q) noexcept;
/// The type this process registered the function at (module, offset) with,
/// or 0: what a root answers an actor process. Never throws.
fn_type registered_type_for_root(const std::string& module, std::uint64_t offset) noexcept;

/// Registers f as Fp during static initialisation (one per instantiation).
template <auto F>
inline const bool static_function_registered =
    register_function_address(reinterpret_cast<const void*>(F), fn_type_of<decltype(F)>(),
                              nullptr, false);

}  // namespace isola::detail
