#include "process/shutdown_hook.hpp"

#include <algorithm>
#include <mutex>
#include <vector>

namespace isola::detail {
namespace {
std::mutex hooks_m;
std::vector<shutdown_hook_fn>& hooks() {
  static auto* v = new std::vector<shutdown_hook_fn>;  // never destroyed: used from atexit
  return *v;
}
}  // namespace

void add_shutdown_hook(shutdown_hook_fn fn) noexcept {
  std::lock_guard lk(hooks_m);
  auto& v = hooks();
  if (std::find(v.begin(), v.end(), fn) == v.end()) v.push_back(fn);
}

void run_shutdown_hooks() noexcept {
  std::vector<shutdown_hook_fn> run;
  {
    std::lock_guard lk(hooks_m);
    run.swap(hooks());
  }
  for (auto it = run.rbegin(); it != run.rend(); ++it) (*it)();
}

}  // namespace isola::detail
