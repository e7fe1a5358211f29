#include "process/shutdown_hook.hpp"

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

namespace isola::detail {
namespace {
std::mutex hooks_m;
std::vector<shutdown_hook_fn>& hooks() {
  static auto* v = new std::vector<shutdown_hook_fn>;  // never destroyed: used from atexit
  return *v;
}

// A fork child forgets the hooks: they were registered by the parent's
// higher layers (the actor layer's node, its supervisors), whose threads
// did not come with the fork, so running one in the child would wait on
// them forever (issue 17). The mutex is made anew, as another thread of
// the parent may have held it at the fork; the parent's vector is left to
// the parent (its memory is the child's copy; clear() only drops entries).
void forget_after_fork() noexcept {
  new (&hooks_m) std::mutex;
  hooks().clear();
}
[[maybe_unused]] const bool atfork_registered = [] {
  ::pthread_atfork(nullptr, nullptr, &forget_after_fork);
  return true;
}();
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
