// isola/function_registry.hpp — naming the functions other processes may
// have this one run.
//
// Under forkserver and spawn, and for pool tasks, manager updates and actor
// spawns, a function reaches another process as a reference. The receiver
// runs it only if the function is in its registry (the rule and how the
// registry is built: isola/detail/function_registry.hpp); anything else is a
// value_error there. Captureless lambdas and functions this process passed to
// isola before starting a child need nothing; a function pointer that a
// process receives from elsewhere (a manager update sent by a client, a spawn
// asked for by an actor process or another node) must be registered at
// start-up:
//
//   int square(int x) { return x * x; }
//   ISOLA_REGISTER_FUNCTION(square);
#pragma once

#include "isola/detail/function_registry.hpp"

namespace isola {

/// Registers fn in this process (and the children it starts afterwards).
/// Returns true, so that it can initialise a static (what
/// ISOLA_REGISTER_FUNCTION does).
template <class R, class... A>
bool register_function(R (*fn)(A...), const char* name = nullptr) noexcept {
  return detail::register_function_address(reinterpret_cast<const void*>(fn),
                                           detail::fn_type_of<R (*)(A...)>(), name, true);
}
template <class R, class... A>
bool register_function(R (*fn)(A...) noexcept, const char* name = nullptr) noexcept {
  return detail::register_function_address(reinterpret_cast<const void*>(fn),
                                           detail::fn_type_of<R (*)(A...) noexcept>(), name, true);
}

}  // namespace isola

#define ISOLA_DETAIL_CONCAT2(a, b) a##b
#define ISOLA_DETAIL_CONCAT(a, b) ISOLA_DETAIL_CONCAT2(a, b)
/// At namespace scope: registers fn during static initialisation, in every
/// process of the program.
#define ISOLA_REGISTER_FUNCTION(fn)                                       \
  [[maybe_unused]] static const bool ISOLA_DETAIL_CONCAT(                 \
      isola_function_registered_, __COUNTER__) = ::isola::register_function(&fn, #fn)
