// The per-process registry of functions that other processes may name
// (rules: isola/detail/function_registry.hpp). Written during static
// initialisation and by API calls of this process, read by every decoder of
// a function reference, from any thread.
#include "process/function_registry.hpp"

#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "isola/detail/function_address.hpp"
#include "isola/error.hpp"
#include "process/registry.hpp"

namespace isola::detail {

namespace {
struct entry {
  fn_type type = 0;
  const char* name = nullptr;
  bool inheritable = false;
};
struct function_table {
  std::mutex m;
  std::unordered_map<const void*, entry> by_address;
  std::vector<const void*> inheritable;  // in registration order
  registry_query_fn query = nullptr;
};
function_table& table() {
  static auto* t = new function_table;  // used from static initialisers and atexit
  return *t;
}

std::string describe_for_error(const void* fn) {
  try {
    std::string module;
    std::uint64_t offset = 0;
    describe_function(fn, module, offset);
    return "the function at offset " + std::to_string(offset) + " of " +
           (module.empty() ? std::string("the program") : "'" + module + "'");
  } catch (const std::exception&) {
    return "an address outside every loaded object";
  }
}
}  // namespace

bool register_function_address(const void* fn, fn_type t, const char* name,
                               bool inheritable) noexcept {
  if (!fn) return false;
  try {
    auto& tb = table();
    std::lock_guard lk(tb.m);
    auto [it, fresh] = tb.by_address.try_emplace(fn, entry{t, name, inheritable});
    if (!fresh) {
      if (name && !it->second.name) it->second.name = name;
      if (inheritable && !it->second.inheritable) {
        it->second.inheritable = true;
        tb.inheritable.push_back(fn);
      }
    } else if (inheritable) {
      tb.inheritable.push_back(fn);
    }
  } catch (...) {
    return false;
  }
  return true;
}

bool is_registered_function(const void* fn) noexcept {
  auto& tb = table();
  std::lock_guard lk(tb.m);
  return tb.by_address.count(fn) != 0;
}

void set_registry_query(registry_query_fn q) noexcept {
  auto& tb = table();
  std::lock_guard lk(tb.m);
  tb.query = q;
}

namespace {
// The registered type of fn, asking the root once if this process does not
// know it (the answer is kept). 0: not registered anywhere we may ask.
fn_type registered_type(const void* fn) {
  auto& tb = table();
  registry_query_fn q = nullptr;
  {
    std::lock_guard lk(tb.m);
    if (auto it = tb.by_address.find(fn); it != tb.by_address.end()) return it->second.type;
    q = tb.query;
  }
  if (!q) return 0;
  std::string module;
  std::uint64_t offset = 0;
  try {
    describe_function(fn, module, offset);
  } catch (const std::exception&) {
    return 0;
  }
  fn_type t = q(module, offset);
  if (t) register_function_address(fn, t, nullptr, false);
  return t;
}

const void* require_registered_as(const void* fn, fn_type t, const char* what, bool check_type) {
  if (!fn)
    throw value_error(std::string(what) +
                      ": no function (none was sent, or it lives in a library this process has "
                      "not loaded)");
  fn_type have = registered_type(fn);
  if (have == 0)
    throw value_error(std::string(what) + ": " + describe_for_error(fn) +
                      " is not a registered function of this program (forged, corrupt, from "
                      "another build, or a function pointer this process never learned: "
                      "register it with ISOLA_REGISTER_FUNCTION)");
  if (check_type && have != t)
    throw value_error(std::string(what) + ": " + describe_for_error(fn) +
                      " is registered with another type than the one it would be called as");
  return fn;
}
}  // namespace

const void* require_registered(const void* fn, fn_type t, const char* what) {
  return require_registered_as(fn, t, what, true);
}

const void* require_registered_any(const void* fn, const char* what) {
  return require_registered_as(fn, 0, what, false);
}


const void* resolve_function(const std::string& module, std::uint64_t offset) noexcept {
  try {
    return resolve_address(module, offset);
  } catch (...) {
    return nullptr;
  }
}

std::vector<inherited_function> inheritable_functions() {
  std::vector<const void*> fns;
  std::vector<fn_type> types;
  {
    auto& tb = table();
    std::lock_guard lk(tb.m);
    fns = tb.inheritable;
    for (auto* f : fns) types.push_back(tb.by_address[f].type);
  }
  std::vector<inherited_function> out;
  out.reserve(fns.size());
  for (std::size_t i = 0; i < fns.size(); ++i) {
    try {
      code_ref ref;
      describe_function(fns[i], ref.module, ref.offset);  // cached: every start asks
      out.push_back({std::move(ref), static_cast<std::uint64_t>(types[i])});
    } catch (const std::exception&) {
      // not in a loaded object (cannot happen for a function); skip it
    }
  }
  return out;
}

void adopt_inherited_functions(const std::vector<inherited_function>& fns) {
  for (const auto& f : fns) {
    try {
      register_function_address(resolve(f.ref), static_cast<fn_type>(f.type), nullptr, true);
    } catch (const std::exception&) {
      // a library the parent dlopen()ed and this child has not: calls into it
      // fail with the usual error when they come
    }
  }
}

fn_type registered_type_for_root(const std::string& module, std::uint64_t offset) noexcept {
  try {
    const void* p = resolve(code_ref{module, offset});
    auto& tb = table();
    std::lock_guard lk(tb.m);
    if (auto it = tb.by_address.find(p); it != tb.by_address.end()) return it->second.type;
  } catch (...) {
  }
  return 0;
}

}  // namespace isola::detail
