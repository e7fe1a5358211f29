// isola/detail/function_address.hpp — a function pointer that survives the
// trip to a child process under every start method.
//
// Under fork and forkserver the child has the same address space layout and
// the pointer is valid as is; across the exec of spawn it is not (ASLR), so
// the address travels as (loaded object, offset) and is resolved again in the
// child, the way process targets travel.
#pragma once

#include <cstdint>
#include <string>

namespace isola::detail {

void describe_function(const void* fn, std::string& module, std::uint64_t& offset);
const void* resolve_function(const std::string& module, std::uint64_t offset);  // throws

struct function_address {
  const void* fn = nullptr;

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
