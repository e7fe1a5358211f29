// Functions travel to spawn children as (loaded object, offset): the child is
// the same program, so the same objects are loaded, at other addresses.
#include <link.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "isola/detail/function_address.hpp"
#include "state.hpp"

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
    throw start_method_error("the target function is not in any loaded object; it cannot be "
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

void describe_function(const void* fn, std::string& module, std::uint64_t& offset) {
  auto ref = to_code_ref(fn);
  module = std::move(ref.module);
  offset = ref.offset;
}

const void* resolve_function(const std::string& module, std::uint64_t offset) {
  return resolve(code_ref{module, offset});
}

}  // namespace isola::detail
