// Functions travel to spawn children as (loaded object, offset): the child is
// the same program, so the same objects are loaded, at other addresses.
#include <link.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "isola/detail/function_address.hpp"
#include "process/registry.hpp"

namespace isola::detail {

namespace {
struct find_ctx {
  std::uintptr_t addr;
  const char* name = nullptr;
  std::uintptr_t base = 0;
  bool found = false;
};

int find_containing(dl_phdr_info* info, std::size_t, void* data) {
  auto* ctx = static_cast<find_ctx*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ctx->addr >= start && ctx->addr < start + ph.p_memsz) {
      ctx->name = info->dlpi_name ? info->dlpi_name : "";
      ctx->base = info->dlpi_addr;
      ctx->found = true;
      return 1;
    }
  }
  return 0;
}

struct resolve_ctx {
  const std::string* name;
  std::uintptr_t base = 0;
  bool found = false;
};

int find_named(dl_phdr_info* info, std::size_t, void* data) {
  auto* ctx = static_cast<resolve_ctx*>(data);
  const char* n = info->dlpi_name ? info->dlpi_name : "";
  if (*ctx->name == n) {
    ctx->base = info->dlpi_addr;
    ctx->found = true;
    return 1;
  }
  return 0;
}
}  // namespace

code_ref to_code_ref(const void* address) {
  find_ctx ctx{reinterpret_cast<std::uintptr_t>(address)};
  ::dl_iterate_phdr(&find_containing, &ctx);
  if (!ctx.found)
    throw start_method_error(
        "the target function is not in any loaded object; it cannot be "
        "sent to a forkserver or spawn child");
  return {ctx.name, ctx.addr - ctx.base};
}

const void* resolve(const code_ref& ref) {
  resolve_ctx ctx{&ref.module};
  ::dl_iterate_phdr(&find_named, &ctx);
  if (!ctx.found)
    throw start_method_error("the target function lives in '" + ref.module +
                             "', which this child has not loaded (a library the parent "
                             "dlopen()ed after starting?); use the fork start method");
  return reinterpret_cast<const void*>(ctx.base + ref.offset);
}

// Function addresses travel with every pool task, and dl_iterate_phdr costs
// a microsecond or two: both directions are cached. (A library unloaded with
// dlclose while its functions are in flight is not supported anyway.)
namespace {
std::mutex fn_cache_m;
std::unordered_map<const void*, code_ref>& describe_cache() {
  static auto* m = new std::unordered_map<const void*, code_ref>;
  return *m;
}
std::map<std::pair<std::string, std::uint64_t>, const void*>& resolve_cache() {
  static auto* m = new std::map<std::pair<std::string, std::uint64_t>, const void*>;
  return *m;
}
}  // namespace

void describe_function(const void* fn, std::string& module, std::uint64_t& offset) {
  {
    std::lock_guard lk(fn_cache_m);
    auto& c = describe_cache();
    if (auto it = c.find(fn); it != c.end()) {
      module = it->second.module;
      offset = it->second.offset;
      return;
    }
  }
  auto ref = to_code_ref(fn);
  module = ref.module;
  offset = ref.offset;
  std::lock_guard lk(fn_cache_m);
  describe_cache().emplace(fn, std::move(ref));
}

const void* resolve_address(const std::string& module, std::uint64_t offset) {
  {
    std::lock_guard lk(fn_cache_m);
    auto& c = resolve_cache();
    if (auto it = c.find({module, offset}); it != c.end()) return it->second;
  }
  const void* p = resolve(code_ref{module, offset});
  std::lock_guard lk(fn_cache_m);
  resolve_cache().emplace(std::make_pair(module, offset), p);
  return p;
}

}  // namespace isola::detail
