// What the process layer needs of the function registry beyond the public
// rules (isola/detail/function_registry.hpp): handing the inheritable part
// to a child, and answering an actor process's question in the root.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "isola/detail/function_registry.hpp"
#include "process/registry.hpp"

namespace isola::detail {

/// The inheritable registrations of this process, as references a child can
/// resolve (for a forkserver or spawn child's start request).
std::vector<inherited_function> inheritable_functions();
/// In a forkserver or spawn child: registers what the parent sent.
void adopt_inherited_functions(const std::vector<inherited_function>& fns);
/// The address at (module, offset), unchecked (cached: pool tasks carry
/// references). Throws start_method_error if no such object is loaded.
const void* resolve_address(const std::string& module, std::uint64_t offset);

}  // namespace isola::detail
