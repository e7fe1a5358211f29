#include "isola/runtime.hpp"

#include <unistd.h>

#include <ostream>

#include "isola/start_method.hpp"
#include "process/registry.hpp"

namespace isola {

runtime::runtime(int argc, char** argv, runtime_options opts) {
  auto& gl = detail::g();
  {
    std::lock_guard lk(gl.m);
    gl.runtime_present = true;
    gl.argv.assign(argv, argv + argc);
  }
  // A spawn child runs its target here and never returns. It knows its argv
  // first: its own children default to spawn too (get_start_method() is the
  // method it was started with), which re-executes this program again.
  detail::maybe_run_spawn_child();
  detail::ensure_atexit();
  if (opts.start_forkserver) detail::ensure_forkserver();
}

runtime::~runtime() {
  detail::shutdown_children();
  auto& gl = detail::g();
  std::lock_guard lk(gl.m);
  gl.runtime_present = false;
}

void set_start_method(start_method m) { detail::g().default_method.store(m); }
start_method get_start_method() { return detail::g().default_method.load(); }

std::vector<start_method> all_start_methods() {
  return {start_method::fork, start_method::spawn, start_method::forkserver};
}

std::string_view to_string(start_method m) noexcept {
  switch (m) {
    case start_method::fork: return "fork";
    case start_method::forkserver: return "forkserver";
    case start_method::spawn: return "spawn";
  }
  return "unknown";
}

std::optional<start_method> start_method_from_string(std::string_view name) noexcept {
  for (auto m : {start_method::fork, start_method::forkserver, start_method::spawn})
    if (to_string(m) == name) return m;
  return std::nullopt;
}

std::ostream& operator<<(std::ostream& os, start_method m) { return os << to_string(m); }

}  // namespace isola
